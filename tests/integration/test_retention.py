"""Retention on a real stack: the screener and execution age out their own tables on their own while they
keep writing, cdb-ops ages out ops_runs when it records a run, a batch never waits for a row or table
lock, the account's history is never touched, and a table's size levels off once rows age out
(autovacuum hands the space back)."""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cdb_common.retention import ACCOUNT_HISTORY, OPS_RUNS, PORTFOLIO_SNAPSHOTS, Policy, prune_sync

from tests.helpers import STACKS, StackFixture, cdb_json, pg_connect, wait_until

pytestmark = pytest.mark.integration

STACK = STACKS["retention"]
PROFILES = ("--profile", "core", "--profile", "replay")  # what the stack runs: every command names them
_pg = functools.partial(pg_connect, port=STACK.pg_port)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    # a pass every second (the period a test may shorten), small batches so a pass takes several
    yield from StackFixture(
        STACK,
        env={"RETENTION_INTERVAL_SECONDS": "1", "RETENTION_BATCH_ROWS": "50"},
        rebuild_args=PROFILES,
    ).around(tmp_path_factory.mktemp("retention"))


def _count(conn: Any, sql: str, params: Any = None) -> int:
    row = conn.execute(sql, params).fetchone()
    return int(row[0]) if row else 0


# -- the account's history, 200 days old: retention must leave every row of it -------------------------


def _insert_old_account_history(conn: Any, when: datetime) -> dict[str, int]:
    signal, risk, order, trade = (uuid.uuid4() for _ in range(4))
    with conn.transaction():
        conn.execute(
            "INSERT INTO signals (signal_id, symbol, side, price, change_pct, window_seconds, quote_volume,"
            " threshold_pct, confidence, tick_time, created_at, portfolio) VALUES"
            " (%s, 'OLDHISTUSDT', 'BUY', 10, 4, 300, 1000000, 3, 0.5, %s, %s, 'live')",
            (signal, when, when),
        )
        conn.execute(
            "INSERT INTO risk_events (risk_event_id, signal_id, symbol, side, decision, reason, requested_qty,"
            " approved_qty, price, equity, exposure, limits, portfolio, created_at) VALUES"
            " (%s, %s, 'OLDHISTUSDT', 'BUY', 'APPROVED', 'ok', 1, 1, 10, 1000, 0, '{}', 'live', %s)",
            (risk, signal, when),
        )
        conn.execute(
            "INSERT INTO orders (order_id, risk_event_id, signal_id, symbol, side, qty, reference_price, status,"
            " portfolio, created_at, updated_at) VALUES"
            " (%s, %s, %s, 'OLDHISTUSDT', 'BUY', 1, 10, 'FILLED', 'live', %s, %s)",
            (order, risk, signal, when, when),
        )
        conn.execute(
            "INSERT INTO trades (trade_id, order_id, symbol, side, qty, price, reference_price, slippage_bps, fee,"
            " notional, portfolio, executed_at) VALUES"
            " (%s, %s, 'OLDHISTUSDT', 'BUY', 1, 10, 10, 0, 0.01, 10, 'live', %s)",
            (trade, order, when),
        )
        conn.execute(
            "INSERT INTO positions (portfolio, symbol, qty, avg_entry_price, last_price, opened_at, updated_at)"
            " VALUES ('live', 'OLDHISTUSDT', 1, 10, 10, %s, %s) ON CONFLICT DO NOTHING",
            (when, when),
        )
        conn.execute(
            "INSERT INTO daily_pnl (portfolio, day, start_equity, end_equity, high_equity, low_equity, updated_at)"
            " VALUES ('live', %s, 1000, 1000, 1000, 1000, %s) ON CONFLICT DO NOTHING",
            (when.date(), when),
        )
        # a snapshot that names the old trade: retention deletes the snapshot, never the trade it names
        conn.execute(
            "INSERT INTO portfolio_snapshots (portfolio, taken_at, cash, equity, exposure, realized_pnl,"
            " unrealized_pnl, peak_equity, day_start_equity, drawdown_pct, daily_drawdown_pct, trigger_trade_id)"
            " VALUES ('live', %s, 990, 1000, 10, 0, 0, 1000, 1000, 0, 0, %s)",
            (when, trade),
        )
    return _history_counts(conn)


def _history_counts(conn: Any) -> dict[str, int]:
    return {t: _count(conn, f"SELECT count(*) FROM {t}") for t in ACCOUNT_HISTORY}  # noqa: S608 - our constants


