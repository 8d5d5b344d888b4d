"""The momentum rule (signal_engine/momentum.py) with exact numbers: threshold, volume, window, cooldown."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from signal_engine.momentum import BUY, SELL, MomentumConfig, MomentumEngine, confidence

S = 1000  # ms per second of event time
VOL = D("500000")


def engine(
    threshold: str = "3.0", min_volume: str = "100000", window: int = 300, cooldown: int = 600
) -> MomentumEngine:
    return MomentumEngine(MomentumConfig(D(threshold), D(min_volume), window, cooldown))


def run(eng: MomentumEngine, ticks: list[tuple[int, str]], volume: D = VOL, symbol: str = "ETHUSDT"):
    """Feed (second, price) ticks; return the last result."""
    result = None
    for second, price in ticks:
        result = eng.on_tick(symbol, D(price), volume, second * S)
    return result


def test_buy_exactly_on_the_threshold() -> None:
    signal = run(engine(), [(0, "100"), (60, "103")])
    assert signal is not None
    assert signal.side == BUY
    assert signal.change_pct == D("3.00000000")
    assert signal.reference_price == D("100")
    assert signal.confidence == D("0.5")


def test_no_buy_just_below_the_threshold() -> None:
    assert run(engine(), [(0, "100"), (60, "102.99")]) is None


def test_sell_exactly_on_the_negative_threshold() -> None:
    signal = run(engine(), [(0, "100"), (60, "97")])
    assert signal is not None and signal.side == SELL
    assert signal.change_pct == D("-3.00000000")


def test_no_sell_just_above_the_negative_threshold() -> None:
    assert run(engine(), [(0, "100"), (60, "97.01")]) is None


def test_buy_needs_min_volume_exactly() -> None:
    assert run(engine(), [(0, "100"), (60, "110")], volume=D("99999.99")) is None
    signal = run(engine(), [(0, "100"), (60, "110")], volume=D("100000"))
    assert signal is not None and signal.side == BUY


def test_sell_is_an_exit_and_needs_no_volume() -> None:
    signal = run(engine(), [(0, "100"), (60, "90")], volume=D("0"))
    assert signal is not None and signal.side == SELL


def test_cooldown_blocks_repeated_buys_until_it_has_elapsed() -> None:
    eng = engine()
    assert run(eng, [(0, "100"), (60, "103")]).side == BUY
    assert run(eng, [(100, "110")]) is None  # +10 % but 40 s after the BUY
    assert run(eng, [(659, "114")]) is None  # 599 s after the BUY: still cooling down
    signal = run(eng, [(660, "114")])  # exactly 600 s later: allowed (+3.64 % vs 110 at the window start)
    assert signal is not None and signal.side == BUY
    assert signal.reference_price == D("110")


def test_buy_cooldown_does_not_delay_an_exit() -> None:
    eng = engine()
    assert run(eng, [(0, "100"), (60, "103")]).side == BUY
    signal = run(eng, [(120, "96.9")])
    assert signal is not None and signal.side == SELL


def test_probe_ticks_ignore_the_cooldown() -> None:
    eng = engine()
    assert run(eng, [(0, "100"), (60, "103")]).side == BUY
    assert eng.on_tick("ETHUSDT", D("106"), VOL, 61 * S) is None
    signal = eng.on_tick("ETHUSDT", D("106"), VOL, 62 * S, is_probe=True)
    assert signal is not None and signal.side == BUY


def test_window_evicts_by_event_time() -> None:
    # At t=400 the window starts at t=100: the price in effect then is 101, not the 100 of t=0.
    eng = engine()
    assert run(eng, [(0, "100"), (100, "101"), (400, "104")]) is None  # 104/101 = +2.97 %
    assert eng.reference_price("ETHUSDT") == D("101")
    # The same prices with a longer window still see the 100 of t=0: +4 %.
    signal = run(engine(window=400), [(0, "100"), (100, "101"), (400, "104")])
    assert signal is not None and signal.change_pct == D("4.00000000")


def test_price_in_effect_at_window_start_is_kept_for_sparse_symbols() -> None:
    # Only two updates, 301 s apart: the price at the window start (t=1) was still 100.
    signal = run(engine(), [(0, "100"), (301, "103")])
    assert signal is not None and signal.reference_price == D("100")


def test_window_uses_event_time_not_arrival_order_speed() -> None:
    # The same event times give the same decision however fast they arrive (replay at speed 0).
    fast = engine()
    ticks = [(t, str(100 + t // 60)) for t in range(0, 181, 1)]
    signals = [fast.on_tick("X", D(p), VOL, t * S) for t, p in ticks]
    assert [s.tick_time for s in signals if s] == [180 * S]  # 103/100 first reached at t=180


def test_out_of_order_tick_is_ignored() -> None:
    eng = engine()
    run(eng, [(0, "100"), (100, "100")])
    assert eng.on_tick("ETHUSDT", D("120"), VOL, 50 * S) is None
    assert eng.out_of_order == 1


def test_symbols_are_independent() -> None:
    eng = engine()
    run(eng, [(0, "100")], symbol="AUSDT")
    run(eng, [(0, "50")], symbol="BUSDT")
    signal = eng.on_tick("BUSDT", D("51.5"), VOL, 30 * S)
    assert signal is not None and signal.symbol == "BUSDT" and signal.change_pct == D("3.00000000")


@pytest.mark.parametrize(
    ("change", "expected"),
    [("3", "0.5"), ("4.5", "0.75"), ("6", "1"), ("9", "1"), ("-7.5", "1"), ("1", "0.16666"), ("0", "0")],
)
def test_confidence_is_change_over_twice_the_threshold_capped_at_one(change: str, expected: str) -> None:
    assert confidence(D(change), D("3")) == D(expected)


def test_confidence_always_in_unit_interval() -> None:
    for tenths in range(-500, 501, 7):
        value = confidence(D(tenths) / 10, D("3"))
        assert D(0) <= value <= D(1)
