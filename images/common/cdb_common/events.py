"""The events on the Redis streams: typed dataclasses and their JSON form (Decimals as strings).

Each stream entry has one field `data` holding the event's JSON. Every event has a producer-chosen
UUID (`event_id`, carried into the Postgres row id), `produced_at` (epoch ms) and the originating
tick's exchange time `tick_time` plus the screener's receive time `received_at` (epoch ms), so each
hop can measure latency and a redelivered event is recognised by its id.
"""

from __future__ import annotations

import functools
import json
import os
import re
import time
import uuid
from dataclasses import MISSING, dataclass, fields
from decimal import Decimal
from typing import Any, ClassVar, NamedTuple, TypeVar

from .config import FEEDS, PROBE_BOOK

STREAM_TICKS = "cdb:ticks"
STREAM_SIGNALS = "cdb:signals"
STREAM_ORDERS = "cdb:orders"
STREAM_FILLS = "cdb:fills"

# Namespace for ids derived from a parent event's id: a redelivered parent yields the same child id,
# so the child's INSERT ... ON CONFLICT DO NOTHING makes the redelivery a no-op.
CDB_NAMESPACE = uuid.UUID("8f0e4b7c-2d1a-4c3e-9b5f-6a7d8e9f0a1b")


def derived_id(parent_id: str, kind: str) -> str:
    return str(uuid.uuid5(CDB_NAMESPACE, f"{kind}:{parent_id}"))


def plain(value: Decimal) -> str:
    """A Decimal in positional notation ("0.000000000000", never "0E-12")."""
    return format(value, "f")


def _plain(value: Any) -> str:
    return plain(value) if isinstance(value, Decimal) else str(value)


def random_ids(n: int) -> list[str]:
    """`n` random (version 4) UUIDs in their text form, as `str(uuid.uuid4())` writes them: one read of the
    OS's randomness for all of them and no UUID objects (the screener names every tick; uuid4() was 6 µs
    of a tick's ~30, this is under 1)."""
    raw = os.urandom(16 * n).hex()
    out = []
    for i in range(0, 32 * n, 32):
        h = raw[i : i + 32]
        # version nibble 4; variant bits 10xx in the first nibble of the fourth group (RFC 4122)
        out.append(f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}")
    return out


_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class EventError(ValueError):
    """A stream entry that is not a valid event (a bug in a producer, never a transient fault)."""


def book_of(portfolio: str, is_probe: bool) -> str:
    """The book an event's rows go to: 'probe' for validate's probe, else the feed's book."""
    if is_probe:
        return PROBE_BOOK
    if portfolio not in FEEDS:
        raise EventError(f"portfolio={portfolio!r} is not a feed's book (live or replay)")
    return portfolio


T = TypeVar("T", bound="Event")


_SPECS: dict[type, tuple[tuple[str, bool, bool], ...]] = {}


def _specs(cls: type) -> tuple[tuple[str, bool, bool], ...]:
    """(name, is_decimal, optional) per field, computed once per class (the hot path of every stream)."""
    specs = _SPECS.get(cls)
    if specs is None:
        decimals = cls._decimals  # type: ignore[attr-defined]
        specs = _SPECS[cls] = tuple((f.name, f.name in decimals, f.default is not MISSING) for f in fields(cls))
    return specs


