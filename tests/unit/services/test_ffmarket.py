"""The fast-forward bench's generated market (bench/ffmarket.py) read by the real screener parser and the
real momentum rule: every frame is a valid `!miniTicker@arr` frame, the bytes are the same on every run,
and the planned moves — and only they — make the signal engine fire."""

from __future__ import annotations

import gzip
import json
import sys
from decimal import Decimal
from pathlib import Path

BENCH = Path(__file__).resolve().parents[3] / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

import ffmarket  # noqa: E402
import ffreport  # noqa: E402
import stackwatch  # noqa: E402
from screener.frames import parse_frame  # noqa: E402
from signal_engine.momentum import MomentumConfig, MomentumEngine  # noqa: E402

MIN_VOLUME = Decimal(100000)
FIELDS = {"e", "E", "s", "c", "o", "h", "l", "v", "q"}


def test_frames_are_minitickers_one_per_second_that_the_screener_takes():
    lines = list(ffmarket.frames(0.05, symbols=150, seed=3))
    assert len(lines) == 181  # t = 0 .. 180 s
    filtered = 0
    for n, line in enumerate(lines):
        items = json.loads(line)
        assert items and all(set(i) == FIELDS and i["e"] == "24hrMiniTicker" for i in items)
        assert {i["E"] for i in items} == {ffmarket.START_MS + n * 1000}
        assert len({i["s"] for i in items}) == len(items)  # a symbol at most once a frame
        result = parse_frame(line, MIN_VOLUME)
        assert result.rejected is None and result.bad_items == 0, (n, result)
        filtered += result.filtered.get("low_volume", 0)
        for i in items:  # h/l bracket c, and v = q / c
            c, h, lo = Decimal(i["c"]), Decimal(i["h"]), Decimal(i["l"])
            assert lo <= c <= h and abs(Decimal(i["v"]) * c - Decimal(i["q"])) <= c
    assert filtered > 0  # some pairs trade below MIN_VOLUME, as on the exchange


def test_the_same_seed_writes_the_same_bytes_and_another_seed_does_not(tmp_path):
    a, b, c = tmp_path / "a.jsonl.gz", tmp_path / "b.jsonl.gz", tmp_path / "c.jsonl.gz"
    assert ffmarket.write(a, 0.02, 130, seed=1) == ffmarket.write(b, 0.02, 130, seed=1)
    ffmarket.write(c, 0.02, 130, seed=2)
    assert a.read_bytes() == b.read_bytes() != c.read_bytes()
    frames, ticks = ffmarket.write(tmp_path / "p.jsonl", 0.02, 130, seed=1)
    assert gzip.decompress(a.read_bytes()) == (tmp_path / "p.jsonl").read_bytes()
    assert frames == 73 and ticks == sum(len(json.loads(x)) for x in (tmp_path / "p.jsonl").read_text().splitlines())


def test_the_planned_moves_and_nothing_else_make_the_momentum_rule_fire():
    """A quarter hour: FF000 rises 12 % from t=60 (BUY) and falls 5 % from t=460 (the exit SELL), FF001
    rises from t=660 (BUY), FF031 falls 5 % from t=760 (a SELL without a position). The noise of the
    other 116 pairs never crosses the 3 % threshold."""
    engine = MomentumEngine(MomentumConfig(threshold_pct=Decimal(3), min_volume=MIN_VOLUME))
    held: set[str] = set()
    fired = []
    for line in ffmarket.frames(0.25, symbols=120, seed=7):
        for t in parse_frame(line, MIN_VOLUME).tickers:
            s = engine.on_tick(t.symbol, t.close, t.quote_volume, t.event_time, has_position=t.symbol in held)
            if s is not None:
                second = (s.tick_time - ffmarket.START_MS) // 1000
                fired.append((s.symbol, s.side, second))
                (held.add if s.side == "BUY" else held.discard)(s.symbol)
    assert [(sym, side) for sym, side, _ in fired] == [
        ("FF000USDT", "BUY"),
        ("FF000USDT", "SELL"),
        ("FF001USDT", "BUY"),
        ("FF031USDT", "SELL"),
    ], fired
    buy0, sell0 = fired[0][2], fired[1][2]
    assert 60 < buy0 < 300 and 460 < sell0 < 700  # during the rise, and after the fall began


def test_retention_comes_from_env_keys_by_table_stem_else_the_assumed_default():
    tables = ["market_snapshots", "portfolio_snapshots", "ops_runs", "trades"]
    assert ffreport.retention({}, tables) == {t: (30.0, "assumed (no .env key)") for t in tables[:3]}
    got = ffreport.retention({"MARKET_SNAPSHOT_RETENTION_DAYS": "14", "OPS_RUN_RETENTION_DAYS": "x"}, tables)
    assert got["market_snapshots"] == (14.0, ".env MARKET_SNAPSHOT_RETENTION_DAYS")
    assert got["ops_runs"] == (30.0, "assumed (no .env key)")  # not a number: the default stays
    assert "trades" not in got  # the account's history is never deleted


def test_log_cap_follows_the_drivers_options_and_defaults():
    assert stackwatch.log_cap_bytes({"Type": "json-file", "Config": {}}) is None
    assert stackwatch.log_cap_bytes({"Type": "json-file", "Config": {"max-size": "10m", "max-file": "3"}}) == 30 * 2**20
    assert stackwatch.log_cap_bytes({"Type": "local", "Config": {}}) == 100 * 2**20  # 20 MB x 5 files
