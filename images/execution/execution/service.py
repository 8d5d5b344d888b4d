"""Execution service: paper-fills cdb:orders, marks positions to market, publishes cdb:fills.

One consumer group "execution" on cdb:orders (fills, one transaction each). Prices come from the
screener's `cdb:marks` hash (the last price per symbol, written with the ticks): an order is filled at
its symbol's last price read at that moment, and a mark loop reads the held symbols' prices every
second, writing a portfolio snapshot at most every SNAPSHOT_INTERVAL_SECONDS when one moved or a new
UTC day began. Marks coalesce to the last price per symbol, so no tick ever queues ahead of an order.

Books: every order names its portfolio (the feed's book, or 'probe') and is filled at a price of that
book's feed (`cdb:marks:<book>`); the mark loop marks the book of this stack's feed (CDB_FEED) only —
the other feed is not running, so its book's marks cannot move.
"""

from __future__ import annotations

import contextlib
import logging
import time
from decimal import Decimal
from typing import Any

from cdb_common.config import Settings, env_int
from cdb_common.db import Unavailable, sleep_or_stop
from cdb_common.events import STREAM_FILLS, STREAM_ORDERS, STREAM_TICKS, EventError, Order, book_of, plain
from cdb_common.health import HealthReport
from cdb_common.retention import PORTFOLIO_SNAPSHOTS
from cdb_common.retention_task import RetentionTask
from cdb_common.runtime import BaseService
from cdb_common.streams import REDIS_ERRORS, Outputs, StreamConsumer, marks_key, observe_latency
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
        self.book = settings.feed  # the book of this stack's feed (CDB_FEED): marked, reported in /health
        self.marks: dict[str, Decimal] = {}  # last prices of that book's feed
        self.held: set[str] = set()  # symbols of self.book with qty > 0 (refreshed on every write)
        self.dirty = False
        self.last_snapshot: Snapshot | None = None
        self.last_snapshot_day = None
        self.last_mark_change: float | None = None
        self.fills = 0
        self.orders = StreamConsumer(self.redis_bus, self.db, STREAM_ORDERS, "execution", self.handle_order, log=log)
        self.retention = RetentionTask(PORTFOLIO_SNAPSHOTS, settings, log)  # ages out old portfolio_snapshots

    def loops(self) -> list[Any]:
        return [self.orders.run(self.stop), self.mark_loop(), self.retention.run(self.stop)]

    async def open(self) -> None:
        # Earlier versions consumed cdb:ticks in a group of this name: without a reader its lag only grows.
        with contextlib.suppress(Exception):
            await self.redis_bus.redis.xgroup_destroy(STREAM_TICKS, "execution")

    async def read_marks(self, symbols: list[str], book: str | None = None) -> dict[str, Decimal]:
        """The screener's last price of each of `symbols` that has one in `book`'s marks (default: this
        stack's book; raises a Redis error when down)."""
        if not symbols:
            return {}
        values = await self.redis_bus.redis.hmget(marks_key(book or self.book), symbols)
        found = {}
        for symbol, value in zip(symbols, values, strict=True):
            if value is not None:
                with contextlib.suppress(ArithmeticError, ValueError):
                    price = Decimal(value)
                    if price.is_finite() and price > 0:
                        found[symbol] = price
        return found

    def _take_marks(self, found: dict[str, Decimal]) -> None:
        for symbol, price in found.items():
            if self.marks.get(symbol) != price:
                self.marks[symbol] = price
                self.last_mark_change = time.monotonic()
                if symbol in self.held:
                    self.dirty = True

    async def handle_order(self, _entry_id: str, fields: dict[str, Any]) -> Outputs:
        order = Order.from_fields(fields)
        book_of(order.portfolio, order.is_probe)  # an order of no known book is a producer bug (dead letter)
        observe_latency(STREAM_ORDERS, order.received_at)
        # the probe's prices come from the screener's feed; an order of the other book (in flight across a
        # feed switch) is filled at its own feed's last prices, never this one's
        own = order.portfolio in (self.book, "probe")
        found = await self.read_marks([order.symbol], None if own else order.portfolio)
        if own:
            self._take_marks(found)  # the freshest price, read now
        marks = self.marks if own else found
        today = utcnow().date()
        assert self.db is not None
        async with self.db.transaction() as conn:
            pg = store.PgExecutionStore(conn, marks)
            try:
                outcome = await execute(pg, order, marks.get(order.symbol), self.config, today)
            except LookupError as exc:
                # An order event without its row is a producer bug; nothing can be filled.
                raise EventError(str(exc)) from None
            if outcome.fresh and order.portfolio == self.book:
                book = await pg.load_book(self.book, today, self.config.initial_capital, None)
                self.held = {s for s, p in book.positions.items() if p.qty > 0}
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
        """Mark this stack's book to market: poll the held symbols' prices every second; a snapshot when one moved
        (at most every SNAPSHOT_INTERVAL_SECONDS) or a new UTC day began."""
        loaded = False
        next_snapshot = 0.0
        while not self.stop.is_set():
            with contextlib.suppress(*REDIS_ERRORS):  # the Redis monitor reports an outage
                self._take_marks(await self.read_marks(sorted(self.held)))
            today = utcnow().date()
            due = time.monotonic() >= next_snapshot
            if not loaded or today != self.last_snapshot_day or (self.dirty and due):
                try:
                    await self._mark(today)
                    loaded = True
                    next_snapshot = time.monotonic() + self.snapshot_interval
                except Unavailable:
                    self.dirty = True  # the db monitor reports the outage; try again next round
            await sleep_or_stop(self.stop, min(1.0, self.snapshot_interval))

    async def _mark(self, today: Any) -> None:
        assert self.db is not None
        async with self.db.transaction() as conn:
            self.dirty = False  # a tick arriving from here on marks it again
            pg = store.PgExecutionStore(conn, self.marks)
            book = await pg.load_book(self.book, today, self.config.initial_capital, None)
            self.held = {s for s, p in book.positions.items() if p.qty > 0}
            changed = [s for s in self.held if s in self.marks]
            day_changed = book.roll_day(today)
            snap = snapshot(book)
            if changed or day_changed:
                await store.write_marks(conn, book, changed)
                await store.write_snapshot(conn, book, snap, today)
                SNAPSHOTS.labels("mark").inc()
        self.last_snapshot_day = today
        self._publish_gauges(self.book, snap)

    def add_checks(self, report: HealthReport) -> None:
        last = self.orders.last_event_at
        report.checks["last_order_age_seconds"] = None if last is None else round(time.monotonic() - last, 1)
        tick = self.last_mark_change  # when a price from cdb:marks last moved
        report.checks["last_tick_age_seconds"] = None if tick is None else round(time.monotonic() - tick, 1)
        report.checks["book"] = self.book
        report.checks["orders_filled"] = self.fills
        report.checks["positions_open"] = len(self.held)
        if self.last_snapshot is not None:
            report.checks["equity_usdt"] = plain(self.last_snapshot.equity)
            report.checks["exposure_usdt"] = plain(self.last_snapshot.exposure)
            report.checks["drawdown_pct"] = plain(self.last_snapshot.drawdown_pct)
