"""Parsing and filtering of the exchange's `!miniTicker@arr` frames (SPEC §8), free of I/O.

A frame is a JSON array of objects {e: "24hrMiniTicker", E: event ms, s: symbol, c: close, o: open
24h ago, h, l, v: base volume, q: quote volume}, numbers as strings, only for symbols that changed.
24h change % = (c/o − 1)·100. Kept for entries: symbols ending in USDT with q ≥ MIN_VOLUME; a held symbol
(open position or unfilled order) is kept whatever its quote asset or volume, marked `exit_only`
(for marks and exits, never for an entry). A frame that is not
JSON, too large or of the wrong shape is rejected whole (counted by reason, never a crash); a bad item
inside a good frame is skipped and counted. {"e": "serverShutdown"} announces maintenance.
"""

from __future__ import annotations

import json
import re
from collections.abc import Container
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple

MAX_FRAME_BYTES = 2 * 1024 * 1024  # the full market (~2,000 symbols) is ~300 KB
# What the columns hold (market_snapshots; signals take the same types). A value outside would fail its
# insert (numeric overflow, CHECK price > 0, a date past year 9999) - the same way on every retry.
MAX_PRICE = Decimal(10) ** 18  # NUMERIC(30, 12)
MIN_PRICE = Decimal("1e-12")  # anything smaller rounds to 0 in NUMERIC(30, 12)
MAX_VOLUME = Decimal(10) ** 26  # NUMERIC(38, 12)
MAX_CHANGE_PCT = Decimal(10) ** 10  # NUMERIC(18, 8)
ZERO = Decimal(0)  # (a Decimal compares faster with a Decimal than with an int)
MAX_EVENT_TIME = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z, the last millisecond a datetime holds
SYMBOL_RE = re.compile(r"^[A-Z0-9]{2,30}$")  # the market_snapshots.symbol constraint
QUOTE = "USDT"
_NUMERIC_KEYS = ("c", "o", "h", "l", "v", "q")


class MiniTicker(NamedTuple):
    """One valid item. A NamedTuple, not a frozen dataclass: immutable all the same, and built in a fifth
    of the time (a frozen dataclass sets each field through object.__setattr__) — one per tick."""

    symbol: str
    event_time: int
    close: Decimal
    open: Decimal
    high: Decimal
    low: Decimal
    base_volume: Decimal
    quote_volume: Decimal

    @property
    def change_pct(self) -> Decimal:
        return (self.close / self.open - 1) * 100


@dataclass
class FrameResult:
    tickers: list[MiniTicker] = field(default_factory=list)
    rejected: str | None = None  # reason when the whole frame was dropped
    shutdown: bool = False  # serverShutdown: reconnect to another server
    bad_items: int = 0
    filtered: dict[str, int] = field(default_factory=dict)  # reason -> count (not_usdt, low_volume)
    exit_only: set[str] = field(default_factory=set)  # kept only because held: failed an entry filter


def _decimal(value: Any) -> Decimal | None:
    if type(value) is str:  # the exchange's form: the fast path (a union isinstance costs more than the parse)
        try:
            number = Decimal(value)
        except (InvalidOperation, ValueError):
            return None
        return number if number.is_finite() else None
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        return None
    try:
        number = Decimal(value)
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


def parse_item(item: Any) -> MiniTicker | None:
    """One array element, or None when it is not a valid miniTicker."""
    if not isinstance(item, dict) or item.get("e") != "24hrMiniTicker":
        return None
    symbol, event_time = item.get("s"), item.get("E")
    if not isinstance(symbol, str) or not SYMBOL_RE.match(symbol):
        return None
    if isinstance(event_time, bool) or not isinstance(event_time, int) or not 0 < event_time <= MAX_EVENT_TIME:
        return None
    numbers = []
    for key in _NUMERIC_KEYS:
        number = _decimal(item.get(key))
        if number is None:
            return None
        numbers.append(number)
    close, open_, high, low, base_volume, quote_volume = numbers
    # prices must be positive (the columns say so; o = 0 would divide by zero): MIN_PRICE > 0 sees to it
    lo, hi = MIN_PRICE, MAX_PRICE
    if not (lo <= close < hi and lo <= open_ < hi and lo <= high < hi and lo <= low < hi):
        return None
    if not (ZERO <= base_volume < MAX_VOLUME and ZERO <= quote_volume < MAX_VOLUME):
        return None
    ticker = MiniTicker(symbol, event_time, close, open_, high, low, base_volume, quote_volume)
    if abs(ticker.change_pct) >= MAX_CHANGE_PCT:
        return None
    return ticker


def entry_filter(ticker: MiniTicker, min_volume: Decimal) -> str | None:
    """Why `ticker` may not be entered (not_usdt, low_volume), or None when it passes."""
    if not ticker.symbol.endswith(QUOTE) or len(ticker.symbol) <= len(QUOTE):
        return "not_usdt"
    if ticker.quote_volume < min_volume:
        return "low_volume"
    return None


def parse_frame(
    raw: str | bytes,
    min_volume: Decimal,
    max_bytes: int = MAX_FRAME_BYTES,
    held: Container[str] = frozenset(),
) -> FrameResult:
    """Parse and filter one websocket message; symbols in `held` pass the filters as `exit_only`."""
    result = FrameResult()
    if len(raw) > max_bytes:
        result.rejected = "oversized"
        return result
    try:
        # Decimal straight from the text: a float never touches a price.
        data = json.loads(raw, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError, RecursionError):
        result.rejected = "invalid_json"
        return result
    if isinstance(data, dict):
        if data.get("e") == "serverShutdown":
            result.shutdown = True
        else:
            result.rejected = "wrong_shape"  # e.g. a subscription reply or an error object
        return result
    if not isinstance(data, list):
        result.rejected = "wrong_shape"
        return result
    for item in data:
        ticker = parse_item(item)
        if ticker is None:
            result.bad_items += 1
            continue
        reason = entry_filter(ticker, min_volume)
        if reason is None:
            result.tickers.append(ticker)
        elif ticker.symbol in held:
            result.tickers.append(ticker)
            result.exit_only.add(ticker.symbol)
        else:
            result.filtered[reason] = result.filtered.get(reason, 0) + 1
    if data and result.bad_items == len(data):
        result.rejected = "wrong_shape"  # nothing in it was a miniTicker
    return result


def probe_frame(symbol: str, prices: list[Decimal], event_time: int, quote_volume: Decimal) -> list[str]:
    """Frames in the exchange's exact format for the end-to-end probe: one frame per price, 1 ms apart."""
    frames = []
    for offset, price in enumerate(prices):
        item = {
            "e": "24hrMiniTicker",
            "E": event_time + offset,
            "s": symbol,
            "c": str(price),
            "o": str(prices[0]),
            "h": str(max(prices[: offset + 1])),
            "l": str(min(prices[: offset + 1])),
            "v": str(quote_volume / prices[0]),
            "q": str(quote_volume),
        }
        frames.append(json.dumps([item]))
    return frames
