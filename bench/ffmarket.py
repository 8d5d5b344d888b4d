"""A generated exchange day for bench/fastforward.py: frames shaped exactly like Binance's `!miniTicker@arr`
(SPEC §8: an array of {e, E, s, c, o, h, l, v, q} for the symbols that changed), one frame per second of
event time, deterministic from a seed (the same bytes on every run: integer arithmetic only, and a gzip
header without a timestamp).

The market: `symbols` USDT pairs with prices from 0.001 to 40,000, each changing in a given second with
its own probability (25-100 %, the 30 biggest always), by -3..+3 bps around its anchor (kept within
±60 bps: noise never crosses the signal threshold); about 8 % trade below MIN_VOLUME (filtered by the
screener). Every SLOT_SECONDS of event time, from t=60 s, one momentum move on a liquid pair:
- three slots in four: +12 % over 240 s (a BUY once the 300 s window shows +3 %), a plateau, then
  -5 % over 60 s from t+400 s: the SELL (once the window shows -3 %) closes the position at a profit;
- every fourth: +4 % over 120 s (BUY), then -9 % over 60 s from t+200 s: SELL at a loss;
- odd slots also drop another liquid pair by 5 % over 120 s from t+100 s: a SELL without a position
  (risk rejects it `no_position`).
So a day of 144 slots makes ~144 BUYs, ~144 exits and ~72 rejected SELLs with the default limits
(SIGNAL_THRESHOLD=3, 300 s window, 600 s cooldown, MIN_VOLUME=100000); the book gains ~0.3 % net per
four slots and its intraday drawdown stays far below the 5 % breaker.
"""

from __future__ import annotations

import gzip
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z (the replay rewrites E to "now" unless told otherwise)
SLOT_SECONDS = 600
UNIT = 10**8  # prices and volumes in 1e-8 (the exchange's own precision), as integers
PPM = 1_000_000
LIQUID = 60  # the movers are taken from the first LIQUID symbols (the most active, always above MIN_VOLUME)


@dataclass(frozen=True)
class Move:
    symbol: int
    begin: int  # s of event time
    end: int
    ppm: int  # change over the move in parts per million (+120000 = +12 %)


def moves_for(seconds: int) -> list[Move]:
    """The momentum moves of a market `seconds` long (see the module's docstring)."""
    out = []
    for k, t in enumerate(range(60, seconds, SLOT_SECONDS)):
        up = k % LIQUID
        if k % 4 == 3:  # a losing round trip
            out += [Move(up, t, t + 120, 40_000), Move(up, t + 200, t + 260, -90_000)]
        else:
            out += [Move(up, t, t + 240, 120_000), Move(up, t + 400, t + 460, -50_000)]
        if k % 2 == 1:
            out.append(Move(LIQUID // 2 + up % (LIQUID // 2), t + 100, t + 220, -50_000))
    return out


def _decimal(value: int) -> str:
    return f"{value // UNIT}.{value % UNIT:08d}"


def frames(hours: float, symbols: int = 300, seed: int = 7) -> Iterator[str]:
    """One JSON line per second of event time."""
    rng = random.Random(seed)
    seconds = round(hours * 3600)
    names = [f"FF{i:03d}USDT" for i in range(symbols)]
    base = [int(10 ** rng.uniform(-3, 4.6) * UNIT) for _ in range(symbols)]
    activity = [1.0 if i < 30 else rng.uniform(0.25, 1.0) for i in range(symbols)]
    low_volume = {i for i in range(LIQUID, symbols) if rng.random() < 0.09}
    quote0 = [int(10 ** (rng.uniform(4.0, 4.9) if i in low_volume else rng.uniform(6.0, 9.0))) * UNIT
              for i in range(symbols)]  # fmt: skip
    anchor = list(base)
    noise = [0] * symbols  # bps around the anchor
    high, low = list(base), list(base)
    by_symbol: dict[int, list[Move]] = {}
    for m in moves_for(seconds):
        by_symbol.setdefault(m.symbol, []).append(m)
    # The anchor of a moving symbol is recomputed from its moves: anchor0 * prod(1 + ppm * progress).
    start_anchor = list(base)
    for t in range(seconds + 1):
        event_time = START_MS + t * 1000
        items = []
        for i in range(symbols):
            moving = False
            if i in by_symbol:
                value = start_anchor[i]
                for m in by_symbol[i]:
                    if t >= m.end:
                        value = value * (PPM + m.ppm) // PPM
                    elif t > m.begin:
                        value = value * (PPM + m.ppm * (t - m.begin) // (m.end - m.begin)) // PPM
                        moving = True
                anchor[i] = value
            r = rng.random()
            if r >= activity[i] and not moving:
                continue
            step = min(6, int(r / activity[i] * 7)) - 3
            n = noise[i] + step
            noise[i] = n if -60 <= n <= 60 else noise[i] - step
            close = max(anchor[i] * (10_000 + noise[i]) // 10_000, 1)
            high[i], low[i] = max(high[i], close), min(low[i], close)
            quote = quote0[i] + quote0[i] * t // 864_000  # the 24 h quote volume drifts up 10 % a day
            items.append(
                f'{{"e":"24hrMiniTicker","E":{event_time},"s":"{names[i]}","c":"{_decimal(close)}",'
                f'"o":"{_decimal(base[i])}","h":"{_decimal(high[i])}","l":"{_decimal(low[i])}",'
                f'"v":"{_decimal(quote * UNIT // close)}","q":"{_decimal(quote)}"}}'
            )
        yield "[" + ",".join(items) + "]"


def write(path: Path, hours: float, symbols: int = 300, seed: int = 7) -> tuple[int, int]:
    """Write the market to `path` (gzip when it ends in .gz; written to a temporary name first, so a
    file at `path` is always whole). Returns (frames, ticks)."""
    tmp = path.with_name(path.name + ".part")
    count = ticks = 0
    with open(tmp, "wb") as raw:
        gz = path.suffix == ".gz"
        out = gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=5) if gz else raw
        try:
            for line in frames(hours, symbols, seed):
                out.write(line.encode() + b"\n")
                count += 1
                ticks += line.count('"e":')
        finally:
            if out is not raw:
                out.close()
    tmp.rename(path)
    return count, ticks
