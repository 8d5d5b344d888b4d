"""The book's trading state in the risk checks: HALTED takes nothing, REDUCING only exits, and the daily
breaker is the same model (REDUCING until the next UTC day) with its own reason kept."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal as D

import pytest
from risk_manager.rules import (
    ACTIVE,
    APPROVED,
    HALTED,
    REDUCING,
    REJECTED,
    Holding,
    PendingOrder,
    PortfolioView,
    RiskLimits,
    SignalIn,
    effective_state,
    evaluate,
)

LIMITS = RiskLimits(
    max_daily_drawdown_pct=D("5.0"),
    max_position_size_pct=D("10.0"),
    max_total_exposure_pct=D("50.0"),
    initial_capital=D("1000"),
)
NOON = datetime(2025, 1, 11, 12, 0, tzinfo=UTC)
DAY = date(2025, 1, 11)
BUY_BTC = SignalIn("BTCUSDT", "BUY", D("50000"))
SELL_ETH = SignalIn("ETHUSDT", "SELL", D("2500"))


def holding_eth(state: str, **kw: object) -> PortfolioView:
    return PortfolioView(
        cash=D("900"),
        holdings={"ETHUSDT": Holding(D("0.04"), D("2500"))},
        trading_state=state,
        **kw,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("stored", "tripped", "effective"),
    [
        (ACTIVE, False, ACTIVE),
        (ACTIVE, True, REDUCING),
        (REDUCING, False, REDUCING),
        (REDUCING, True, REDUCING),
        (HALTED, False, HALTED),
        (HALTED, True, HALTED),
    ],
)
def test_effective_state_is_the_stricter_of_the_traders_and_the_breakers(
    stored: str, tripped: bool, effective: str
) -> None:
    assert effective_state(stored, tripped) == effective


def test_halted_rejects_a_buy_with_reason_halted() -> None:
    decision = evaluate(BUY_BTC, holding_eth(HALTED), LIMITS, NOON)
    assert (decision.decision, decision.reason, decision.approved_qty) == (REJECTED, "halted", D(0))
    assert decision.trading_state == HALTED


def test_halted_rejects_even_an_exit() -> None:
    decision = evaluate(SELL_ETH, holding_eth(HALTED), LIMITS, NOON)
    assert (decision.decision, decision.reason) == (REJECTED, "halted")


def test_reducing_rejects_a_buy_with_reason_reducing() -> None:
    decision = evaluate(BUY_BTC, holding_eth(REDUCING), LIMITS, NOON)
    assert (decision.decision, decision.reason) == (REJECTED, "reducing")
    assert decision.trading_state == REDUCING


def test_reducing_lets_the_sell_of_a_held_position_close_it_whole() -> None:
    decision = evaluate(SELL_ETH, holding_eth(REDUCING), LIMITS, NOON)
    assert (decision.decision, decision.reason, decision.approved_qty) == (APPROVED, "approved", D("0.04"))


def test_reducing_keeps_the_exit_checks_no_position_and_order_pending() -> None:
    assert evaluate(SignalIn("SOLUSDT", "SELL", D("100")), holding_eth(REDUCING), LIMITS, NOON).reason == (
        "no_position"
    )
    pending = holding_eth(REDUCING, pending=(PendingOrder("ETHUSDT", "SELL", D("0.04"), D("2500")),))
    assert evaluate(SELL_ETH, pending, LIMITS, NOON).reason == "order_pending"


def test_active_book_approves_the_same_buy() -> None:
    decision = evaluate(BUY_BTC, holding_eth(ACTIVE), LIMITS, NOON)
    assert decision.decision == APPROVED and decision.trading_state == ACTIVE


def test_tripped_breaker_shows_as_reducing_and_keeps_its_reason() -> None:
    view = PortfolioView(cash=D("940"), day=DAY, day_start_equity=D("1000"))  # −6 %
    decision = evaluate(BUY_BTC, view, LIMITS, NOON)
    assert (decision.reason, decision.breaker_tripped, decision.trading_state) == ("circuit_breaker", True, REDUCING)


def test_breaker_reducing_ends_with_the_utc_day() -> None:
    view = PortfolioView(cash=D("940"), day=DAY, day_start_equity=D("1000"), breaker_latched=True)
    next_day = evaluate(BUY_BTC, view, LIMITS, datetime(2025, 1, 12, 0, 0, tzinfo=UTC))
    assert (next_day.decision, next_day.trading_state) == (APPROVED, ACTIVE)


def test_a_halt_still_records_the_breaker_latch_of_the_day() -> None:
    # the day row keeps being written while halted, so a resume the same day still finds the breaker tripped
    view = PortfolioView(cash=D("940"), day=DAY, day_start_equity=D("1000"), trading_state=HALTED)
    decision = evaluate(BUY_BTC, view, LIMITS, NOON)
    assert (decision.reason, decision.breaker_tripped, decision.trading_state) == ("halted", True, HALTED)