def _snapshot_row(book: str, when: datetime, cash: int) -> tuple[Any, ...]:
    return (book, when, cash, cash, 0, 0, 0, cash, cash, 0, 0)


INSERT_SNAPSHOT = (
    "INSERT INTO portfolio_snapshots (portfolio, taken_at, cash, equity, exposure, realized_pnl, unrealized_pnl,"
    " peak_equity, day_start_equity, drawdown_pct, daily_drawdown_pct) VALUES (%s, %s, %s, %s, %s, %s, %s, %s,"
    " %s, %s, %s) RETURNING id"
)


def test_the_services_age_out_their_tables_while_they_keep_writing(project: Path):
    now = datetime.now(UTC)
    with _pg(project) as conn:
        history = _insert_old_account_history(conn, now - timedelta(days=200))
        # market rows ten days old (the default keeps 7): more than one batch of 50
        conn.execute(
            "INSERT INTO market_snapshots (symbol, minute, price, open_24h, high_24h, low_24h, base_volume,"
            " quote_volume, change_pct, event_time, source) SELECT 'RETOLD' || (g %% 7) || 'USDT',"
            " date_trunc('minute', %s::timestamptz) - g * interval '1 minute', 1, 1, 1, 1, 1, 1, 0, %s, 'replay'"
            " FROM generate_series(1, 400) g",
            (now - timedelta(days=10), now - timedelta(days=10)),
        )
        # the 'live' book is idle in this replay stack: three snapshots 200 days old, the newest of which
        # is its cash and peak equity and must stay; eleven fresh probe-book rows give the table its clock
        old_ids = [
            conn.execute(INSERT_SNAPSHOT, _snapshot_row("live", now - timedelta(days=200 - i), 1000 + i)).fetchone()[0]
            for i in range(3)
        ]
        for i in range(11):
            conn.execute(INSERT_SNAPSHOT, _snapshot_row("probe", now - timedelta(seconds=i), 1000))
        written_before = _count(conn, "SELECT count(*) FROM market_snapshots WHERE symbol NOT LIKE 'RETOLD%%'")

        wait_until(
            "the screener to delete the old market rows",
            lambda: _count(conn, "SELECT count(*) FROM market_snapshots WHERE symbol LIKE 'RETOLD%%'") == 0,
            timeout=30,
            every=0.5,
        )
        wait_until(
            "execution to delete the old snapshots of the idle book but its newest",
            lambda: (
                [r[0] for r in conn.execute("SELECT id FROM portfolio_snapshots WHERE portfolio = 'live'")]
                == [old_ids[-1]]
            ),
            timeout=30,
            every=0.5,
        )
        # the screener kept writing meanwhile: its own rows are still there and more came
        wait_until(
            "the screener to write new market rows",
            lambda: (
                _count(conn, "SELECT count(*) FROM market_snapshots WHERE symbol NOT LIKE 'RETOLD%%'") > written_before
            ),
            timeout=30,
            every=0.5,
        )
        assert _history_counts(conn) == history
        assert _count(conn, "SELECT count(*) FROM trades WHERE symbol = 'OLDHISTUSDT'") == 1


def test_cdb_ops_ages_out_ops_runs_when_it_records_a_run(project: Path):
    now = datetime.now(UTC)
    with _pg(project) as conn:
        for i in range(5):
            conn.execute(
                "INSERT INTO ops_runs (run_id, command, started_at, finished_at, result, tool_version)"
                " VALUES (gen_random_uuid(), 'old-run', %s, %s, 'ok', 'test')",
                (now - timedelta(days=120 + i), now - timedelta(days=120 + i)),
            )
        for i in range(11):
            conn.execute(
                "INSERT INTO ops_runs (run_id, command, started_at, finished_at, result, tool_version)"
                " VALUES (gen_random_uuid(), 'recent-run', %s, %s, 'ok', 'test')",
                (now - timedelta(hours=i), now - timedelta(hours=i)),
            )
    cdb_json("validate", "--no-probe", *PROFILES, project=project)
    with _pg(project) as conn:
        assert _count(conn, "SELECT count(*) FROM ops_runs WHERE command = 'old-run'") == 0
        assert _count(conn, "SELECT count(*) FROM ops_runs WHERE command = 'recent-run'") == 11
        assert _count(conn, "SELECT count(*) FROM ops_runs WHERE command = 'validate'") >= 1


