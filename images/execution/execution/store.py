"""Postgres side of execution: the book (positions, last snapshot, day row) and the writes of a fill.

All writes of one fill happen in the caller's single transaction: trade, order FILLED, position
upsert, portfolio snapshot, daily_pnl upsert. trades.order_id is UNIQUE, the last line of defence
against a double fill.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from typing import Any

from cdb_common.events import Fill as FillEvent
from cdb_common.events import Order

from .paper import Book, Fill, Position, Snapshot, money

SELECT_TRADE = """
SELECT trade_id, symbol, side, qty, price, fee, notional, realized_pnl, portfolio, is_probe
FROM trades WHERE order_id = %s
"""
SELECT_ORDER_STATUS = "SELECT status FROM orders WHERE order_id = %s FOR UPDATE"
SELECT_POSITIONS = """
SELECT symbol, qty, avg_entry_price, last_price, realized_pnl FROM positions WHERE portfolio = %s
"""
# The probe locks and reads its own symbol only: the probe portfolio keeps a row per probe ever run.
SELECT_POSITIONS_ALL = SELECT_POSITIONS + " FOR UPDATE"
SELECT_POSITIONS_ONE = SELECT_POSITIONS + " AND symbol = %s FOR UPDATE"
SELECT_LAST_SNAPSHOT = """
SELECT cash, peak_equity FROM portfolio_snapshots WHERE portfolio = %s ORDER BY id DESC LIMIT 1
"""
SELECT_DAY_START = "SELECT start_equity FROM daily_pnl WHERE portfolio = %s AND day = %s"

INSERT_TRADE = """
INSERT INTO trades (trade_id, order_id, symbol, side, qty, price, reference_price, slippage_bps, fee,
                    notional, realized_pnl, portfolio, is_probe)
VALUES (%(trade_id)s, %(order_id)s, %(symbol)s, %(side)s, %(qty)s, %(price)s, %(reference_price)s,
        %(slippage_bps)s, %(fee)s, %(notional)s, %(realized_pnl)s, %(portfolio)s, %(is_probe)s)
ON CONFLICT (order_id) DO NOTHING
"""
UPDATE_ORDER = "UPDATE orders SET status = %s, reject_reason = %s, updated_at = now() WHERE order_id = %s"
UPSERT_POSITION = """
INSERT INTO positions (portfolio, symbol, qty, avg_entry_price, last_price, realized_pnl)
VALUES (%(portfolio)s, %(symbol)s, %(qty)s, %(avg)s, %(last)s, %(realized)s)
ON CONFLICT (portfolio, symbol) DO UPDATE
SET qty = EXCLUDED.qty, avg_entry_price = EXCLUDED.avg_entry_price, last_price = EXCLUDED.last_price,
    realized_pnl = EXCLUDED.realized_pnl, updated_at = now(),
    opened_at = CASE WHEN positions.qty = 0 THEN now() ELSE positions.opened_at END
"""
UPDATE_MARK = "UPDATE positions SET last_price = %s, updated_at = now() WHERE portfolio = %s AND symbol = %s"
INSERT_SNAPSHOT = """
INSERT INTO portfolio_snapshots (portfolio, cash, equity, exposure, realized_pnl, unrealized_pnl, peak_equity,
                                 day_start_equity, drawdown_pct, daily_drawdown_pct, trigger_trade_id)
VALUES (%(portfolio)s, %(cash)s, %(equity)s, %(exposure)s, %(realized)s, %(unrealized)s, %(peak)s,
        %(day_start)s, %(dd)s, %(daily_dd)s, %(trade_id)s)
"""
# The first writer of a UTC day fixes start_equity; later writers move end/high/low and add up.
UPSERT_DAY = """
INSERT INTO daily_pnl (portfolio, day, start_equity, end_equity, high_equity, low_equity, realized_pnl, fees,
                       trades, max_drawdown_pct)
VALUES (%(portfolio)s, %(day)s, %(start)s, %(equity)s, %(high)s, %(low)s, %(realized)s, %(fee)s, %(trades)s,
        %(daily_dd)s)
ON CONFLICT (portfolio, day) DO UPDATE
SET end_equity = EXCLUDED.end_equity,
    high_equity = GREATEST(daily_pnl.high_equity, EXCLUDED.end_equity),
    low_equity = LEAST(daily_pnl.low_equity, EXCLUDED.end_equity),
    realized_pnl = daily_pnl.realized_pnl + EXCLUDED.realized_pnl,
    fees = daily_pnl.fees + EXCLUDED.fees,
    trades = daily_pnl.trades + EXCLUDED.trades,
    max_drawdown_pct = GREATEST(daily_pnl.max_drawdown_pct, EXCLUDED.max_drawdown_pct),
    updated_at = now()
