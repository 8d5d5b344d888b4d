"""Order execution against a store (Postgres in the service, in memory in tests), idempotent per order id.

Inside one transaction of the store: an order that already has a trade is answered with that trade
(never filled twice); otherwise the book is loaded, filled (paper.apply_fill), snapshotted and saved.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Protocol

from cdb_common.config import Settings, env_decimal
from cdb_common.events import Fill as FillEvent
from cdb_common.events import Order, derived_id, now_ms

from .paper import Book, Fill, FillRejected, Snapshot, apply_fill, snapshot


@dataclass(frozen=True)
class ExecutionConfig:
    slippage_bps: Decimal
    fee_pct: Decimal
    initial_capital: Decimal

    @classmethod
    def from_settings(cls, settings: Settings) -> ExecutionConfig:
        """SLIPPAGE_BPS, FEE_PCT and INITIAL_CAPITAL (the equity of a portfolio that never traded)."""
        return cls(
            slippage_bps=env_decimal(settings.env, "SLIPPAGE_BPS", "5", minimum=Decimal(0)),
            fee_pct=env_decimal(settings.env, "FEE_PCT", "0.1", minimum=Decimal(0)),
            initial_capital=settings.limits.initial_capital,
        )


class ExecutionStore(Protocol):
    async def find_trade(self, order_id: str) -> FillEvent | None: ...

    async def order_status(self, order_id: str) -> str | None: ...

    async def load_book(self, portfolio: str, today: date, capital: Decimal, only_symbol: str | None) -> Book: ...

    async def save_fill(
        self, order: Order, trade_id: str, fill: Fill, book: Book, snap: Snapshot, today: date
    ) -> None: ...

    async def reject_order(self, order_id: str, reason: str) -> None: ...


@dataclass(frozen=True)
class Outcome:
    fill: FillEvent | None  # the fill to publish (also for a redelivered, already filled order)
    fresh: bool  # True when this call created the trade
    rejected: str | None = None
    snapshot: Snapshot | None = None


def fill_event(order: Order, trade_id: str, fill: Fill) -> FillEvent:
    return FillEvent(
        event_id=trade_id,
        order_id=order.event_id,
        symbol=fill.symbol,
        side=fill.side,
        qty=fill.qty,
        price=fill.price,
        fee=fill.fee,
        notional=fill.notional,
        realized_pnl=fill.realized_pnl,
        portfolio=order.portfolio,
        tick_time=order.tick_time,
        received_at=order.received_at,
        produced_at=now_ms(),
        is_probe=order.is_probe,
    )


async def execute(
    store: ExecutionStore, order: Order, last_price: Decimal | None, config: ExecutionConfig, today: date
) -> Outcome:
    """Fill `order` at `last_price` (falling back to the order's reference price) unless already done."""
    existing = await store.find_trade(order.event_id)
    if existing is not None:
        return Outcome(fill=existing, fresh=False)
    status = await store.order_status(order.event_id)
    if status is None:
        raise LookupError(f"order {order.event_id} has no row")
    if status != "NEW":
        return Outcome(fill=None, fresh=False, rejected="already_" + status.lower())
    book = await store.load_book(
        order.portfolio, today, config.initial_capital, order.symbol if order.portfolio == "probe" else None
    )
    price = last_price if last_price is not None and last_price > 0 else order.reference_price
    book.roll_day(today)
    try:
        fill = apply_fill(book, order.side, order.symbol, order.qty, price, config.slippage_bps, config.fee_pct)
    except FillRejected as rejected:
        await store.reject_order(order.event_id, rejected.reason)
        return Outcome(fill=None, fresh=False, rejected=rejected.reason)
    snap = snapshot(book)
    trade_id = derived_id(order.event_id, "trade")
    await store.save_fill(order, trade_id, fill, book, snap, today)
    return Outcome(fill=fill_event(order, trade_id, fill), fresh=True, snapshot=snap)