def test_a_batch_skips_a_locked_row_and_never_waits_for_a_table_lock(project: Path):
    now = datetime.now(UTC)
    with _pg(project) as conn, _pg(project) as other:
        ids = [uuid.uuid4() for _ in range(30)]
        for i, run_id in enumerate(ids):
            conn.execute(
                "INSERT INTO ops_runs (run_id, command, started_at, result, tool_version)"
                " VALUES (%s, 'lock-test', %s, 'ok', 'test')",
                (run_id, now - timedelta(days=400 + i)),
            )
        for i in range(11):
            conn.execute(
                "INSERT INTO ops_runs (run_id, command, started_at, result, tool_version)"
                " VALUES (gen_random_uuid(), 'lock-clock', %s, 'ok', 'test')",
                (now - timedelta(minutes=i),),
            )
        # another session updates one old row and keeps its transaction open: the batch goes around it
        with other.transaction():
            other.execute("UPDATE ops_runs SET summary = '{\"held\": true}' WHERE run_id = %s", (ids[0],))
            started = time.monotonic()
            pruned = prune_sync(conn, OPS_RUNS, days=90, batch=10)
            assert time.monotonic() - started < 5
            assert pruned.deleted == 29 and pruned.batches >= 3 and not pruned.stopped_early
            left = [r[0] for r in conn.execute("SELECT run_id FROM ops_runs WHERE command = 'lock-test'")]
            assert left == [ids[0]]
        # a session that holds the table itself (a migration, VACUUM FULL): the pass gives up at once
        # and deletes nothing, rather than queueing every writer behind its lock request
        with other.transaction():
            other.execute("LOCK TABLE ops_runs IN ACCESS EXCLUSIVE MODE")
            started = time.monotonic()
            pruned = prune_sync(conn, OPS_RUNS, days=90, batch=10)
            assert time.monotonic() - started < 5
            assert pruned.deleted == 0 and pruned.stopped_early == "LockNotAvailable"
        pruned = prune_sync(conn, OPS_RUNS, days=90, batch=10)
        assert pruned.deleted == 1  # the held row goes in the next pass


def test_each_books_newest_snapshot_is_kept_whatever_its_age(project: Path):
    """On a session-private copy of portfolio_snapshots (the same columns and indexes), so the running
    execution service neither sees nor prunes these rows."""
    now = datetime.now(UTC)
    with _pg(project) as conn:
        conn.execute("CREATE TEMP TABLE portfolio_snapshots (LIKE public.portfolio_snapshots INCLUDING ALL)")
        for book, age_days in (("live", 300), ("live", 299), ("replay", 500)):
            conn.execute(INSERT_SNAPSHOT, _snapshot_row(book, now - timedelta(days=age_days), 1000))
        for i in range(11):
            conn.execute(INSERT_SNAPSHOT, _snapshot_row("probe", now - timedelta(minutes=i), 1000))
        # a row far in the future (a wrong clock somewhere) does not become the table's clock
        conn.execute(INSERT_SNAPSHOT, _snapshot_row("probe", now + timedelta(days=3000), 1000))
        pruned = prune_sync(conn, PORTFOLIO_SNAPSHOTS, days=90, batch=100)
        books = dict(conn.execute("SELECT portfolio, count(*) FROM pg_temp.portfolio_snapshots GROUP BY 1"))
        assert pruned.deleted == 1  # the older of the two 'live' rows
        assert books == {"live": 1, "replay": 1, "probe": 12}
        assert pruned.cutoff is not None and abs((pruned.cutoff - (now - timedelta(days=90))).total_seconds()) < 3600


# -- a table whose rows age out stops growing ----------------------------------------------------------

BENCH = Policy("ret_levels_off", "id", "minute", "minute DESC", "MARKET_SNAPSHOT_RETENTION_DAYS")
SYMBOLS = 20  # x 1440 minutes: 28,800 rows a simulated day
DAYS = 12


