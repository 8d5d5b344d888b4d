"""Replay files, pacing math and the shipped scenario (market_replay/), plus the scenario's outcome."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal as D
from pathlib import Path

import pytest
from execution.paper import Book, FillRejected, apply_fill
from market_replay.replayfile import (
    _cut_compact,
    frame_event_time,
    hold_frame,
    load_frames,
    loop_shift,
    parse_line,
    schedule,
    shifted,
)
from market_replay.scenario import generate
from risk_manager.rules import Holding, PendingOrder, PortfolioView, RiskLimits, SignalIn, evaluate
from screener.frames import parse_frame
from signal_engine.momentum import MomentumConfig, MomentumEngine

SHIPPED = Path(__file__).resolve().parents[3] / "replays" / "momentum_demo.jsonl"


def test_lines_become_frames_with_their_latest_event_time() -> None:
    frames = load_frames(['[{"E":5,"s":"A"},{"E":7,"s":"B"}]\n', "\n", "   \n", "not json\n", "[]\n", '{"E":3}\n'])
    assert [f.event_time for f in frames] == [7, None, None, None]
    assert frames[1].raw == "not json"  # broken lines are replayed as recorded
    assert parse_line("\n") is None


def test_frame_event_time_ignores_items_without_an_integer_e() -> None:
    assert frame_event_time([{"E": "9"}, {"E": True}, {"E": 4}, 5]) == 4
    assert frame_event_time({"E": 4}) is None


@pytest.mark.parametrize(
    ("speed", "expected"),
    [(1.0, [0.0, 1.0, 3.0, 3.0]), (10.0, [0.0, 0.1, 0.3, 0.3]), (0.5, [0.0, 2.0, 6.0, 6.0]), (0.0, [0.0] * 4)],
)
def test_schedule_follows_event_times_divided_by_speed(speed: float, expected: list[float]) -> None:
    assert schedule([1000, 2000, 4000, None], speed) == pytest.approx(expected)


def test_schedule_never_goes_backwards() -> None:
    assert schedule([5000, 3000, 6000], 1.0) == pytest.approx([0.0, 0.0, 1.0])


def test_schedule_rejects_negative_speed() -> None:
    with pytest.raises(ValueError):
        schedule([1], -1.0)


def test_shifted_moves_every_e_and_keeps_the_format() -> None:
    (frame,) = load_frames(['[{"e":"24hrMiniTicker","E":1000,"s":"AUSDT","c":"1.5"}]'])
    assert shifted(frame, 500) == '[{"e":"24hrMiniTicker","E":1500,"s":"AUSDT","c":"1.5"}]'
    assert shifted(frame, 0) == frame.raw


def test_shifted_from_the_template_is_what_serialising_every_item_gives() -> None:
    """The cut-and-join path gives byte for byte what shifting each item and json.dumps gave, for odd
    items too (unicode, nesting, no E, a boolean E, a non-object), and a frame whose own text holds the
    marker falls back to serialising."""

    def reference(frame, shift: int) -> str:
        items = [{**i, "E": i["E"] + shift} if isinstance(i, dict) and isinstance(i.get("E"), int) else i
                 for i in frame.items]  # fmt: skip
        return json.dumps(items, separators=(",", ":"))

    odd = [
        {"e": "24hrMiniTicker", "E": 1000, "s": "ÄUSDT", "c": "1.5", "x": {"E": 7, "n": [1, "E"]}},
        {"e": "24hrMiniTicker", "s": "NOEUSDT"},
        {"E": True, "s": "BOOLUSDT"},
        "not an object",
        {"E": 1736553600123, "q": "1e3", "note": 'quote " and \\ backslash'},
        {"E": 2000, "s": "\u0000cdb-replay-E\u0000"},
    ]
    for items in (odd[:5], odd):
        (frame,) = load_frames([json.dumps(items)])
        assert (frame.template is None) == (items is odd)
        for shift in (1, 500, -999, 1_736_000_000_000):
            assert shifted(frame, shift) == reference(frame, shift)


def test_loops_stay_monotonic() -> None:
    assert loop_shift(1000, now_ms=50_000, last_sent_event_time=None) == 49_000
    # A second loop after a speed-0 pass that ran ahead of the wall clock continues after it.
    assert loop_shift(1000, now_ms=50_000, last_sent_event_time=90_000) == 89_001


def test_hold_frame_repeats_the_last_state_at_a_new_time() -> None:
    frame = hold_frame({"AUSDT": {"E": 1, "s": "AUSDT", "c": "2"}}, 99)
    assert frame is not None
    assert json.loads(frame) == [{"E": 99, "s": "AUSDT", "c": "2"}]
    assert hold_frame({}, 99) is None


def test_generated_scenario_is_deterministic_and_is_the_shipped_file() -> None:
    lines = generate("momentum")
    assert lines == generate("momentum")
    assert lines != generate("momentum", seed=8)
    assert SHIPPED.read_text(encoding="utf-8").splitlines() == lines  # regenerate with make_scenario.py


def test_unknown_scenario_is_refused() -> None:
    with pytest.raises(KeyError):
        generate("nope")


def test_shipped_scenario_drives_a_filled_buy_an_open_position_and_rejections() -> None:
    """The whole chain in memory (frames → momentum → risk → paper fills) under the default .env limits."""
    limits = RiskLimits(D("5.0"), D("10.0"), D("50.0"), D("1000"))
    engine = MomentumEngine(MomentumConfig(D("3.0"), D("100000"), 300, 600))
    book = Book.fresh("main", D("1000"))
    now = datetime(2025, 1, 11, 12, tzinfo=UTC)
    decisions = []
    for line in SHIPPED.read_text(encoding="utf-8").splitlines():
        for ticker in parse_frame(line, D("100000")).tickers:
            book.mark(ticker.symbol, ticker.close)
            signal = engine.on_tick(ticker.symbol, ticker.close, ticker.quote_volume, ticker.event_time)
            if signal is None:
                continue
            view = PortfolioView(
                cash=book.cash,
                holdings={s: Holding(p.qty, p.last_price) for s, p in book.positions.items() if p.qty > 0},
                pending=tuple[PendingOrder, ...](),
            )
            decision = evaluate(SignalIn(signal.symbol, signal.side, signal.price), view, limits, now)
            decisions.append((signal.symbol, signal.side, decision.reason))
            if decision.approved:
                try:
                    apply_fill(book, signal.side, signal.symbol, decision.approved_qty, signal.price, D(5), D("0.1"))
                except FillRejected:  # pragma: no cover - would be a bug in the limits
                    raise
    assert decisions == [
        ("ETHUSDT", "BUY", "approved"),
        ("XRPUSDT", "SELL", "no_position"),
        ("SOLUSDT", "BUY", "approved"),
        ("ETHUSDT", "BUY", "position_exists"),
        ("ETHUSDT", "SELL", "approved"),
    ]
    assert book.positions["SOLUSDT"].qty > 0  # still open at the end
    assert book.positions["ETHUSDT"].qty == 0  # opened and closed
    assert "LOWVOLUSDT" not in book.positions and "ETHBTC" not in book.positions


def test_a_compact_line_is_shifted_by_cutting_its_own_text() -> None:
    """The fast path (the recorded text cut at each E, no re-serialising): taken only when certain - a
    compact line whose every `"E":` is an item's E - and then byte for byte what serialising gives."""
    cases = {
        '[{"e":"24hrMiniTicker","E":1000,"s":"AUSDT"},{"E":-4,"s":"B"}]': True,
        '[{"E":12,"s":"E"},3,{"E":7}]': True,  # a value "E" is no key
        '[{"E":5},{"s":"a\\"E\\":5"}]': True,  # an escaped "E": inside a string is no key
        '[{"E":5,"x":{"E":5}}]': False,  # a nested E: the cut would find two
        '[{"E": 5, "s": "A"}]': False,  # not compact
        '[{"E":true,"s":"A"},{"E":9}]': False,  # a boolean E counts as an int for the shift, not for the cut
    }
    for line, fast in cases.items():
        (frame,) = load_frames([line])
        assert frame.items is not None
        times = [i["E"] for i in frame.items if isinstance(i, dict) and isinstance(i.get("E"), int)]
        assert (_cut_compact(frame.raw, times) is not None) is fast, line
        shifted_items = [
            {**i, "E": i["E"] + 100} if isinstance(i, dict) and isinstance(i.get("E"), int) else i for i in frame.items
        ]
        assert json.loads(shifted(frame, 100)) == shifted_items, line
        if fast:
            assert shifted(frame, 100) == json.dumps(shifted_items, separators=(",", ":")), line
