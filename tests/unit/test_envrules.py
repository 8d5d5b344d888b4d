"""One definition of the `.env` rules: cdb-ops and the services read the same table, so a value one
side refuses the other refuses too, and the services' defaults are the table's."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from cdb_common import config as service_config
from cdb_common.envrules import RULES

from cdb_ops.errors import ConfigError
from cdb_ops.load.settings import load_settings
from tests.unit.conftest import ENV

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("MAX_POSITION_SIZE", "150"),
        ("MAX_TOTAL_EXPOSURE", "100.5"),
        ("MAX_DAILY_DRAWDOWN", "0"),
        ("SIGNAL_THRESHOLD", "-1"),
        ("INITIAL_CAPITAL", "0"),
        ("MIN_VOLUME", "-5"),
    ],
)
def test_a_value_cdb_ops_refuses_the_services_refuse_too(tmp_path: Path, key: str, value: str):
    env_file = tmp_path / ".env"
    env_file.write_text("\n".join(f"{key}={value}" if ln.startswith(f"{key}=") else ln for ln in ENV.splitlines()))
    with pytest.raises(ConfigError, match=key):
        load_settings(env_file)
    with pytest.raises(service_config.ConfigError, match=key):
        service_config.load_trading_limits({key: value})


def test_the_services_defaults_are_the_tables():
    limits = service_config.load_trading_limits({})
    assert limits.max_daily_drawdown_pct == Decimal(RULES["MAX_DAILY_DRAWDOWN"].default or "")
    assert limits.max_position_size_pct == Decimal(RULES["MAX_POSITION_SIZE"].default or "")
    assert limits.max_total_exposure_pct == Decimal(RULES["MAX_TOTAL_EXPOSURE"].default or "")
    assert limits.initial_capital == Decimal(RULES["INITIAL_CAPITAL"].default or "")
    assert limits.signal_threshold_pct == Decimal(RULES["SIGNAL_THRESHOLD"].default or "")
    assert limits.min_volume == Decimal(RULES["MIN_VOLUME"].default or "")
    assert RULES["LOG_LEVEL"].choices == service_config.LOG_LEVELS


def test_every_key_of_the_example_env_is_in_the_table():
    keys = {
        ln.split("=", 1)[0] for ln in (REPO / ".env.example").read_text().splitlines() if "=" in ln and ln[0] != "#"
    }
    assert keys <= set(RULES)
