"""Service configuration: *_FILE secrets win, bad values are refused, and every memo .env name changes behaviour."""

from __future__ import annotations

import io
import json
import logging
from datetime import UTC, date, datetime
from decimal import Decimal as D
from pathlib import Path

import pytest
from cdb_common.config import ConfigError, load_settings, read_secret
from cdb_common.jsonlog import setup_logging
from execution.executor import ExecutionConfig
from risk_manager.rules import Holding, PortfolioView, RiskLimits, SignalIn, evaluate
from screener.frames import parse_frame
from signal_engine.momentum import MomentumConfig, MomentumEngine

NOON = datetime(2025, 1, 11, 12, tzinfo=UTC)
BUY_BTC = SignalIn("BTCUSDT", "BUY", D("50000"))


def secret_file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "secret"
    path.write_text(text)
    return str(path)


def test_secret_file_wins_over_plain_env(tmp_path: Path) -> None:
    env = {"POSTGRES_PASSWORD_FILE": secret_file(tmp_path, "from-file\n"), "POSTGRES_PASSWORD": "plain"}
    assert read_secret(env, "POSTGRES_PASSWORD") == "from-file"  # trailing newline is not part of it
    assert load_settings("x", 1, env).postgres.password == "from-file"


def test_plain_env_is_the_fallback_for_local_runs() -> None:
    assert load_settings("x", 1, {"REDIS_PASSWORD": "plain"}).redis.password == "plain"
    assert load_settings("x", 1, {}).redis.password == ""