@dataclass(frozen=True)
class Event:
    _decimals: ClassVar[frozenset[str]] = frozenset()

    def to_json(self) -> str:
        # A flat dict by hand: dataclasses.asdict deep-copies every value and costs ~4x as much per tick.
        data = {}
        for name, is_decimal, _optional in _specs(type(self)):
            value = getattr(self, name)
            data[name] = format(value, "f") if is_decimal and isinstance(value, Decimal) else value
        return json.dumps(data, default=_plain, separators=(",", ":"))

    def to_fields(self) -> dict[str, str]:
        return {"data": self.to_json()}

    @classmethod
    def from_json(cls: type[T], raw: str | bytes) -> T:
        try:
            data = json.loads(raw)
        except (ValueError, TypeError) as exc:
            raise EventError(f"not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise EventError("event is not a JSON object")
        kwargs: dict[str, Any] = {}
        for name, is_decimal, optional in _specs(cls):
            if name not in data:
                if optional:
                    continue
                raise EventError(f"{cls.__name__} lacks field {name!r}")
            value = data[name]
            if is_decimal:
                try:
                    value = Decimal(value if isinstance(value, str) else str(value))
                except Exception:
                    raise EventError(f"{name}={value!r} is not a number") from None
                if not value.is_finite():
                    raise EventError(f"{name}={value!r} is not finite")
            kwargs[name] = value
        try:
            return cls(**kwargs)
        except TypeError as exc:
            raise EventError(str(exc)) from None

    @classmethod
    def from_fields(cls: type[T], entry: dict[str, Any]) -> T:
        if "data" not in entry:
            raise EventError("stream entry has no 'data' field")
        return cls.from_json(entry["data"])


@dataclass(frozen=True)
class Tick(Event):
    """One symbol's miniTicker update: a USDT pair with enough volume, or a held symbol (`entry_allowed` false:
    it flows for marks and exits only, whatever its volume or quote asset)."""

    _decimals: ClassVar[frozenset[str]] = frozenset({"price", "open", "high", "low", "base_volume", "quote_volume"})
    event_id: str
    symbol: str
    price: Decimal
    open: Decimal
    high: Decimal
    low: Decimal
    base_volume: Decimal
    quote_volume: Decimal
    tick_time: int  # exchange event time E (ms): the clock of the signal window
    received_at: int  # screener's wall clock when the frame arrived (ms): the latency origin
    produced_at: int
    is_probe: bool = False
    source: str = "binance"
    entry_allowed: bool = True
    portfolio: str = "live"  # the book of the feed that produced the tick (CDB_FEED of the screener)


_TICK_JSON = (
    '{"event_id":%s,"symbol":%s,"price":"%s","open":"%s","high":"%s","low":"%s","base_volume":"%s",'
    '"quote_volume":"%s","tick_time":%d,"received_at":%d,"produced_at":%d,"is_probe":%s,"source":%s,'
    '"entry_allowed":%s,"portfolio":%s}'
)
_PLAIN = re.compile(r"[A-Za-z0-9_.:-]*")  # nothing JSON would escape


def _json_str(value: str) -> str:
    """`value` as a JSON string: quoted as it is when nothing needs escaping, json.dumps otherwise."""
    return f'"{value}"' if _PLAIN.fullmatch(value) else json.dumps(value)


# symbols, sources and book names repeat tick after tick; event ids never do (they take `_json_str`)
_json_str_cached = functools.lru_cache(maxsize=4096)(_json_str)


def tick_json(
    event_id: str,
    symbol: str,
    price: Decimal,
    open: Decimal,
    high: Decimal,
    low: Decimal,
    base_volume: Decimal,
    quote_volume: Decimal,
    tick_time: int,
    received_at: int,
    produced_at: int,
    is_probe: bool = False,
    source: str = "binance",
    entry_allowed: bool = True,
    portfolio: str = "live",
) -> str:
    """Exactly `Tick(...).to_json()` (a unit test holds them equal), without building the frozen dataclass
    or going through json.dumps: the screener serialises every tick of the market with it (15 µs a tick,
    the event id's uuid4 included, where the dict through json.dumps took 25)."""
    if type(tick_time) is not int or type(received_at) is not int or type(produced_at) is not int:
        raise TypeError("tick times are integer milliseconds")
    return _TICK_JSON % (
        _json_str(event_id), _json_str_cached(symbol),
        format(price, "f"), format(open, "f"), format(high, "f"), format(low, "f"), format(base_volume, "f"),
        format(quote_volume, "f"), tick_time, received_at, produced_at, "true" if is_probe else "false",
        _json_str_cached(source), "true" if entry_allowed else "false", _json_str_cached(portfolio),
    )  # fmt: skip


class TickCore(NamedTuple):
    """The part of a Tick the consumers of every tick need (signal engine, execution's marks), read without
    building the whole frozen dataclass: that costs more than everything else a consumer does per tick."""

    event_id: str
    symbol: str
    price: Decimal
    quote_volume: Decimal
    tick_time: int
    received_at: int
    is_probe: bool
    entry_allowed: bool
    portfolio: str = "live"  # the feed's book (absent in ticks from before books: the live feed's)


def tick_core(entry: dict[str, Any]) -> TickCore:
    """A cdb:ticks entry's TickCore; EventError as for Tick.from_fields when it is not a valid tick."""
    raw = entry.get("data")
    if raw is None:
        raise EventError("stream entry has no 'data' field")
    try:
        data = json.loads(raw)
        price, volume = Decimal(data["price"]), Decimal(data["quote_volume"])
        core = TickCore(
            str(data["event_id"]), data["symbol"], price, volume, data["tick_time"], data["received_at"],
            bool(data.get("is_probe", False)), bool(data.get("entry_allowed", True)),
            str(data.get("portfolio", "live")),
        )  # fmt: skip
    except KeyError as exc:
        raise EventError(f"Tick lacks field {exc.args[0]!r}") from None
    except (ValueError, TypeError, ArithmeticError) as exc:
        raise EventError(f"not a valid tick: {exc}") from None
    if not (price.is_finite() and volume.is_finite()):
        raise EventError("price and quote_volume must be finite")
    if not isinstance(core.symbol, str) or not all(isinstance(v, int) for v in (core.tick_time, core.received_at)):
        raise EventError("symbol must be a string, tick_time and received_at integers")
    return core


@dataclass(frozen=True)
class Signal(Event):
    _decimals: ClassVar[frozenset[str]] = frozenset(
        {"price", "change_pct", "quote_volume", "threshold_pct", "confidence"}
    )
    event_id: str  # = signals.signal_id
    symbol: str
    side: str
    price: Decimal
    change_pct: Decimal
    window_seconds: int
    quote_volume: Decimal
    threshold_pct: Decimal
    confidence: Decimal
    tick_id: str
    tick_time: int
    received_at: int
    produced_at: int
    is_probe: bool = False
    portfolio: str = "live"  # the tick's book, carried so a feed switch never moves a signal between books


@dataclass(frozen=True)
class Order(Event):
    _decimals: ClassVar[frozenset[str]] = frozenset({"qty", "reference_price"})
    event_id: str  # = orders.order_id
    risk_event_id: str
    signal_id: str
    symbol: str
    side: str
    qty: Decimal
    reference_price: Decimal
    portfolio: str
    tick_time: int
    received_at: int
    produced_at: int
    is_probe: bool = False


@dataclass(frozen=True)
class Fill(Event):
    _decimals: ClassVar[frozenset[str]] = frozenset({"qty", "price", "fee", "notional", "realized_pnl"})
    event_id: str  # = trades.trade_id
    order_id: str
    symbol: str
    side: str
    qty: Decimal
    price: Decimal
    fee: Decimal
    notional: Decimal
    realized_pnl: Decimal
    portfolio: str
    tick_time: int
    received_at: int
    produced_at: int
    is_probe: bool = False
