"""Risk manager service: one decision per signal (cdb:signals) → risk_events + audit line (+ order).

Ids are derived from the signal id, so a redelivered signal finds its stored decision and re-emits
the same order instead of deciding again (and writes no second audit line). A second loop expires
orders still unfilled after ORDER_TTL_SECONDS (status EXPIRED with the reason, one audit line each).
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

from cdb_common.config import Settings, env_int
from cdb_common.db import Unavailable, sleep_or_stop
from cdb_common.events import STREAM_ORDERS, STREAM_SIGNALS, Order, Signal, book_of, derived_id, now_ms
from cdb_common.health import HealthReport
from cdb_common.runtime import BaseService
from cdb_common.streams import Outputs, StreamConsumer, observe_latency
from cdb_common.timeutil import utcnow
from prometheus_client import Counter, Gauge

from . import store
from .audit import AuditLog
from .rules import TRADING_STATES, RiskDecision, RiskLimits, SignalIn, evaluate

DECISIONS = Counter("cdb_risk_decisions_total", "Risk decisions", ["decision", "reason"])
AUDIT_ERRORS = Counter("cdb_audit_write_errors_total", "Audit lines that could not be written")
EQUITY = Gauge("cdb_equity_usdt", "Equity (cash + positions at market) seen by the last decision", ["portfolio"])
EXPOSURE = Gauge(
    "cdb_exposure_usdt", "Exposure (positions at market + pending buys) at the last decision", ["portfolio"]
)
DAILY_DRAWDOWN = Gauge(
    "cdb_daily_drawdown_pct", "Drawdown from start-of-UTC-day equity at the last decision", ["portfolio"]
)
EXPIRED = Counter("cdb_orders_expired_total", "Orders expired unfilled after ORDER_TTL_SECONDS", ["side"])
BREAKER = Gauge("cdb_circuit_breaker_tripped", "1 while the daily-drawdown breaker halts BUYs", ["portfolio"])
TRADING_STATE = Gauge(
    "cdb_trading_state",
    "1 for the book's effective trading state at the last decision, 0 for the others",
    ["portfolio", "state"],
)


def order_for(signal: Signal, decision: RiskDecision, risk_event_id: str, portfolio: str) -> Order:
    return Order(
        event_id=derived_id(signal.event_id, "order"),
        risk_event_id=risk_event_id,
        signal_id=signal.event_id,
        symbol=signal.symbol,
        side=signal.side,
        qty=decision.approved_qty,
        reference_price=signal.price,
        portfolio=portfolio,
        tick_time=signal.tick_time,
        received_at=signal.received_at,
        produced_at=now_ms(),
        is_probe=signal.is_probe,
    )


class RiskService(BaseService):
    name = "risk_manager"
    default_port = 8002

    def __init__(self, settings: Settings, log: logging.Logger) -> None:
        super().__init__(settings, log)
        self.limits = RiskLimits.from_settings(settings)
        self.audit = AuditLog(settings.get("RISK_AUDIT_PATH", "/var/log/cdb_risk/audit.jsonl"))
        self.consumer = StreamConsumer(self.redis_bus, self.db, STREAM_SIGNALS, "risk_manager", self.handle, log=log)
        self.decisions = {"APPROVED": 0, "REJECTED": 0}
        self.breaker_tripped = False
        self.trading_state = "ACTIVE"  # effective state of the feed's book at the last decision
        self.order_ttl = env_int(settings.env, "ORDER_TTL_SECONDS", 300, minimum=1)
        self.orders_expired = 0

    def loops(self) -> list[Any]:
        return [self.consumer.run(self.stop), self.expiry_loop()]

    async def expiry_loop(self) -> None:
        """Sweep for unfilled orders older than ORDER_TTL_SECONDS, several times per TTL."""
        every = min(5.0, self.order_ttl / 4)
        while not self.stop.is_set():
            await sleep_or_stop(self.stop, every)
            # While Postgres is down the database monitor reports it; the next sweep catches up.
            with contextlib.suppress(Unavailable):
                await self.expire_once()

    async def expire_once(self) -> int:
        assert self.db is not None
        async with self.db.transaction() as conn:
            rows = await store.expire_orders(conn, self.order_ttl)
        for row in rows:
            record = store.expiry_record(row, self.order_ttl, utcnow().isoformat(timespec="milliseconds"))
            EXPIRED.labels(record["side"]).inc()
            self.orders_expired += 1
            self._audit(record)
            self.log.warning(
                "order expired", extra={k: record[k] for k in ("order_id", "symbol", "side", "detail", "portfolio")}
            )
        return len(rows)

    def _audit(self, record: dict[str, Any]) -> None:
        try:
            self.audit.append(record)
            self.audit.last_error = None
        except OSError as exc:
            AUDIT_ERRORS.inc()
            self.audit.last_error = str(exc)
            self.log.error("audit line not written", extra={"path": self.audit.path, "error": str(exc)})

    async def handle(self, _entry_id: str, fields: dict[str, Any]) -> Outputs:
        signal = Signal.from_fields(fields)
        observe_latency(STREAM_SIGNALS, signal.received_at)
        # The signal says which feed's book it belongs to (a feed switch never moves it to another book).
        portfolio = book_of(signal.portfolio, signal.is_probe)
        risk_event_id = derived_id(signal.event_id, "risk")
        now = utcnow()
        assert self.db is not None
        async with self.db.transaction("REPEATABLE READ") as conn:
            existing, view = await store.load_state(
                conn,
                signal.event_id,
                portfolio,
                now.date(),
                self.limits.initial_capital,
                only_symbol=signal.symbol if signal.is_probe else None,
            )
            if existing is not None:
                return self._replay(signal, existing)
            decision = evaluate(SignalIn(signal.symbol, signal.side, signal.price), view, self.limits, now)
            order = order_for(signal, decision, risk_event_id, portfolio) if decision.approved else None
            await store.save_decision(conn, signal, decision, risk_event_id, portfolio, order)
            if not signal.is_probe:
                # Same transaction, so a committed decision always has its day row; a concurrent
                # write of that row by execution aborts this one (Conflict) and it is decided again.
                await store.latch_day(conn, portfolio, decision)
        self._record(signal, decision, risk_event_id, portfolio, order)
        return [(STREAM_ORDERS, order)] if order is not None else []

    def _replay(self, signal: Signal, existing: tuple[Any, ...]) -> Outputs:
        """A redelivered signal: re-emit the stored order (its id is the same), decide nothing anew."""
        _risk_event_id, decision, _reason, order_id, qty, reference_price, portfolio = existing
        if decision != "APPROVED" or order_id is None:
            return []
        order = Order(
            event_id=str(order_id),
            risk_event_id=str(_risk_event_id),
            signal_id=signal.event_id,
            symbol=signal.symbol,
            side=signal.side,
            qty=qty,
            reference_price=reference_price,
            portfolio=portfolio,
            tick_time=signal.tick_time,
            received_at=signal.received_at,
            produced_at=now_ms(),
            is_probe=signal.is_probe,
        )
        return [(STREAM_ORDERS, order)]

    def _record(
        self, signal: Signal, decision: RiskDecision, risk_event_id: str, portfolio: str, order: Order | None
    ) -> None:
        DECISIONS.labels(decision.decision, decision.reason).inc()
        self.decisions[decision.decision] += 1
        EQUITY.labels(portfolio).set(float(decision.equity))  # metrics are floats by nature; money stays Decimal
        EXPOSURE.labels(portfolio).set(float(decision.exposure))
        DAILY_DRAWDOWN.labels(portfolio).set(float(decision.daily_drawdown_pct))
        if portfolio == self.settings.feed:
            self.breaker_tripped = decision.breaker_tripped
            self.trading_state = decision.trading_state
            BREAKER.labels(portfolio).set(1 if decision.breaker_tripped else 0)
            for state in TRADING_STATES:
                TRADING_STATE.labels(portfolio, state).set(1 if state == decision.trading_state else 0)
        record = {
            "ts": utcnow().isoformat(timespec="milliseconds"),
            "risk_event_id": risk_event_id,
            "signal_id": signal.event_id,
            "order_id": order.event_id if order else None,
            **store.decision_fields(decision),
            "limits": decision.limits,
            "portfolio": portfolio,
            "is_probe": signal.is_probe,
            "trading_state": decision.trading_state,
        }
        self._audit(record)
        self.log.info(
            "risk decision",
            extra={
                k: record[k]
                for k in ("risk_event_id", "symbol", "side", "decision", "reason", "approved_qty", "is_probe")
            },
        )

    def add_checks(self, report: HealthReport) -> None:
        last = self.consumer.last_event_at
        report.checks["last_signal_age_seconds"] = None if last is None else round(time.monotonic() - last, 1)
        report.checks["decisions_approved"] = self.decisions["APPROVED"]
        report.checks["decisions_rejected"] = self.decisions["REJECTED"]
        report.checks["book"] = self.settings.feed
        report.checks["circuit_breaker_tripped"] = self.breaker_tripped
        report.checks["trading_state"] = self.trading_state
        report.checks["audit_path"] = self.audit.path
        report.checks["audit_lines_written"] = self.audit.lines_written
        report.checks["order_ttl_seconds"] = self.order_ttl
        report.checks["orders_expired"] = self.orders_expired
        if self.audit.last_error:
            report.checks["audit_error"] = self.audit.last_error
            report.worsen("degraded")
