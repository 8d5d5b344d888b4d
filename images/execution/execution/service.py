"""Execution service: paper-fills cdb:orders, marks positions to market from cdb:ticks, publishes cdb:fills.

Two consumer groups named "execution": one on cdb:orders (fills, one transaction each) and one on
cdb:ticks (keeps the last price per book and symbol in memory). A mark loop writes a portfolio snapshot
at most every SNAPSHOT_INTERVAL_SECONDS when a held symbol's price moved or a new UTC day began.

Books: every order names its portfolio (the feed's book, or 'probe'), and a tick marks only the book of
the feed that produced it, so replay prices never mark the live paper account and vice versa.
"""

from __future__ import annotations

import logging
import time
from decimal import Decimal
from typing import Any

from cdb_common.config import Settings, env_int
from cdb_common.db import Unavailable, sleep_or_stop
from cdb_common.events import STREAM_FILLS, STREAM_ORDERS, STREAM_TICKS, EventError, Order, Tick, book_of, plain
from cdb_common.health import HealthReport
from cdb_common.runtime import BaseService
from cdb_common.streams import Outputs, StreamConsumer, observe_latency
from cdb_common.timeutil import utcnow
from prometheus_client import Counter, Gauge

from . import store
from .executor import ExecutionConfig, execute
from .paper import Snapshot, snapshot

FILLED = Counter("cdb_orders_filled_total", "Orders filled (paper)", ["side"])
ORDERS_REJECTED = Counter("cdb_orders_rejected_total", "Orders execution could not fill", ["reason"])
DUPLICATE_ORDERS = Counter("cdb_orders_duplicate_total", "Redelivered orders answered with their existing trade")
SNAPSHOTS = Counter("cdb_portfolio_snapshots_total", "Portfolio snapshots written", ["trigger"])
EQUITY = Gauge("cdb_equity_usdt", "Equity: cash + positions marked to market", ["portfolio"])
EXPOSURE = Gauge("cdb_exposure_usdt", "Positions marked to market", ["portfolio"])
DRAWDOWN = Gauge("cdb_drawdown_pct", "Drawdown from peak equity", ["portfolio"])
DAILY_DRAWDOWN = Gauge("cdb_daily_drawdown_pct", "Drawdown from start-of-UTC-day equity", ["portfolio"])


