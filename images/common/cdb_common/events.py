"""The events on the Redis streams: typed dataclasses and their JSON form (Decimals as strings).

Each stream entry has one field `data` holding the event's JSON. Every event has a producer-chosen
UUID (`event_id`, carried into the Postgres row id), `produced_at` (epoch ms) and the originating
tick's exchange time `tick_time` plus the screener's receive time `received_at` (epoch ms), so each
hop can measure latency and a redelivered event is recognised by its id.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import MISSING, asdict, dataclass, fields
from decimal import Decimal
from typing import Any, ClassVar, TypeVar

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


@dataclass(frozen=True)
class Event:
    _decimals: ClassVar[frozenset[str]] = frozenset()

    def to_json(self) -> str:
        return json.dumps(asdict(self), default=_plain, separators=(",", ":"))

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
        for spec in fields(cls):
            if spec.name not in data:
                if spec.default is not MISSING:  # optional field
                    continue
                raise EventError(f"{cls.__name__} lacks field {spec.name!r}")
            value = data[spec.name]
            if spec.name in cls._decimals:
                try:
                    value = Decimal(str(value))
                except Exception:
                    raise EventError(f"{spec.name}={value!r} is not a number") from None
                if not value.is_finite():
                    raise EventError(f"{spec.name}={value!r} is not finite")
            kwargs[spec.name] = value
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