def test_a_tables_size_levels_off_once_rows_age_out(project: Path, capsys: pytest.CaptureFixture[str]):
    """Twelve simulated days of one-minute rows into a copy of market_snapshots with a 3-day retention, pruned
    after each day and vacuumed by Postgres' own autovacuum (its nap shortened to a second for the test):
    the rows kept stay exactly three days' worth, and once the window is full the table grows at less than
    a quarter of the rate its inserts would take (it levels off: docs/retention.md has a 30-day run)."""
    day0 = datetime(2030, 1, 1, tzinfo=UTC)
    sizes: list[int] = []
    rows: list[int] = []
    with _pg(project) as conn:
        conn.execute("DROP TABLE IF EXISTS ret_levels_off")
        conn.execute(
            "CREATE TABLE ret_levels_off (LIKE market_snapshots INCLUDING ALL)"
            " WITH (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02)"
        )
        conn.execute("ALTER SYSTEM SET autovacuum_naptime = '1s'")
        conn.execute("SELECT pg_reload_conf()")
        try:
            for day in range(DAYS):
                conn.execute(
                    "INSERT INTO ret_levels_off (symbol, minute, price, open_24h, high_24h, low_24h, base_volume,"
                    " quote_volume, change_pct, event_time) SELECT 'LVL' || s || 'USDT', m, 1.5, 1, 2, 1, 1000, 1500,"
                    " 0.5, m FROM generate_series(1, %s) s,"
                    " generate_series(%s::timestamptz, %s::timestamptz - interval '1 minute', interval '1 minute') m",
                    (SYMBOLS, day0 + timedelta(days=day), day0 + timedelta(days=day + 1)),
                )
                vacuums = _autovacuums(conn)
                pruned = prune_sync(conn, BENCH, days=3, batch=5000)
                if pruned.deleted:
                    wait_until(
                        "autovacuum after the prune", lambda v=vacuums: _autovacuums(conn) > v, timeout=60, every=0.5
                    )
                sizes.append(_count(conn, "SELECT pg_total_relation_size('ret_levels_off')"))
                rows.append(_count(conn, "SELECT count(*) FROM ret_levels_off"))
        finally:
            conn.execute("ALTER SYSTEM RESET autovacuum_naptime")
            conn.execute("SELECT pg_reload_conf()")
            conn.execute("DROP TABLE IF EXISTS ret_levels_off")
    with capsys.disabled():
        print("\nret_levels_off size per simulated day (MiB):", [round(s / 2**20, 2) for s in sizes])
    one_day = sizes[0]
    assert rows[3:] == [3 * 1440 * SYMBOLS + SYMBOLS] * (DAYS - 3), rows  # three days and the cutoff's minute
    assert sizes[1] < sizes[2] < sizes[3], sizes  # it grew while the window filled
    inserted_since = (DAYS - 6) * one_day  # what the last six days' rows take without retention
    assert sizes[-1] - sizes[5] < inserted_since / 4, sizes


def _autovacuums(conn: Any) -> int:
    return _count(conn, "SELECT autovacuum_count FROM pg_stat_user_tables WHERE relname = 'ret_levels_off'")


# -- disk use: sampled by validate and `status --disk`, shown by the plain (quick) status ---------------


def test_validate_and_status_disk_sample_the_stack_and_status_shows_it(project: Path):
    from tests.unit.test_json_schemas import problems

    validated = cdb_json("validate", "--no-probe", *PROFILES, project=project, expect=None)
    disk_checks = [c for c in validated["checks"] if c["name"] == f"disk {STACK.container('postgres_data')}"]
    assert len(disk_checks) == 1 and disk_checks[0]["status"] in ("pass", "warn"), disk_checks
    fs = disk_checks[0]["facts"]
    assert fs["size_bytes"] > 0 and 0 <= fs["used_percent"] <= 100
    assert (disk_checks[0]["status"] == "warn") == (fs["used_percent"] > 80)

    measured = cdb_json("status", "--disk", project=project)
    assert problems("status", measured) == []
    disk = measured["disk"]
    assert disk["age_seconds"] < 60
    volumes = {v["name"]: v["bytes"] for v in disk["volumes"]}
    assert volumes[STACK.container("postgres_data")] > 10 * 2**20  # a database cluster is tens of MiB at least
    tables = {t["name"]: t["bytes"] for t in disk["tables"]}
    assert set(tables) == set(ACCOUNT_HISTORY) | {"market_snapshots", "portfolio_snapshots", "ops_runs"}
    assert tables["market_snapshots"] > 0
    assert disk["logs"]["bytes"] > 0 and disk["logs"]["containers"][STACK.container("postgres")] is not None
    assert disk["data_filesystem"]["used_percent"] == pytest.approx(fs["used_percent"], abs=5)

    # the plain status (the quick path: no docker-py, no measuring) shows that sample, a little older
    plain = cdb_json("status", project=project)
    assert problems("status", plain) == []
    assert plain["disk"]["sampled_at"] == disk["sampled_at"]
    assert (project / ".cdb" / "disk-history.jsonl").read_text().count("\n") >= 2
