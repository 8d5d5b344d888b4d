"""Postgres reads and writes of the risk manager: the portfolio view, decisions, orders, the breaker latch.

Portfolio state is execution's (positions, portfolio_snapshots, daily_pnl); pending orders are the
risk manager's own rows in status NEW. The view is read in one REPEATABLE READ snapshot so cash and
positions come from the same moment.
"""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from typing import Any

from cdb_common.events import Order, Signal

from .rules import Holding, PendingOrder, PortfolioView, RiskDecision

SELECT_CASH = "SELECT cash FROM portfolio_snapshots WHERE portfolio = %s ORDER BY id DESC LIMIT 1"
SELECT_HOLDINGS = "SELECT symbol, qty, last_price FROM positions WHERE portfolio = %s AND qty > 0"
SELECT_PENDING = "SELECT symbol, side, qty, reference_price FROM orders WHERE portfolio = %s AND status = 'NEW'"
SELECT_DAY = "SELECT start_equity, breaker_tripped FROM daily_pnl WHERE portfolio = %s AND day = %s"

SELECT_DECISION = """
SELECT r.risk_event_id, r.decision, r.reason, o.order_id, o.qty, o.reference_price, o.portfolio
FROM risk_events r LEFT JOIN orders o ON o.risk_event_id = r.risk_event_id
WHERE r.signal_id = %s
"""

INSERT_RISK_EVENT = """
INSERT INTO risk_events (risk_event_id, signal_id, symbol, side, decision, reason, requested_qty,
                         approved_qty, price, equity, exposure, limits, portfolio, is_probe)
VALUES (%(risk_event_id)s, %(signal_id)s, %(symbol)s, %(side)s, %(decision)s, %(reason)s,
        %(requested_qty)s, %(approved_qty)s, %(price)s, %(equity)s, %(exposure)s, %(limits)s,
        %(portfolio)s, %(is_probe)s)
ON CONFLICT (risk_event_id) DO NOTHING
"""

INSERT_ORDER = """
INSERT INTO orders (order_id, risk_event_id, signal_id, symbol, side, qty, reference_price, portfolio, is_probe)
VALUES (%(order_id)s, %(risk_event_id)s, %(signal_id)s, %(symbol)s, %(side)s, %(qty)s,
        %(reference_price)s, %(portfolio)s, %(is_probe)s)
ON CONFLICT (order_id) DO NOTHING
"""

# The first writer of a UTC day fixes its start equity; the latch only ever goes from false to true.
UPSERT_DAY_LATCH = """
INSERT INTO daily_pnl (portfolio, day, start_equity, end_equity, high_equity, low_equity, breaker_tripped)
VALUES (%(portfolio)s, %(day)s, %(start)s, %(equity)s, %(high)s, %(low)s, %(tripped)s)
ON CONFLICT (portfolio, day) DO UPDATE
SET breaker_tripped = daily_pnl.breaker_tripped OR EXCLUDED.breaker_tripped,
    updated_at = CASE WHEN EXCLUDED.breaker_tripped AND NOT daily_pnl.breaker_tripped
                      THEN now() ELSE daily_pnl.updated_at END
"""


# Orders that never filled (their stream entry lost, execution never saw them) stop counting as pending
# exposure and stop blocking their symbol. The row lock taken by a concurrent fill makes this UPDATE
# wait and then re-check `status = 'NEW'`, so a filled order is never expired.
EXPIRE_ORDERS = """
UPDATE orders SET status = 'EXPIRED', reject_reason = %(reason)s, updated_at = now()
WHERE status = 'NEW' AND created_at < now() - make_interval(secs => %(ttl)s)
RETURNING order_id, risk_event_id, signal_id, symbol, side, qty, reference_price, portfolio, is_probe,
          EXTRACT(EPOCH FROM now() - created_at)
"""


def expiry_reason(ttl_seconds: int) -> str:
    return f"expired: not filled within {ttl_seconds} s (ORDER_TTL_SECONDS)"


