"""The risk checks (risk_manager/rules.py) at and past each edge, with exact Decimal quantities."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal as D

from risk_manager.rules import (
    APPROVED,
    REJECTED,
    Holding,
    PendingOrder,
    PortfolioView,
    RiskLimits,
    SignalIn,
    evaluate,
)

LIMITS = RiskLimits(
    max_daily_drawdown_pct=D("5.0"),
    max_position_size_pct=D("10.0"),
    max_total_exposure_pct=D("50.0"),
    initial_capital=D("1000"),
    min_order_notional=D("1"),
    fee_pct=D("0.1"),
    slippage_bps=D("5"),
)
NOON = datetime(2025, 1, 11, 12, 0, tzinfo=UTC)
DAY = date(2025, 1, 11)
BUY_BTC = SignalIn("BTCUSDT", "BUY", D("50000"))


def eth_view(eth_qty: str, cash: str, **kw: object) -> PortfolioView:
    return PortfolioView(cash=D(cash), holdings={"ETHUSDT": Holding(D(eth_qty), D("2500"))}, **kw)  # type: ignore[arg-type]


def test_fresh_portfolio_buys_max_position_size_of_initial_capital() -> None:
    decision = evaluate(BUY_BTC, PortfolioView.fresh(D("1000")), LIMITS, NOON)
    assert (decision.decision, decision.reason) == (APPROVED, "approved")
    assert decision.approved_qty == D("0.002")  # (1000 · 10 / 100) / 50000
    assert decision.requested_qty == D("0.002")
    assert decision.equity == D("1000")


def test_quantity_is_rounded_down_to_whole_satoshis() -> None:
    decision = evaluate(SignalIn("BTCUSDT", "BUY", D("30000")), PortfolioView.fresh(D("1000")), LIMITS, NOON)
    assert decision.approved_qty == D("0.00333333")  # 100 / 30000 = 0.0033333…, rounded down


# The cap holds after costs: k = 1.0005 · 1.001 − 1 = 0.0015005 (slippage 5 bps, fee 0.1 %), c = 0.5,
# room = (c · (equity − k · pending) − exposure) / (1 + c · k) = (…) / 1.00075025.


def test_exposure_exactly_at_the_limit_after_costs_is_approved_unshrunk() -> None:
    # ETH 0.15996999 · 2500 = 399.924975 held, cash 600.075025, equity 1000;
    # room = (500 − 399.924975) / 1.00075025 = 100.075025 / 1.00075025 = 100 = the 100 USDT order.
    decision = evaluate(BUY_BTC, eth_view("0.15996999", "600.075025"), LIMITS, NOON)
    assert (decision.decision, decision.reason, decision.approved_qty) == (APPROVED, "approved", D("0.002"))
    assert decision.exposure == D("399.924975")
    assert decision.limits["exposure_room"] == "100.000000000000"


def test_exposure_past_the_limit_shrinks_to_the_room_after_costs() -> None:
    # 450 held → room (500 − 450) / 1.00075025 = 49.962515622654… → 49.9625… / 50000 = 0.00099925 BTC
    # (before issue 13 it was 50 / 50000 = 0.001, which breaks the cap once the fee is paid).
    decision = evaluate(BUY_BTC, eth_view("0.18", "550"), LIMITS, NOON)
    assert (decision.decision, decision.reason) == (APPROVED, "approved_shrunk")
    assert decision.requested_qty == D("0.002")
    assert decision.approved_qty == D("0.00099925")
    assert decision.limits["exposure_room"] == "49.962515622654"


def test_exposure_room_of_exactly_min_notional_after_costs_still_trades() -> None:
    # 0.1995996999 · 2500 = 498.99924975 held → room (500 − 498.99924975) / 1.00075025 = 1 → 1 / 50000
    decision = evaluate(BUY_BTC, eth_view("0.1995996999", "501.00075025"), LIMITS, NOON)
    assert (decision.decision, decision.approved_qty) == (APPROVED, D("0.00002"))


def test_exposure_room_below_min_notional_rejects() -> None:
    # 499.5 held → room 0.5 / 1.00075025 = 0.499625156227 < 1
    decision = evaluate(BUY_BTC, eth_view("0.1998", "500.5"), LIMITS, NOON)
    assert (decision.decision, decision.reason, decision.approved_qty) == (REJECTED, "exposure_limit", D(0))
    assert decision.limits["exposure_room"] == "0.499625156227"


def test_pending_buys_count_as_exposure_and_their_costs_lower_the_equity() -> None:
    pending = (PendingOrder("SOLUSDT", "BUY", D("4.5"), D("100")),)  # 450 on its way
    decision = evaluate(BUY_BTC, PortfolioView(cash=D("1000"), pending=pending), LIMITS, NOON)
    # room = (0.5 · (1000 − 0.0015005 · 450) − 450) / 1.00075025 = (499.6623875 − 450) / 1.00075025
    #      = 49.625156226541… → 49.625156… / 50000 = 0.00099250 BTC
    assert (decision.reason, decision.approved_qty) == ("approved_shrunk", D("0.00099250"))
    assert decision.limits["exposure_room"] == "49.625156226541"


def test_one_position_per_symbol() -> None:
    view = PortfolioView(cash=D("900"), holdings={"BTCUSDT": Holding(D("0.002"), D("50000"))})
    decision = evaluate(BUY_BTC, view, LIMITS, NOON)
    assert (decision.decision, decision.reason) == (REJECTED, "position_exists")


def test_unfilled_buy_counts_as_a_position() -> None:
    view = PortfolioView(cash=D("1000"), pending=(PendingOrder("BTCUSDT", "BUY", D("0.002"), D("50000")),))
    assert evaluate(BUY_BTC, view, LIMITS, NOON).reason == "position_exists"


def test_sell_without_position_is_rejected() -> None:
    decision = evaluate(SignalIn("XRPUSDT", "SELL", D("0.5")), PortfolioView.fresh(D("1000")), LIMITS, NOON)
    assert (decision.decision, decision.reason, decision.approved_qty) == (REJECTED, "no_position", D(0))


def test_sell_closes_the_whole_long() -> None:
    view = PortfolioView(cash=D("900"), holdings={"SOLUSDT": Holding(D("0.97"), D("103"))})
    decision = evaluate(SignalIn("SOLUSDT", "SELL", D("100")), view, LIMITS, NOON)
    assert (decision.decision, decision.approved_qty) == (APPROVED, D("0.97"))


def test_second_sell_while_one_is_pending_is_rejected() -> None:
    view = PortfolioView(
        cash=D("900"),
        holdings={"SOLUSDT": Holding(D("1"), D("100"))},
        pending=(PendingOrder("SOLUSDT", "SELL", D("1"), D("100")),),
    )
    assert evaluate(SignalIn("SOLUSDT", "SELL", D("99")), view, LIMITS, NOON).reason == "order_pending"


def breaker_view(cash: str) -> PortfolioView:
    return PortfolioView(cash=D(cash), day=DAY, day_start_equity=D("1000"))


def test_circuit_breaker_trips_exactly_at_max_daily_drawdown() -> None:
    decision = evaluate(BUY_BTC, breaker_view("950"), LIMITS, NOON)  # −5.000 %
    assert (decision.decision, decision.reason) == (REJECTED, "circuit_breaker")
    assert decision.breaker_tripped and decision.daily_drawdown_pct == D("5")


def test_circuit_breaker_open_just_below_the_limit() -> None:
    decision = evaluate(BUY_BTC, breaker_view("950.1"), LIMITS, NOON)  # −4.99 %
    assert decision.decision == APPROVED and not decision.breaker_tripped


def test_circuit_breaker_holds_until_2359_and_reopens_at_midnight_utc() -> None:
    view = breaker_view("940")  # −6 % against the day start of 2025-01-11
    late = evaluate(BUY_BTC, view, LIMITS, datetime(2025, 1, 11, 23, 59, 59, tzinfo=UTC))
    assert late.reason == "circuit_breaker"
    midnight = evaluate(BUY_BTC, view, LIMITS, datetime(2025, 1, 12, 0, 0, tzinfo=UTC))
    assert midnight.decision == APPROVED
    assert midnight.day_start_equity == D("940")  # the new day starts at the current equity
    assert midnight.approved_qty == D("0.00188")  # 10 % of 940 at 50000


def test_circuit_breaker_uses_the_utc_day_of_an_aware_local_time() -> None:
    from datetime import timedelta, timezone

    berlin = timezone(timedelta(hours=1))
    # 00:30 in Berlin on the 12th is still 23:30 UTC on the 11th: still tripped.
    decision = evaluate(BUY_BTC, breaker_view("940"), LIMITS, datetime(2025, 1, 12, 0, 30, tzinfo=berlin))
    assert decision.reason == "circuit_breaker"


def test_latched_breaker_stays_tripped_after_a_recovery_the_same_day() -> None:
    view = PortfolioView(cash=D("1000"), day=DAY, day_start_equity=D("1000"), breaker_latched=True)
    assert evaluate(BUY_BTC, view, LIMITS, NOON).reason == "circuit_breaker"
    assert evaluate(BUY_BTC, view, LIMITS, datetime(2025, 1, 12, 0, 0, tzinfo=UTC)).decision == APPROVED


def test_sell_passes_while_the_breaker_is_tripped() -> None:
    view = PortfolioView(
        cash=D("900"), holdings={"SOLUSDT": Holding(D("1"), D("40"))}, day=DAY, day_start_equity=D("1000")
    )
    decision = evaluate(SignalIn("SOLUSDT", "SELL", D("40")), view, LIMITS, NOON)  # equity 940: −6 %
    assert decision.breaker_tripped
    assert (decision.decision, decision.approved_qty) == (APPROVED, D("1"))


def test_drawdown_is_measured_on_marked_to_market_equity() -> None:
    # Same cash, no trade closed: only the ETH mark differs. At 1500 the equity is 750 + 150 = 900 (−10 %).
    def view(mark: str) -> PortfolioView:
        return PortfolioView(
            cash=D("750"), holdings={"ETHUSDT": Holding(D("0.1"), D(mark))}, day=DAY, day_start_equity=D("1000")
        )

    assert evaluate(BUY_BTC, view("2500"), LIMITS, NOON).decision == APPROVED
    falling = evaluate(BUY_BTC, view("1500"), LIMITS, NOON)
    assert falling.reason == "circuit_breaker"
    assert falling.equity == D("900") and falling.daily_drawdown_pct == D("10")


def test_signal_price_marks_its_own_symbol() -> None:
    view = PortfolioView(cash=D("500"), holdings={"ETHUSDT": Holding(D("0.2"), D("2500"))})
    decision = evaluate(SignalIn("ETHUSDT", "SELL", D("2000")), view, LIMITS, NOON)
    assert decision.equity == D("900")


def test_position_below_min_notional_is_rejected() -> None:
    decision = evaluate(BUY_BTC, PortfolioView.fresh(D("5")), LIMITS, NOON)  # 10 % of 5 = 0.5 USDT
    assert (decision.decision, decision.reason) == (REJECTED, "below_min_notional")


def test_cash_with_fees_caps_a_buy_when_exposure_allows_everything() -> None:
    limits = RiskLimits(D("5"), D("100"), D("100"), D("1000"))
    decision = evaluate(BUY_BTC, PortfolioView.fresh(D("1000")), limits, NOON)
    unit_cost = D("50000") * D("1.0005") * D("1.001")
    expected = (D("1000") / unit_cost).quantize(D("0.00000001"), rounding="ROUND_DOWN")
    assert (decision.reason, decision.approved_qty) == ("approved_shrunk", expected)
    assert decision.approved_qty * unit_cost <= D("1000")


def test_decision_records_the_limits_used() -> None:
    decision = evaluate(BUY_BTC, PortfolioView.fresh(D("1000")), LIMITS, NOON)
    assert decision.limits["max_position_size_pct"] == "10.0"
    assert decision.limits["max_total_exposure_pct"] == "50.0"
    assert decision.limits["max_daily_drawdown_pct"] == "5.0"
    assert decision.limits["day"] == "2025-01-11"