"""


class PgExecutionStore:
    """ExecutionStore over one open transaction; `marks` are the freshest prices from cdb:ticks."""

    def __init__(self, conn: Any, marks: Mapping[str, Decimal]) -> None:
        self.conn = conn
        self.marks = marks

    async def _one(self, sql: str, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
        return await (await self.conn.execute(sql, params)).fetchone()

    async def find_trade(self, order_id: str) -> FillEvent | None:
        row = await self._one(SELECT_TRADE, (order_id,))
        if row is None:
            return None
        trade_id, symbol, side, qty, price, fee, notional, realized, portfolio, is_probe = row
        return FillEvent(
            event_id=str(trade_id), order_id=order_id, symbol=symbol, side=side, qty=qty, price=price, fee=fee,
            notional=notional, realized_pnl=realized, portfolio=portfolio, tick_time=0, received_at=0,
            produced_at=0, is_probe=is_probe,
        )  # fmt: skip

    async def order_status(self, order_id: str) -> str | None:
        row = await self._one(SELECT_ORDER_STATUS, (order_id,))
        return None if row is None else row[0]

    async def load_book(self, portfolio: str, today: date, capital: Decimal, only_symbol: str | None) -> Book:
        positions = {}
        sql, params = (
            (SELECT_POSITIONS_ALL, (portfolio,))
            if only_symbol is None
            else (SELECT_POSITIONS_ONE, (portfolio, only_symbol))
        )
        for symbol, qty, avg, last, realized in await (await self.conn.execute(sql, params)).fetchall():
            mark = self.marks.get(symbol, last) if qty > 0 else last
            positions[symbol] = Position(symbol, qty, avg, mark, realized)
        if only_symbol is not None:
            # The probe trades in a fresh INITIAL_CAPITAL portfolio of its own symbol only.
            book = Book.fresh(portfolio, capital)
            book.positions = positions
            book.cash = capital + sum(
                (p.realized_pnl - p.qty * p.avg_entry_price for p in positions.values()), Decimal(0)
            )
            book.day, book.day_start_equity = today, capital
            return book
        row = await self._one(SELECT_LAST_SNAPSHOT, (portfolio,))
        book = Book(portfolio=portfolio, cash=row[0] if row else capital, positions=positions,
                    peak_equity=row[1] if row else capital)  # fmt: skip
        day_row = await self._one(SELECT_DAY_START, (portfolio, today))
        if day_row is not None:
            book.day, book.day_start_equity = today, day_row[0]
        return book

    async def save_fill(self, order: Order, trade_id: str, fill: Fill, book: Book, snap: Snapshot, today: date) -> None:
        await self.conn.execute(
            INSERT_TRADE,
            {
                "trade_id": trade_id, "order_id": order.event_id, "symbol": fill.symbol, "side": fill.side,
                "qty": fill.qty, "price": fill.price, "reference_price": fill.reference_price,
                "slippage_bps": fill.slippage_bps, "fee": fill.fee, "notional": fill.notional,
                "realized_pnl": fill.realized_pnl, "portfolio": order.portfolio, "is_probe": order.is_probe,
            },
        )  # fmt: skip
        await self.conn.execute(UPDATE_ORDER, ("FILLED", None, order.event_id))
        position = book.positions[fill.symbol]
        await self.conn.execute(
            UPSERT_POSITION,
            {
                "portfolio": order.portfolio, "symbol": fill.symbol, "qty": position.qty,
                "avg": position.avg_entry_price, "last": position.last_price, "realized": position.realized_pnl,
            },
        )  # fmt: skip
        await write_snapshot(self.conn, book, snap, today, trade_id=trade_id, fill=fill)

    async def reject_order(self, order_id: str, reason: str) -> None:
        await self.conn.execute(UPDATE_ORDER, ("REJECTED", reason, order_id))


async def write_snapshot(
    conn: Any, book: Book, snap: Snapshot, today: date, trade_id: str | None = None, fill: Fill | None = None
) -> None:
    await conn.execute(
        INSERT_SNAPSHOT,
        {
            "portfolio": book.portfolio, "cash": snap.cash, "equity": snap.equity, "exposure": snap.exposure,
            "realized": snap.realized_pnl, "unrealized": snap.unrealized_pnl, "peak": snap.peak_equity,
            "day_start": snap.day_start_equity, "dd": snap.drawdown_pct, "daily_dd": snap.daily_drawdown_pct,
            "trade_id": trade_id,
        },
    )  # fmt: skip
    await conn.execute(
        UPSERT_DAY,
        {
            "portfolio": book.portfolio, "day": today, "start": snap.day_start_equity, "equity": snap.equity,
            "high": max(snap.day_start_equity, snap.equity), "low": min(snap.day_start_equity, snap.equity),
            "realized": fill.realized_pnl if fill else Decimal(0), "fee": fill.fee if fill else Decimal(0),
            "trades": 1 if fill else 0, "daily_dd": snap.daily_drawdown_pct,
        },
    )  # fmt: skip


async def write_marks(conn: Any, book: Book, symbols: list[str]) -> None:
    for symbol in symbols:
        position = book.positions[symbol]
        await conn.execute(UPDATE_MARK, (money(position.last_price), book.portfolio, symbol))
