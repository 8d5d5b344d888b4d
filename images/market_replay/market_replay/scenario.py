"""Deterministic generated scenarios in the exchange's exact `!miniTicker@arr` format.

`momentum` (the shipped replays/momentum_demo.jsonl is this scenario) — frames every 4 s of event
time for 1,100 s; with the default limits (SIGNAL_THRESHOLD=3, MIN_VOLUME=100000, 5-min window,
10-min cooldown) it drives:
- ETHUSDT +6 % over t=60..180 s → BUY (approved, filled, position opened);
- SOLUSDT +5 % over t=90..210 s → BUY (approved; stays open to the end);
- XRPUSDT −5 % over t=60..180 s → SELL without a position → rejected `no_position`;
- DOGEUSDT +2.5 % → below the threshold, no signal;
- ETHUSDT +4 % again over t=780..900 s (after its cooldown) → BUY on a held symbol → rejected
  `position_exists`;
- ETHUSDT −8 % over t=960..1080 s → SELL → approved, closes the ETH position with a realized PnL;
- LOWVOLUSDT +10 % but 24h quote volume 50,000 (< MIN_VOLUME) and ETHBTC +10 % (not USDT): filtered.
Prices carry a seeded ±2 bps noise; no float is involved, so every run yields the same bytes.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

START_MS = 1_736_553_600_000  # 2025-01-11T00:00:00Z, the memo's rebuild day
PRICE_STEP = Decimal("0.00000001")


@dataclass(frozen=True)
class SymbolPath:
    symbol: str
    start_price: Decimal
    quote_volume_24h: Decimal
    moves: tuple[tuple[int, int, Decimal], ...] = ()  # (from s, to s, % change over that span)
    volume_from: tuple[int, Decimal] | None = None  # (from s, 24h quote volume from then on)

    def quote_volume_at(self, t: int) -> Decimal:
        if self.volume_from is not None and t >= self.volume_from[0]:
            return self.volume_from[1]
        return self.quote_volume_24h

    def price_at(self, t: int) -> Decimal:
        price = self.start_price
        for begin, end, change in self.moves:
            if t >= end:
                price *= 1 + change / 100
            elif t > begin:
                price *= 1 + change / 100 * Decimal(t - begin) / Decimal(end - begin)
        return price


MOMENTUM_PATHS = (
    SymbolPath("BTCUSDT", Decimal("42000"), Decimal("1500000000")),
    SymbolPath(
        "ETHUSDT",
        Decimal("2500"),
        Decimal("800000000"),
        ((60, 180, Decimal(6)), (780, 900, Decimal(4)), (960, 1080, Decimal(-8))),
    ),
    SymbolPath("SOLUSDT", Decimal("100"), Decimal("300000000"), ((90, 210, Decimal(5)),)),
    SymbolPath("XRPUSDT", Decimal("0.5"), Decimal("200000000"), ((60, 180, Decimal(-5)),)),
    SymbolPath("ADAUSDT", Decimal("0.4"), Decimal("90000000")),
    SymbolPath("DOGEUSDT", Decimal("0.08"), Decimal("150000000"), ((100, 200, Decimal("2.5")),)),
    SymbolPath("LOWVOLUSDT", Decimal("1"), Decimal("50000"), ((60, 120, Decimal(10)),)),
    SymbolPath("ETHBTC", Decimal("0.0595"), Decimal("12000"), ((60, 120, Decimal(10)),)),
)


def momentum_frames(seed: int = 7, start_ms: int = START_MS, duration_s: int = 1100, step_s: int = 4) -> Iterator[str]:
    """The `momentum` scenario, one JSON line (one exchange frame) at a time."""
    return path_frames(MOMENTUM_PATHS, seed, start_ms, duration_s, step_s)


# `corners` (replays/corners.jsonl, for tests/e2e/test_trading_corners.py): under the default limits
# - HELDUSDT +6 % over t=20..80 s → BUY (filled); from t=150 s its 24h quote volume is 50,000
#   (< MIN_VOLUME) and at t=200..260 s it falls 10 % → it keeps flowing because it is held: marked,
#   and the SELL (the exit) fires at ~t=252 s and closes the position;
# - LOWUSDT +10 % with quote volume 50,000, never held → filtered, never stored;
# - REPUSDT +4 % over t=300..360 s → one BUY at ~t=345 s; +4 % more over 420..480 s, inside its
#   600 s cooldown → no second BUY (also not across a restart of the signal engine);
# - WINUSDT +3.5 % over t=300..600 s → BUY at ~t=557 s, when the change over the full 300 s window
#   reaches 3 % (a window that restarted empty after t≈342 s would never see 3 %).
CORNERS_PATHS = (
    SymbolPath("BTCUSDT", Decimal("42000"), Decimal("1500000000")),
    SymbolPath(
        "HELDUSDT",
        Decimal("10"),
        Decimal("5000000"),
        ((20, 80, Decimal(6)), (200, 260, Decimal(-10))),
        volume_from=(150, Decimal("50000")),
    ),
    SymbolPath("LOWUSDT", Decimal("1"), Decimal("50000"), ((20, 80, Decimal(10)),)),
    SymbolPath("REPUSDT", Decimal("20"), Decimal("5000000"), ((300, 360, Decimal(4)), (420, 480, Decimal(4)))),
    SymbolPath("WINUSDT", Decimal("50"), Decimal("5000000"), ((300, 600, Decimal("3.5")),)),
)


def corners_frames(seed: int = 7, start_ms: int = START_MS, duration_s: int = 660, step_s: int = 4) -> Iterator[str]:
    """The `corners` scenario (see CORNERS_PATHS)."""
    return path_frames(CORNERS_PATHS, seed, start_ms, duration_s, step_s)


def path_frames(paths: tuple[SymbolPath, ...], seed: int, start_ms: int, duration_s: int, step_s: int) -> Iterator[str]:
    rng = random.Random(seed)
    state: dict[str, tuple[Decimal, Decimal]] = {}  # symbol -> (high, low) of the "24 h"
    for t in range(0, duration_s + 1, step_s):
        event_time = start_ms + t * 1000
        items = []
        for path in paths:
            noise = Decimal(rng.randint(-2, 2)) / 10000
            close = (path.price_at(t) * (1 + noise)).quantize(PRICE_STEP)
            high, low = state.get(path.symbol, (close, close))
            high, low = max(high, close), min(low, close)
            state[path.symbol] = (high, low)
            # The 24h quote volume drifts up a little, as it does on a live market.
            quote_volume = (path.quote_volume_at(t) * (1 + Decimal(t) / 86400)).quantize(PRICE_STEP)
            items.append(
                {
                    "e": "24hrMiniTicker",
                    "E": event_time,
                    "s": path.symbol,
                    "c": str(close),
                    "o": str(path.start_price.quantize(PRICE_STEP)),
                    "h": str(high),
                    "l": str(low),
                    "v": str((quote_volume / close).quantize(PRICE_STEP)),
                    "q": str(quote_volume),
                }
            )
        yield json.dumps(items, separators=(",", ":"))


SCENARIOS = {"momentum": momentum_frames, "corners": corners_frames}


def generate(name: str, seed: int = 7) -> list[str]:
    if name not in SCENARIOS:
        raise KeyError(f"unknown scenario {name!r}; known: {', '.join(sorted(SCENARIOS))}")
    return list(SCENARIOS[name](seed=seed))


_MARKET_ITEM = (
    '{"e":"24hrMiniTicker","E":%d,"s":"%s","c":"%d.%04d","o":"%d.%04d","h":"%d.%04d","l":"%d.%04d",'
    '"v":"%d.00000000","q":"%d.00000000"}'
)


def market_frames(pairs: int = 300, seconds: int = 60, seed: int = 7, start_ms: int = START_MS) -> Iterator[str]:
    """A synthetic market the size of the live one: `pairs` USDT pairs, one frame per second of event time,
    every pair in every frame, each price a seeded random walk in 1/10,000 steps. Made for volume (memory
    and throughput tests, big replay files), not for a trading story; formatted without json.dumps so a
    few hundred MB take seconds."""
    rng = random.Random(seed)
    symbols = [f"SYN{i:04d}USDT" for i in range(pairs)]
    opens = [rng.randint(10_000, 50_000_000) for _ in symbols]  # in 1/10,000 of a USDT
    prices = list(opens)
    highs, lows = list(opens), list(opens)
    for t in range(seconds):
        event_time = start_ms + t * 1000
        items = []
        for i, symbol in enumerate(symbols):
            price = max(1, prices[i] + rng.randint(-3, 3) * max(1, prices[i] // 10_000))
            prices[i] = price
            highs[i], lows[i] = max(highs[i], price), min(lows[i], price)
            quote = 1_000_000 + i * 1000 + t
            items.append(
                _MARKET_ITEM
                % (
                    event_time, symbol, *divmod(price, 10_000), *divmod(opens[i], 10_000),
                    *divmod(highs[i], 10_000), *divmod(lows[i], 10_000), quote * 10_000 // price, quote,
                )
            )  # fmt: skip
        yield "[" + ",".join(items) + "]"
