"""Retention's settings and rules, without a database: bad `.env` values are refused by cdb-ops (file, line,
fix) and by the services alike, the defaults are the table's, the playbook hands the keys to the services
that prune, and no policy can reach the account's history. The deletes themselves run against a real
Postgres in tests/integration/test_retention.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cdb_common import config as service_config
from cdb_common.envrules import RULES
from cdb_common.retention import (
    ACCOUNT_HISTORY,
    MARKET_SNAPSHOTS,
    OPS_RUNS,
    POLICIES,
    PORTFOLIO_SNAPSHOTS,
    batch_rows,
    cutoff_of,
)

from cdb_ops.errors import ConfigError
from cdb_ops.load.settings import load_settings
from tests.helpers import REPO
from tests.unit.conftest import ENV

RETENTION_KEYS = (
    "MARKET_SNAPSHOT_RETENTION_DAYS",
    "PORTFOLIO_SNAPSHOT_RETENTION_DAYS",
    "OPS_RUN_RETENTION_DAYS",
    "RETENTION_INTERVAL_SECONDS",
    "RETENTION_BATCH_ROWS",
)


@pytest.mark.parametrize(
    ("line", "expect"),
    [
        ("MARKET_SNAPSHOT_RETENTION_DAYS=0", "MARKET_SNAPSHOT_RETENTION_DAYS: 0 is too small (must be at least 1)"),
        ("MARKET_SNAPSHOT_RETENTION_DAYS=1.5", "MARKET_SNAPSHOT_RETENTION_DAYS: '1.5' is not a whole number"),
        ("MARKET_SNAPSHOT_RETENTION_DAYS=week", "MARKET_SNAPSHOT_RETENTION_DAYS: 'week' is not a number"),
        ("PORTFOLIO_SNAPSHOT_RETENTION_DAYS=-3", "PORTFOLIO_SNAPSHOT_RETENTION_DAYS: -3 is too small"),
        ("OPS_RUN_RETENTION_DAYS=99999", "OPS_RUN_RETENTION_DAYS: 99999 is too large (at most 3650)"),
        ("RETENTION_INTERVAL_SECONDS=0", "RETENTION_INTERVAL_SECONDS: 0 is too small (must be at least 1)"),
        ("RETENTION_INTERVAL_SECONDS=90000", "RETENTION_INTERVAL_SECONDS: 90000 is too large (at most 86400)"),
        ("RETENTION_BATCH_ROWS=5", "RETENTION_BATCH_ROWS: 5 is too small (must be at least 10)"),
    ],
)
def test_cdb_ops_refuses_a_bad_retention_value_with_file_line_and_fix(tmp_path: Path, line: str, expect: str):
    env_file = tmp_path / ".env"
    env_file.write_text(ENV.rstrip("\n") + "\n" + line + "\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(env_file)
    err = caught.value
    line_no = len(ENV.rstrip("\n").splitlines()) + 1
    assert expect in err.message
    assert f".env:{line_no}" in err.message
    rule = RULES[line.split("=")[0]]
    assert f">= {rule.low} and <= {rule.high}" in err.remedy and rule.unit in err.remedy  # what to write


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("MARKET_SNAPSHOT_RETENTION_DAYS", "0"),
        ("MARKET_SNAPSHOT_RETENTION_DAYS", "1.5"),
        ("PORTFOLIO_SNAPSHOT_RETENTION_DAYS", "4000"),
        ("OPS_RUN_RETENTION_DAYS", "x"),
        ("RETENTION_BATCH_ROWS", "1"),
    ],
)
def test_the_services_refuse_what_cdb_ops_refuses(key: str, value: str):
    policy = next((p for p in POLICIES if p.setting == key), None)
    with pytest.raises(service_config.ConfigError, match=key):
        if policy is not None:
            policy.days({key: value})
        else:
            batch_rows({key: value})


def test_an_unset_or_empty_key_takes_the_tables_default():
    # the playbook passes `${KEY:-}`: an .env without the key gives the services an empty value
    for policy in POLICIES:
        expected = int(RULES[policy.setting].default or "")
        assert policy.days({}) == expected == policy.days({policy.setting: ""})
    assert batch_rows({}) == int(RULES["RETENTION_BATCH_ROWS"].default or "")
    assert (MARKET_SNAPSHOTS.days({}), PORTFOLIO_SNAPSHOTS.days({}), OPS_RUNS.days({})) == (7, 90, 90)


def test_a_good_value_is_taken():
    assert MARKET_SNAPSHOTS.days({"MARKET_SNAPSHOT_RETENTION_DAYS": "30"}) == 30
    assert batch_rows({"RETENTION_BATCH_ROWS": "500"}) == 500


def test_the_example_env_names_every_retention_key_with_its_default():
    example = dict(
        ln.split("=", 1) for ln in (REPO / ".env.example").read_text().splitlines() if "=" in ln and ln[0] != "#"
    )
    for key in RETENTION_KEYS:
        assert example[key] == RULES[key].default, key


def test_no_policy_reaches_the_account_history():
    assert {p.table for p in POLICIES} == {"market_snapshots", "portfolio_snapshots", "ops_runs"}
    for policy in POLICIES:
        sql = policy.batch_sql() + policy.clock_sql()
        for table in ACCOUNT_HISTORY:
            assert f" {table} " not in f" {sql} ", (policy.table, table)


def test_a_batch_is_small_skips_locked_rows_and_keeps_each_books_newest_snapshot():
    for policy in POLICIES:
        sql = policy.batch_sql()
        assert "LIMIT %(batch)s" in sql and "FOR UPDATE SKIP LOCKED" in sql
    assert (
        "max(n.id)" in PORTFOLIO_SNAPSHOTS.batch_sql()
        and "n.portfolio = s.portfolio" in PORTFOLIO_SNAPSHOTS.batch_sql()
    )
    assert "max(" not in MARKET_SNAPSHOTS.batch_sql()


def test_the_cutoff_is_the_clock_minus_the_days_and_an_empty_table_deletes_nothing():
    clock = datetime(2030, 1, 31, 12, 0, tzinfo=UTC)
    assert cutoff_of(clock, 7) == clock - timedelta(days=7)
    assert cutoff_of(None, 7) is None


def test_the_playbook_hands_the_keys_to_the_services_that_prune():
    from cdb_ops.load.playbook import load_stack

    stack = load_stack(REPO / "playbooks" / "stack.yaml")
    screener, execution = stack.services["screener"].env, stack.services["execution"].env
    for key in ("MARKET_SNAPSHOT_RETENTION_DAYS", "RETENTION_INTERVAL_SECONDS", "RETENTION_BATCH_ROWS"):
        assert key in screener, key
    for key in ("PORTFOLIO_SNAPSHOT_RETENTION_DAYS", "RETENTION_INTERVAL_SECONDS", "RETENTION_BATCH_ROWS"):
        assert key in execution, key
