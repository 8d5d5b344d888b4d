"""miniTicker frame parsing and filtering (screener/frames.py): the exchange's exact format, bad input."""

from __future__ import annotations

import json
from decimal import Decimal as D

from screener.frames import parse_frame, parse_item, probe_frame

MIN = D("100000")


def item(symbol: str = "BTCUSDT", **over: object) -> dict[str, object]:
    base: dict[str, object] = {
        "e": "24hrMiniTicker", "E": 1736553600123, "s": symbol, "c": "43260.00000000", "o": "42000.00000000",
        "h": "43500.00000000", "l": "41800.00000000", "v": "12345.67800000", "q": "530000000.12345678",
    }  # fmt: skip
    base.update(over)
    return base


def frame(*items: object) -> str:
    return json.dumps(list(items), separators=(",", ":"))


def test_exact_exchange_format_is_parsed_into_decimals() -> None:
    result = parse_frame(frame(item()), MIN)
    assert result.rejected is None and result.bad_items == 0
    (ticker,) = result.tickers
    assert ticker.symbol == "BTCUSDT" and ticker.event_time == 1736553600123
    assert ticker.close == D("43260.00000000") and ticker.open == D("42000")
    assert ticker.high == D("43500") and ticker.low == D("41800")
    assert ticker.base_volume == D("12345.678") and ticker.quote_volume == D("530000000.12345678")
    assert ticker.change_pct == D("3")  # (43260 / 42000 − 1) · 100


def test_only_usdt_pairs_are_kept() -> None:
    result = parse_frame(frame(item("ETHBTC"), item("BTCUSDT"), item("USDT"), item("BTCUSDC")), MIN)
    assert [t.symbol for t in result.tickers] == ["BTCUSDT"]
    assert result.filtered == {"not_usdt": 3}


def test_min_volume_filter_is_inclusive() -> None:
    result = parse_frame(
        frame(item("AUSDT", q="99999.99999999"), item("BUSDT", q="100000"), item("CUSDT", q="100000.00000001")), MIN
    )
    assert [t.symbol for t in result.tickers] == ["BUSDT", "CUSDT"]
    assert result.filtered == {"low_volume": 1}


def test_non_json_is_rejected_not_raised() -> None:
    for raw in ("not json", "[{", b"\xff\xfe\x00", ""):
        assert parse_frame(raw, MIN).rejected == "invalid_json"


def test_oversized_frame_is_rejected_before_parsing() -> None:
    raw = frame(*[item(f"S{i}USDT") for i in range(50)])
    assert parse_frame(raw, MIN, max_bytes=len(raw) - 1).rejected == "oversized"
    assert parse_frame(raw, MIN, max_bytes=len(raw)).rejected is None


def test_wrong_shapes_are_rejected() -> None:
    assert parse_frame('{"result":null,"id":1}', MIN).rejected == "wrong_shape"
    assert parse_frame("42", MIN).rejected == "wrong_shape"
    assert parse_frame('"text"', MIN).rejected == "wrong_shape"
    assert parse_frame("[1, 2, 3]", MIN).rejected == "wrong_shape"


def test_empty_array_is_a_valid_quiet_frame() -> None:
    result = parse_frame("[]", MIN)
    assert result.rejected is None and result.tickers == []


def test_bad_items_are_skipped_and_counted_the_rest_kept() -> None:
    bad = [
        item(e="24hrTicker"), item(c="abc"), item(o="0"), item(c="NaN"), item(c="-1"), item(E="123"),
        item(E=True), item(s="btcusdt"), item(s=42), item(q="Infinity"), {"s": "XUSDT"}, "str", None,
    ]  # fmt: skip
    result = parse_frame(frame(item("ETHUSDT"), *bad), MIN)
    assert [t.symbol for t in result.tickers] == ["ETHUSDT"]
    assert result.bad_items == len(bad)
    assert result.rejected is None


def test_json_numbers_are_read_as_exact_decimals() -> None:
    raw = '[{"e":"24hrMiniTicker","E":1,"s":"AUSDT","c":0.1,"o":0.3,"h":0.3,"l":0.1,"v":1,"q":200000.5}]'
    (ticker,) = parse_frame(raw, MIN).tickers
    assert ticker.close == D("0.1") and ticker.quote_volume == D("200000.5")


def test_server_shutdown_event_is_recognised() -> None:
    result = parse_frame('{"e":"serverShutdown","E":1736553600000}', MIN)
    assert result.shutdown and result.rejected is None and not result.tickers


def test_parse_item_rejects_missing_fields() -> None:
    for key in ("c", "o", "h", "l", "v", "q", "s", "E"):
        broken = item()
        del broken[key]
        assert parse_item(broken) is None


def test_probe_frames_use_the_exchange_format_and_pass_the_filter() -> None:
    frames = probe_frame("CDBPROBE1A2B3C4DUSDT", [D("100"), D("105")], 1736553600000, D("1000000"))
    parsed = [parse_frame(raw, MIN) for raw in frames]
    assert [r.tickers[0].close for r in parsed] == [D("100"), D("105")]
    assert [r.tickers[0].event_time for r in parsed] == [1736553600000, 1736553600001]
    assert parsed[1].tickers[0].change_pct == D("5")


def test_snapshot_rows_are_one_json_array_with_exact_numbers_and_the_minute_of_each_tick() -> None:
    from screener.snapshots import snapshot_rows_json

    tick = item(E=1736553659999, c="0.000000000001", q="123456789012.123456789012")
    (ticker,) = parse_frame(frame(tick), D(0)).tickers
    probe = ticker._replace(symbol="CDBPROBE1234ABCDUSDT", event_time=1736553660000)
    rows = json.loads(snapshot_rows_json([(ticker, False), (probe, True)], 'replay "x"'))
    assert rows[0] == {
        "symbol": "BTCUSDT", "minute_ms": 1736553600000, "price": "0.000000000001", "open": "42000.00000000",
        "high": "43500.00000000", "low": "41800.00000000", "base_volume": "12345.67800000",
        "quote_volume": "123456789012.123456789012", "change_pct": "-100.00000000", "event_ms": 1736553659999,
        "source": 'replay "x"', "is_probe": False,
    }  # fmt: skip
    assert rows[1]["minute_ms"] == 1736553660000 and rows[1]["source"] == "probe" and rows[1]["is_probe"] is True
    assert json.loads(snapshot_rows_json([], "replay")) == []