def test_unreadable_secret_file_is_a_config_error_without_the_secret(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        read_secret({"REDIS_PASSWORD_FILE": str(tmp_path / "missing"), "REDIS_PASSWORD": "s3cr3t"}, "REDIS_PASSWORD")
    assert "REDIS_PASSWORD_FILE" in str(info.value) and "s3cr3t" not in str(info.value)


def test_secrets_never_show_in_repr(tmp_path: Path) -> None:
    env = {"POSTGRES_PASSWORD_FILE": secret_file(tmp_path, "hunter2"), "REDIS_PASSWORD": "swordfish"}
    settings = load_settings("x", 1, env)
    assert "hunter2" not in repr(settings) and "swordfish" not in repr(settings)


def test_defaults_are_the_memo_values() -> None:
    settings = load_settings("x", 8001, {})
    limits = settings.limits
    assert (limits.max_daily_drawdown_pct, limits.max_position_size_pct, limits.max_total_exposure_pct) == (
        D("5.0"), D("10.0"), D("50.0"),
    )  # fmt: skip
    assert (limits.initial_capital, limits.signal_threshold_pct, limits.min_volume) == (D(1000), D("3.0"), D(100000))
    assert (settings.http_port, settings.log_level, settings.postgres.host, settings.redis.host) == (
        8001, "INFO", "cdb_postgres", "cdb_redis",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"MAX_POSITION_SIZE": "ten"}, "MAX_POSITION_SIZE"),
        ({"MAX_DAILY_DRAWDOWN": "0"}, "MAX_DAILY_DRAWDOWN"),
        ({"INITIAL_CAPITAL": "-5"}, "INITIAL_CAPITAL"),
        ({"SIGNAL_THRESHOLD": "NaN"}, "SIGNAL_THRESHOLD"),
        ({"MIN_VOLUME": "-1"}, "MIN_VOLUME"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
        ({"HTTP_PORT": "http"}, "HTTP_PORT"),
    ],
)
def test_malformed_values_are_refused_with_the_name(env: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        load_settings("x", 1, env)


# -- each memo name changes behaviour, read through the same path the services use --------------
def limits(**env: str) -> RiskLimits:
    return RiskLimits.from_settings(load_settings("risk_manager", 8002, env))


def test_max_daily_drawdown_changes_the_breaker() -> None:
    view = PortfolioView(cash=D("940"), day=date(2025, 1, 11), day_start_equity=D("1000"))  # −6 %
    assert evaluate(BUY_BTC, view, limits(), NOON).reason == "circuit_breaker"
    assert evaluate(BUY_BTC, view, limits(MAX_DAILY_DRAWDOWN="7"), NOON).reason == "approved"


def test_max_position_size_changes_the_quantity() -> None:
    fresh = PortfolioView.fresh(D("1000"))
    assert evaluate(BUY_BTC, fresh, limits(), NOON).approved_qty == D("0.002")
    assert evaluate(BUY_BTC, fresh, limits(MAX_POSITION_SIZE="20"), NOON).approved_qty == D("0.004")


def test_max_total_exposure_changes_the_shrink() -> None:
    view = PortfolioView(cash=D("550"), holdings={"ETHUSDT": Holding(D("0.18"), D("2500"))})  # 450 held
    # room after costs = (0.5 · 1000 − 450) / (1 + 0.5 · 0.0015005) = 49.9625156… → 0.00099925 BTC
    assert evaluate(BUY_BTC, view, limits(), NOON).approved_qty == D("0.00099925")
    # at 60 %: (600 − 450) / 1.0009003 = 149.86… ≥ the 100 USDT order → unshrunk 0.002
    assert evaluate(BUY_BTC, view, limits(MAX_TOTAL_EXPOSURE="60"), NOON).approved_qty == D("0.002")


def test_initial_capital_changes_the_equity_of_a_fresh_portfolio() -> None:
    for env, qty in (({}, D("0.002")), ({"INITIAL_CAPITAL": "2000"}, D("0.004"))):
        risk = limits(**env)
        assert evaluate(BUY_BTC, PortfolioView.fresh(risk.initial_capital), risk, NOON).approved_qty == qty
    assert ExecutionConfig.from_settings(
        load_settings("execution", 8003, {"INITIAL_CAPITAL": "2500"})
    ).initial_capital == D("2500")


def momentum(**env: str) -> MomentumEngine:
    return MomentumEngine(MomentumConfig.from_settings(load_settings("signal_engine", 8001, env)))


def test_signal_threshold_changes_what_is_a_signal() -> None:
    for env, expected in (({}, None), ({"SIGNAL_THRESHOLD": "2"}, "BUY")):
        eng = momentum(**env)
        eng.on_tick("AUSDT", D("100"), D("1000000"), 0)
        signal = eng.on_tick("AUSDT", D("102.5"), D("1000000"), 60_000)
        assert (signal.side if signal else None) == expected


def test_min_volume_changes_the_screener_filter_and_the_buy_rule() -> None:
    raw = '[{"e":"24hrMiniTicker","E":1,"s":"AUSDT","c":"1","o":"1","h":"1","l":"1","v":"60000","q":"60000"}]'
    default = load_settings("screener", 8000, {}).limits.min_volume
    lowered = load_settings("screener", 8000, {"MIN_VOLUME": "50000"}).limits.min_volume
    assert parse_frame(raw, default).tickers == []
    assert len(parse_frame(raw, lowered).tickers) == 1
    for env, expected in (({}, None), ({"MIN_VOLUME": "50000"}, "BUY")):
        eng = momentum(**env)
        eng.on_tick("AUSDT", D("100"), D("60000"), 0)
        signal = eng.on_tick("AUSDT", D("104"), D("60000"), 60_000)
        assert (signal.side if signal else None) == expected


def test_log_level_changes_what_is_logged() -> None:
    def lines(env: dict[str, str]) -> list[dict[str, object]]:
        stream = io.StringIO()
        log = setup_logging("svc", load_settings("svc", 1, env).log_level, stream=stream)
        log.info("info line", extra={"symbol": "BTCUSDT", "qty": D("0.002")})
        log.warning("warning line")
        return [json.loads(line) for line in stream.getvalue().splitlines()]

    try:
        info = lines({})
        assert [r["msg"] for r in info] == ["info line", "warning line"]
        assert info[0]["service"] == "svc" and info[0]["level"] == "INFO" and info[0]["symbol"] == "BTCUSDT"
        assert info[0]["qty"] == "0.002" and "ts" in info[0]
        assert [r["msg"] for r in lines({"LOG_LEVEL": "WARNING"})] == ["warning line"]
    finally:
        logging.getLogger().handlers.clear()
        logging.getLogger().setLevel(logging.WARNING)
