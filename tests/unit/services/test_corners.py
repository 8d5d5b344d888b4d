"""Issue 13, the trading rules in the corners, with hand-computed exact numbers:
1 held symbols keep flowing, 2 free cash reserves the full cost of pending orders, 3 the exposure cap
holds after the fill's costs, 4 cooldowns hold back entries only, 5 a restart changes no decision,
6 orders that never fill expire."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal as D
from pathlib import Path

import pytest
from cdb_common.holdings import Holdings
from execution.paper import Book, FillRejected, Position, apply_fill, snapshot
from risk_manager.rules import PendingOrder, PortfolioView, RiskLimits, SignalIn, evaluate
from risk_manager.store import expiry_reason, expiry_record
from screener.frames import parse_frame
from signal_engine.momentum import BUY, SELL, MomentumConfig, MomentumEngine
from signal_engine.restore import PastTick, apply, covered, datetime_ms, parse_past

NOON = datetime(2025, 1, 11, 12, 0, tzinfo=UTC)
LIMITS = RiskLimits(D("5.0"), D("10.0"), D("50.0"), D("1000"), D("1"), D("0.1"), D("5"))
T0 = 1_736_553_600_000
REPLAYS = Path(__file__).resolve().parents[3] / "replays"


def _item(symbol: str, close: str, quote_volume: str, e: int = T0) -> dict[str, object]:
    return {"e": "24hrMiniTicker", "E": e, "s": symbol, "c": close, "o": "1", "h": "2", "l": "0.5",
            "v": "10", "q": quote_volume}  # fmt: skip


# -- 1. held symbols keep flowing -------------------------------------------------------------------


def test_held_symbol_flows_below_min_volume_and_whatever_its_quote_asset_for_exits_only() -> None:
    frame = json.dumps(
        [
            _item("HELDUSDT", "1.5", "50000"),  # held, 50,000 < MIN_VOLUME 100,000
            _item("ETHBTC", "0.06", "12000"),  # held, not a USDT pair
            _item("LOWUSDT", "1.5", "50000"),  # not held, low volume
            _item("OKUSDT", "1.5", "100000"),  # passes the entry filters (q = MIN_VOLUME)
        ]
    )
    result = parse_frame(frame, D("100000"), held={"HELDUSDT", "ETHBTC"})
    assert [t.symbol for t in result.tickers] == ["HELDUSDT", "ETHBTC", "OKUSDT"]
    assert result.exit_only == {"HELDUSDT", "ETHBTC"}
    assert result.filtered == {"low_volume": 1}  # only LOWUSDT is dropped
    not_held = parse_frame(frame, D("100000"))
    assert [t.symbol for t in not_held.tickers] == ["OKUSDT"]
    assert not_held.filtered == {"low_volume": 2, "not_usdt": 1}


def test_holdings_are_open_positions_and_symbols_with_an_unfilled_order() -> None:
    view = Holdings(frozenset({"ETHUSDT"}), {"SOLUSDT": frozenset({"BUY"}), "ETHUSDT": frozenset({"SELL"})})
    assert view.symbols == {"ETHUSDT", "SOLUSDT"}
    assert view.has_position("ETHUSDT") and not view.has_position("SOLUSDT")
    assert view.exit_pending("ETHUSDT") and not view.exit_pending("SOLUSDT")


def test_a_tick_that_failed_the_entry_filters_never_enters_but_still_exits() -> None:
    engine = MomentumEngine(MomentumConfig(D("3"), D("100000"), 300, 600))
    engine.on_tick("HELDUSDT", D("100"), D("5000000"), T0)
    # +5 % = (105 / 100 − 1) · 100 with plenty of volume, but the tick only flows because it is held
    assert engine.on_tick("HELDUSDT", D("105"), D("5000000"), T0 + 1000, entry_allowed=False) is None
    # −4 % = (96 / 100 − 1) · 100 ≤ −3 against the window's reference 100: the exit fires on such a tick
    sell = engine.on_tick("HELDUSDT", D("96"), D("50000"), T0 + 2000, entry_allowed=False, has_position=True)
    assert sell is not None and sell.side == SELL
    assert sell.reference_price == D("100") and sell.change_pct == D("-4")


# -- 2. free cash reserves the full cost of pending orders ------------------------------------------


def test_free_cash_reserves_notional_slippage_and_fee_of_every_pending_buy() -> None:
    limits = RiskLimits(D("5"), D("60"), D("200"), D("1000"), D("1"), D("0.1"), D("5"))  # cash binds, not the cap
    pending = (PendingOrder("SOLUSDT", "BUY", D("4"), D("100")),)
    decision = evaluate(SignalIn("BTCUSDT", "BUY", D("50000")), PortfolioView(cash=D("1000"), pending=pending),
                        limits, NOON)  # fmt: skip
    # requested = 60 % of 1000 / 50000 = 0.012; free cash = 1000 − 4 · 100 · 1.0005 · 1.001 = 599.3998;
    # affordable = 599.3998 / (50000 · 1.0015005 = 50075.025) = 0.0119700349… → 0.01197003
    assert (decision.reason, decision.requested_qty, decision.approved_qty) == (
        "approved_shrunk", D("0.012"), D("0.01197003"),
    )  # fmt: skip
    book = Book.fresh("main", D("1000"))
    apply_fill(book, "BUY", "SOLUSDT", D("4"), D("100"), D("5"), D("0.1"))
    assert book.cash == D("599.3998")  # 1000 − 400.2 − 0.4002
    fill = apply_fill(book, "BUY", "BTCUSDT", decision.approved_qty, D("50000"), D("5"), D("0.1"))
    assert fill.notional == D("598.80075075")  # 0.01197003 · 50025
    assert fill.fee == D("0.59880075075")  # 0.1 % of it
    assert book.cash == D("0.00024849925")  # 599.3998 − 598.80075075 − 0.59880075075: never negative
    # the old reserve (notional only: 1000 − 400 = 600 → 600 / 50075.025 = 0.01198202) does not fit the cash
    old = Book.fresh("main", D("1000"))
    apply_fill(old, "BUY", "SOLUSDT", D("4"), D("100"), D("5"), D("0.1"))
    with pytest.raises(FillRejected, match="insufficient_cash"):
        apply_fill(old, "BUY", "BTCUSDT", D("0.01198202"), D("50000"), D("5"), D("0.1"))


# -- 3. the exposure cap holds after the fill's own costs -------------------------------------------


def _eth_book() -> Book:
    book = Book(portfolio="main", cash=D("550"), peak_equity=D("1000"))
    book.positions["ETHUSDT"] = Position("ETHUSDT", D("0.18"), D("2500"), D("2500"))  # 450 at market
    return book


def test_exposure_stays_within_the_cap_of_the_equity_left_after_the_fill() -> None:
    view = PortfolioView(cash=D("550"), holdings={"ETHUSDT": _holding("0.18")})
    decision = evaluate(SignalIn("BTCUSDT", "BUY", D("50000")), view, LIMITS, NOON)
    assert decision.approved_qty == D("0.00099925")  # (500 − 450) / 1.00075025 = 49.9625… → / 50000
    book = _eth_book()
    fill = apply_fill(book, "BUY", "BTCUSDT", decision.approved_qty, D("50000"), D("5"), D("0.1"))
    snap = snapshot(book)
    assert fill.notional == D("49.98748125") and fill.fee == D("0.04998748125")  # 0.00099925 · 50025; 0.1 %
    assert snap.cash == D("499.96253126875")  # 550 − 49.98748125 − 0.04998748125
    assert snap.equity == D("999.92503126875")  # cash + 450 + 0.00099925 · 50000
    assert snap.exposure == D("499.9625")  # 450 + 49.9625
    assert snap.exposure <= snap.equity * D("0.5")  # 499.9625 ≤ 499.962515634375
    # sized before the costs (50 / 50000 = 0.001) the cap breaks right after the fill
    old = _eth_book()
    apply_fill(old, "BUY", "BTCUSDT", D("0.001"), D("50000"), D("5"), D("0.1"))
    old_snap = snapshot(old)
    assert old_snap.exposure == D("500") and old_snap.equity == D("999.924975")  # 500 > 499.9624875


def _holding(qty: str) -> object:
    from risk_manager.rules import Holding

    return Holding(D(qty), D("2500"))


# -- 4. cooldowns hold back entries, never exits ----------------------------------------------------


def _engine() -> MomentumEngine:
    return MomentumEngine(MomentumConfig(D("3"), D("100000"), 300, 600))


def test_a_rejected_sell_before_the_entry_filled_does_not_hold_back_the_real_exit() -> None:
    engine = _engine()
    engine.on_tick("ETHUSDT", D("100"), D("1000000"), T0)
    # t = 10 s: −3.1 % = (96.9 / 100 − 1) · 100, no position yet (the BUY is unfilled): risk says no_position
    first = engine.on_tick("ETHUSDT", D("96.9"), D("1000000"), T0 + 10_000)
    assert first is not None and first.side == SELL
    # t = 20 s, 10 s into the 600 s cooldown: the entry has filled → the exit fires anyway (−3.2 %)
    exit_ = engine.on_tick("ETHUSDT", D("96.8"), D("1000000"), T0 + 20_000, has_position=True)
    assert exit_ is not None and exit_.side == SELL and exit_.change_pct == D("-3.2")
    # while that exit order is under way, no second one
    assert engine.on_tick("ETHUSDT", D("96.7"), D("1000000"), T0 + 30_000, has_position=True, exit_pending=True) is None
    # closed: a SELL for a symbol without a position is a repeat within the cooldown (20 s + 600 s)
    assert engine.on_tick("ETHUSDT", D("96.6"), D("1000000"), T0 + 40_000) is None
    assert engine.on_tick("ETHUSDT", D("96.6"), D("1000000"), T0 + 619_999) is None


def test_an_exit_is_repeated_when_the_previous_one_did_not_close_the_position() -> None:
    engine = _engine()
    engine.on_tick("ETHUSDT", D("100"), D("1000000"), T0)
    assert engine.on_tick("ETHUSDT", D("96"), D("1000000"), T0 + 1000, has_position=True) is not None
    # its order expired unfilled (position still open, nothing pending): the next tick exits again
    again = engine.on_tick("ETHUSDT", D("95.9"), D("1000000"), T0 + 2000, has_position=True)
    assert again is not None and again.change_pct == D("-4.1")  # (95.9 / 100 − 1) · 100


def test_cooldown_still_holds_back_repeated_entries() -> None:
    engine = _engine()
    engine.on_tick("SOLUSDT", D("100"), D("1000000"), T0)
    assert engine.on_tick("SOLUSDT", D("103"), D("1000000"), T0 + 1000).side == BUY  # type: ignore[union-attr]
    assert engine.on_tick("SOLUSDT", D("104"), D("1000000"), T0 + 2000, has_position=True) is None  # +4 %, 1 s in
    assert engine.on_tick("SOLUSDT", D("104"), D("1000000"), T0 + 600_999) is None  # 599.999 s after the BUY
    # 600 s after the BUY (window 300 s: reference is the 104 in effect since t = 2 s → 0 %): a new +3.5 %
    again = engine.on_tick("SOLUSDT", D("107.64"), D("1000000"), T0 + 601_000)
    assert again is not None and again.side == BUY and again.change_pct == D("3.5")  # 107.64 / 104 = 1.035


# -- 5. a restart changes no decision ---------------------------------------------------------------

TICKS = [  # (symbol, price, seconds): WIN rises 2 % before the restart and 1.5 % after; REP fires before
    ("WINUSDT", "100", 0), ("REPUSDT", "10", 0), ("REPUSDT", "10.4", 60), ("WINUSDT", "102", 100),
]  # fmt: skip
AFTER = [("WINUSDT", "103.5", 200), ("REPUSDT", "10.8", 200), ("QUIETUSDT", "52", 200)]


def _run(engine: MomentumEngine, ticks: list[tuple[str, str, int]]) -> list[tuple[str, str, D]]:
    out = []
    for symbol, price, s in ticks:
        found = engine.on_tick(symbol, D(price), D("1000000"), T0 + s * 1000)
        if found is not None:
            out.append((found.symbol, found.side, found.change_pct))
    return out


def test_restored_windows_and_cooldowns_decide_exactly_as_without_the_restart() -> None:
    quiet = ("QUIETUSDT", D("50"), T0 - 1_000_000)  # last seen 1,000 s before: only in market_snapshots
    uninterrupted = _engine()
    uninterrupted.restore_point(*quiet)
    before = _run(uninterrupted, TICKS)
    assert before == [("REPUSDT", BUY, D("4"))]  # (10.4 / 10 − 1) · 100 at t = 60 s
    expected = _run(uninterrupted, AFTER)
    # WIN: (103.5 / 100 − 1) · 100 = 3.5 over the full window; REP: 8 % but 140 s into its cooldown;
    # QUIET: reference = its last price 50 (in effect at the window start −100 s): (52 / 50 − 1) · 100 = 4
    assert expected == [("WINUSDT", BUY, D("3.5")), ("QUIETUSDT", BUY, D("4"))]

    restarted = _engine()
    past = [PastTick(f"{i}-0", s, D(p), T0 + t * 1000) for i, (s, p, t) in enumerate(TICKS)]
    assert apply(restarted, past, [("REPUSDT", BUY, T0 + 60_000)], [quiet]) == 4
    assert _run(restarted, AFTER) == expected
    # without the restore a fresh engine decides differently: WIN +1.47 % only, REP fires again, QUIET 0 %
    assert _run(_engine(), AFTER) == []


def test_restore_helpers_read_ticks_and_times_exactly() -> None:
    tick = {"event_id": "e1", "symbol": "ETHUSDT", "price": "2500.5", "tick_time": T0, "is_probe": False}
    assert parse_past("1-0", {"data": json.dumps(tick)}) == (PastTick("1-0", "ETHUSDT", D("2500.5"), T0), "e1")
    assert parse_past("2-0", {"data": json.dumps({**tick, "is_probe": True})}) == (None, "e1")  # no window
    assert parse_past("3-0", {"data": "{not json"}) == (None, None)
    assert datetime_ms(datetime(2025, 1, 11, 0, 0, 0, 123000, tzinfo=UTC)) == T0 + 123
    window = 300_000
    newest_first = [PastTick("x", "A", D(1), T0), PastTick("x", "A", D(1), T0 - window - 60_000)]
    assert not covered(newest_first, window)  # exactly window + 60 s back: read one more
    assert covered([*newest_first, PastTick("x", "A", D(1), T0 - window - 60_001)], window)


# -- 6. orders that never fill expire ---------------------------------------------------------------


def test_expired_order_is_audited_with_its_reason_and_the_exposure_it_releases() -> None:
    row = ("o-1", "r-1", "s-1", "SOLUSDT", "BUY", D("0.5"), D("101.25"), "main", False, D("301.5"))
    record = expiry_record(row, 300, "2025-01-11T12:05:01.500+00:00")
    assert record["event"] == "order_expired" and record["decision"] == "EXPIRED"
    assert record["detail"] == expiry_reason(300) == "expired: not filled within 300 s (ORDER_TTL_SECONDS)"
    assert record["released_notional"] == D("50.625")  # 0.5 · 101.25
    assert record["age_seconds"] == 301.5 and record["order_id"] == "o-1"
    # once expired the order is no longer pending: the symbol may be entered again with the room back
    pending = (PendingOrder("SOLUSDT", "BUY", D("0.5"), D("101.25")),)
    signal = SignalIn("SOLUSDT", "BUY", D("100"))
    assert evaluate(signal, PortfolioView(cash=D("1000"), pending=pending), LIMITS, NOON).reason == "position_exists"
    released = evaluate(signal, PortfolioView(cash=D("1000")), LIMITS, NOON)
    assert (released.reason, released.approved_qty, released.exposure) == ("approved", D("1"), D("0"))  # 100 / 100


# -- the corners replay (replays/corners.jsonl) in memory, as the e2e test drives it on the stack ---


def test_corners_scenario_holds_marks_exits_and_fires_each_entry_once() -> None:
    from market_replay.scenario import START_MS, generate
    from risk_manager.rules import Holding

    lines = generate("corners")
    assert (REPLAYS / "corners.jsonl").read_text(encoding="utf-8").splitlines() == lines  # make_scenario.py
    engine = _engine()
    book = Book.fresh("main", D("1000"))
    signals, low_volume_held = [], 0
    for line in lines:
        held = {s for s, p in book.positions.items() if p.qty > 0}
        result = parse_frame(line, D("100000"), held=held)
        for t in result.tickers:
            low_volume_held += t.symbol in result.exit_only
            book.mark(t.symbol, t.close)
            entry_ok = t.symbol not in result.exit_only
            found = engine.on_tick(
                t.symbol, t.close, t.quote_volume, t.event_time, entry_allowed=entry_ok, has_position=t.symbol in held
            )
            if found is None:
                continue
            holdings = {s: Holding(p.qty, p.last_price) for s, p in book.positions.items() if p.qty > 0}
            view = PortfolioView(cash=book.cash, holdings=holdings)
            decision = evaluate(SignalIn(found.symbol, found.side, found.price), view, LIMITS, NOON)
            signals.append((found.symbol, found.side, (found.tick_time - START_MS) // 1000, decision.reason))
            if decision.approved:
                apply_fill(book, found.side, found.symbol, decision.approved_qty, found.price, D("5"), D("0.1"))
    assert signals == [
        ("HELDUSDT", BUY, 52, "approved"),  # +3 % of 10 reached on the 4 s grid
        ("HELDUSDT", SELL, 252, "approved"),  # the exit, at 50,000 quote volume (held: it flows)
        ("REPUSDT", BUY, 348, "approved"),  # once: the +4 % more at 420..480 s is inside the cooldown
        ("WINUSDT", BUY, 564, "approved"),  # 3 % over the full window: 300 + 3/3.5 · 300 = 557 s, noise → 564
    ]
    assert low_volume_held > 0 and book.positions["HELDUSDT"].qty == 0
    assert "LOWUSDT" not in book.positions