def expiry_record(row: tuple[Any, ...], ttl_seconds: int, ts: str) -> dict[str, Any]:
    """The audit line of one expired order (same file as the decisions, `event` tells them apart)."""
    order_id, risk_event_id, signal_id, symbol, side, qty, reference_price, portfolio, is_probe, age = row
    return {
        "ts": ts,
        "event": "order_expired",
        "order_id": str(order_id),
        "risk_event_id": str(risk_event_id),
        "signal_id": str(signal_id),
        "symbol": symbol,
        "side": side,
        "decision": "EXPIRED",
        "reason": "expired",
        "detail": expiry_reason(ttl_seconds),
        "qty": qty,
        "reference_price": reference_price,
        "released_notional": (qty * reference_price).quantize(Decimal("0.000000000001")),
        "age_seconds": round(float(age), 3),
        "order_ttl_seconds": ttl_seconds,
        "portfolio": portfolio,
        "is_probe": is_probe,
    }


async def expire_orders(conn: Any, ttl_seconds: int) -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = await (
        await conn.execute(EXPIRE_ORDERS, {"reason": expiry_reason(ttl_seconds), "ttl": ttl_seconds})
    ).fetchall()
    return rows


async def load_view(conn: Any, portfolio: str, today: date, capital: Decimal, only_symbol: str | None) -> PortfolioView:
    """The portfolio as risk sees it. `only_symbol` (the probe) gives a fresh INITIAL_CAPITAL view."""
    holdings: dict[str, Holding] = {}
    # The probe reads its own symbol only: the probe portfolio keeps a row per probe ever run.
    narrow, params = ("", (portfolio,)) if only_symbol is None else (" AND symbol = %s", (portfolio, only_symbol))
    rows = await (await conn.execute(SELECT_HOLDINGS + narrow, params)).fetchall()
    for symbol, qty, last_price in rows:
        holdings[symbol] = Holding(qty=qty, mark_price=last_price)
    pending = tuple(
        PendingOrder(symbol, side, qty, ref)
        for symbol, side, qty, ref in await (await conn.execute(SELECT_PENDING + narrow, params)).fetchall()
    )
    if only_symbol is not None:
        # The probe never sees (or moves) the real portfolio: all cash but for its own symbol.
        cost = sum((h.qty * h.mark_price for h in holdings.values()), Decimal(0))
        return PortfolioView(cash=capital - cost, holdings=holdings, pending=pending)
    row = await (await conn.execute(SELECT_CASH, (portfolio,))).fetchone()
    cash = row[0] if row else capital
    day_row = await (await conn.execute(SELECT_DAY, (portfolio, today))).fetchone()
    return PortfolioView(
        cash=cash,
        holdings=holdings,
        pending=pending,
        day=today if day_row else None,
        day_start_equity=day_row[0] if day_row else None,
        breaker_latched=bool(day_row[1]) if day_row else False,
    )


async def find_decision(conn: Any, signal_id: str) -> tuple[Any, ...] | None:
    return await (await conn.execute(SELECT_DECISION, (signal_id,))).fetchone()


async def save_decision(
    conn: Any, signal: Signal, decision: RiskDecision, risk_event_id: str, portfolio: str, order: Order | None
) -> None:
    await conn.execute(
        INSERT_RISK_EVENT,
        {
            "risk_event_id": risk_event_id,
            "signal_id": signal.event_id,
            "symbol": decision.symbol,
            "side": decision.side,
            "decision": decision.decision,
            "reason": decision.reason,
            "requested_qty": decision.requested_qty,
            "approved_qty": decision.approved_qty,
            "price": decision.price,
            "equity": decision.equity,
            "exposure": decision.exposure,
            "limits": json.dumps(decision.limits),
            "portfolio": portfolio,
            "is_probe": signal.is_probe,
        },
    )
    if order is not None:
        await conn.execute(
            INSERT_ORDER,
            {
                "order_id": order.event_id,
                "risk_event_id": risk_event_id,
                "signal_id": signal.event_id,
                "symbol": order.symbol,
                "side": order.side,
                "qty": order.qty,
                "reference_price": order.reference_price,
                "portfolio": portfolio,
                "is_probe": order.is_probe,
            },
        )


async def latch_day(conn: Any, portfolio: str, decision: RiskDecision) -> None:
    start, equity = decision.day_start_equity, decision.equity
    await conn.execute(
        UPSERT_DAY_LATCH,
        {
            "portfolio": portfolio,
            "day": decision.day,
            "start": start,
            "equity": equity,
            "high": max(start, equity),
            "low": min(start, equity),
            "tripped": decision.breaker_tripped,
        },
    )