class ExecutionService(BaseService):
    name = "execution"
    default_port = 8003

    def __init__(self, settings: Settings, log: logging.Logger) -> None:
        super().__init__(settings, log)
        self.config = ExecutionConfig.from_settings(settings)
        self.snapshot_interval = env_int(settings.env, "SNAPSHOT_INTERVAL_SECONDS", 10, minimum=1)
        self.book = settings.feed  # the book this stack trades in (CDB_FEED); health reports it
        self.marks: dict[str, dict[str, Decimal]] = {}  # book -> symbol -> last price of that book's feed
        self.held: dict[str, set[str]] = {}  # book -> symbols with qty > 0 (refreshed on every write)
        self.dirty: set[str] = set()  # books whose held prices moved since their last snapshot
        self.last_snapshot: Snapshot | None = None
        self.last_snapshot_day: dict[str, Any] = {}
        self.fills = 0
        self.orders = StreamConsumer(self.redis_bus, self.db, STREAM_ORDERS, "execution", self.handle_order, log=log)
        self.ticks = StreamConsumer(self.redis_bus, self.db, STREAM_TICKS, "execution", self.handle_tick, log=log)

    def loops(self) -> list[Any]:
        return [self.orders.run(self.stop), self.ticks.run(self.stop), self.mark_loop()]

    async def handle_tick(self, _entry_id: str, fields: dict[str, Any]) -> Outputs:
        tick = Tick.from_fields(fields)
        book = book_of(tick.portfolio, tick.is_probe)
        marks = self.marks.setdefault(book, {})
        if marks.get(tick.symbol) != tick.price:
            marks[tick.symbol] = tick.price
            if tick.symbol in self.held.get(book, ()):
                self.dirty.add(book)
        return []

    async def handle_order(self, _entry_id: str, fields: dict[str, Any]) -> Outputs:
        order = Order.from_fields(fields)
        book_of(order.portfolio, order.is_probe)  # an order of no known book is a producer bug (dead letter)
        observe_latency(STREAM_ORDERS, order.received_at)
        marks = self.marks.setdefault(order.portfolio, {})
        today = utcnow().date()
        assert self.db is not None
        async with self.db.transaction() as conn:
            pg = store.PgExecutionStore(conn, marks)
            try:
                outcome = await execute(pg, order, marks.get(order.symbol), self.config, today)
            except LookupError as exc:
                # An order event without its row is a producer bug; nothing can be filled.
                raise EventError(str(exc)) from None
            if outcome.fresh and order.portfolio != "probe":
                book = await pg.load_book(order.portfolio, today, self.config.initial_capital, None)
                self.held[order.portfolio] = {s for s, p in book.positions.items() if p.qty > 0}
        if outcome.rejected:
            ORDERS_REJECTED.labels(outcome.rejected).inc()
            self.log.warning("order not filled", extra={"order_id": order.event_id, "reason": outcome.rejected})
            return []
        if outcome.fill is None:
            return []
        if not outcome.fresh:
            DUPLICATE_ORDERS.inc()
            return [(STREAM_FILLS, outcome.fill)]
        fill = outcome.fill
        FILLED.labels(fill.side).inc()
        self.fills += 1
        if outcome.snapshot is not None:
            self._publish_gauges(order.portfolio, outcome.snapshot)
            SNAPSHOTS.labels("fill").inc()
        self.log.info(
            "order filled",
            extra={
                "order_id": order.event_id, "trade_id": fill.event_id, "symbol": fill.symbol, "side": fill.side,
                "qty": fill.qty, "price": fill.price, "fee": fill.fee, "realized_pnl": fill.realized_pnl,
                "portfolio": order.portfolio,
            },
        )  # fmt: skip
        return [(STREAM_FILLS, fill)]

    def _publish_gauges(self, portfolio: str, snap: Snapshot) -> None:
        if portfolio == self.book:
            self.last_snapshot = snap
        # Gauges are floats by nature (Prometheus); the money itself stays Decimal in Postgres.
        EQUITY.labels(portfolio).set(float(snap.equity))
        EXPOSURE.labels(portfolio).set(float(snap.exposure))
        DRAWDOWN.labels(portfolio).set(float(snap.drawdown_pct))
        DAILY_DRAWDOWN.labels(portfolio).set(float(snap.daily_drawdown_pct))

    async def mark_loop(self) -> None:
        """Mark each book to market from its own feed's ticks: a snapshot when a held price moved or a new
        UTC day began. The active book (CDB_FEED) is always kept; another book only while its ticks flow."""
        loaded = False
        while not self.stop.is_set():
            today = utcnow().date()
            books = set(self.dirty)
            if not loaded or today != self.last_snapshot_day.get(self.book):
                books.add(self.book)
            for book in sorted(books):
                try:
                    await self._mark(book, today)
                    loaded = loaded or book == self.book
                except Unavailable:
                    self.dirty.add(book)  # the db monitor reports the outage; try again next round
            await sleep_or_stop(self.stop, self.snapshot_interval)

    async def _mark(self, portfolio: str, today: Any) -> None:
        assert self.db is not None
        marks = self.marks.get(portfolio, {})
        async with self.db.transaction() as conn:
            self.dirty.discard(portfolio)  # a tick arriving from here on marks it again
            pg = store.PgExecutionStore(conn, marks)
            book = await pg.load_book(portfolio, today, self.config.initial_capital, None)
            held = self.held[portfolio] = {s for s, p in book.positions.items() if p.qty > 0}
            changed = [s for s in held if s in marks]
            day_changed = book.roll_day(today)
            snap = snapshot(book)
            if changed or day_changed:
                await store.write_marks(conn, book, changed)
                await store.write_snapshot(conn, book, snap, today)
                SNAPSHOTS.labels("mark").inc()
        self.last_snapshot_day[portfolio] = today
        self._publish_gauges(portfolio, snap)

    def add_checks(self, report: HealthReport) -> None:
        last = self.orders.last_event_at
        report.checks["last_order_age_seconds"] = None if last is None else round(time.monotonic() - last, 1)
        tick = self.ticks.last_event_at
        report.checks["last_tick_age_seconds"] = None if tick is None else round(time.monotonic() - tick, 1)
        report.checks["book"] = self.book
        report.checks["orders_filled"] = self.fills
        report.checks["positions_open"] = len(self.held.get(self.book, ()))
        if self.last_snapshot is not None:
            report.checks["equity_usdt"] = plain(self.last_snapshot.equity)
            report.checks["exposure_usdt"] = plain(self.last_snapshot.exposure)
            report.checks["drawdown_pct"] = plain(self.last_snapshot.drawdown_pct)
