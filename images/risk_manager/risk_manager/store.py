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

from .rules import ACTIVE, Holding, PendingOrder, PortfolioView, RiskDecision

# Everything a decision reads, in one statement (one round trip where six took six: at ~0.5 ms a round trip
# on a busy 2-core host that was most of the risk manager's share of tick-to-order): an earlier decision
# for the signal (a redelivery), the holdings, the unfilled orders, the cash, the day's latch, the book's trading
# state (its newest book_states row; none: ACTIVE; the probe's book never has one). Numbers
# travel as text inside the JSON, so they come back as the exact Decimals the columns hold.
# {narrow}: "" or " AND symbol = %(symbol)s" (the probe reads its own symbol only).
SELECT_STATE = """
SELECT
  (SELECT json_build_array(r.risk_event_id, r.decision, r.reason, o.order_id, o.qty::text, o.reference_price::text,
                           o.portfolio)
     FROM risk_events r LEFT JOIN orders o ON o.risk_event_id = r.risk_event_id
    WHERE r.signal_id = %(signal_id)s LIMIT 1),
  (SELECT coalesce(json_agg(json_build_array(symbol, qty::text, last_price::text)), '[]'::json)
     FROM positions WHERE portfolio = %(portfolio)s AND qty > 0{narrow}),
  (SELECT coalesce(json_agg(json_build_array(symbol, side, qty::text, reference_price::text)), '[]'::json)
     FROM orders WHERE portfolio = %(portfolio)s AND status = 'NEW'{narrow}),
  (SELECT cash::text FROM portfolio_snapshots WHERE portfolio = %(portfolio)s ORDER BY id DESC LIMIT 1),
  (SELECT json_build_array(start_equity::text, breaker_tripped) FROM daily_pnl
    WHERE portfolio = %(portfolio)s AND day = %(day)s),
  (SELECT state FROM book_states WHERE portfolio = %(portfolio)s ORDER BY id DESC LIMIT 1)
"""

INSERT_RISK_EVENT = """
INSERT INTO risk_events (risk_event_id, signal_id, symbol, side, decision, reason, requested_qty,
                         approved_qty, price, equity, exposure, limits, portfolio, is_probe)
VALUES (%(risk_event_id)s, %(signal_id)s, %(symbol)s, %(side)s, %(decision)s, %(reason)s,
        %(requested_qty)s, %(approved_qty)s, %(price)s, %(equity)s, %(exposure)s, %(limits)s,
        %(portfolio)s, %(is_probe)s)
ON CONFLICT (risk_event_id) DO NOTHING
"""

# The order row in the same statement as its decision (a data-modifying CTE: the foreign key is checked
# at the end of the statement, when both rows exist); without an order only the decision is inserted.
INSERT_DECISION_AND_ORDER = (
    "WITH decision AS ("
    + INSERT_RISK_EVENT.strip()
    + """)
INSERT INTO orders (order_id, risk_event_id, signal_id, symbol, side, qty, reference_price, portfolio, is_probe)
VALUES (%(order_id)s, %(risk_event_id)s, %(signal_id)s, %(symbol)s, %(side)s, %(qty)s,
        %(reference_price)s, %(portfolio)s, %(is_probe)s)
ON CONFLICT (order_id) DO NOTHING
"""
)

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


async def load_state(
    conn: Any, signal_id: str, portfolio: str, today: date, capital: Decimal, only_symbol: str | None
) -> tuple[tuple[Any, ...] | None, PortfolioView]:
    """(the stored decision for `signal_id` or None, the portfolio as risk sees it), in one round trip.
    `only_symbol` (the probe) gives a fresh INITIAL_CAPITAL view of that symbol."""
    narrow = "" if only_symbol is None else " AND symbol = %(symbol)s"
    params = {"signal_id": signal_id, "portfolio": portfolio, "day": today, "symbol": only_symbol}
    row = await (await conn.execute(SELECT_STATE.format(narrow=narrow), params)).fetchone()
    earlier, holding_rows, pending_rows, cash_text, day_row, state = row
    existing = None
    if earlier is not None:
        risk_event_id, decision, reason, order_id, qty, reference_price, order_portfolio = earlier
        existing = (
            risk_event_id, decision, reason, order_id, _decimal(qty), _decimal(reference_price), order_portfolio,
        )  # fmt: skip
    holdings = {symbol: Holding(qty=Decimal(qty), mark_price=Decimal(last)) for symbol, qty, last in holding_rows}
    pending = tuple(PendingOrder(symbol, side, Decimal(qty), Decimal(ref)) for symbol, side, qty, ref in pending_rows)
    if only_symbol is not None:
        # The probe never sees (or moves) the real portfolio: all cash but for its own symbol.
        cost = sum((h.qty * h.mark_price for h in holdings.values()), Decimal(0))
        return existing, PortfolioView(cash=capital - cost, holdings=holdings, pending=pending)
    view = PortfolioView(
        cash=Decimal(cash_text) if cash_text is not None else capital,
        holdings=holdings,
        pending=pending,
        day=today if day_row else None,
        day_start_equity=Decimal(day_row[0]) if day_row else None,
        breaker_latched=bool(day_row[1]) if day_row else False,
        trading_state=state or ACTIVE,
    )
    return existing, view


def _decimal(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


def decision_fields(decision: RiskDecision) -> dict[str, Any]:
    """What a decision says, as its row and its audit line both record it."""
    return {
        "symbol": decision.symbol,
        "side": decision.side,
        "decision": decision.decision,
        "reason": decision.reason,
        "requested_qty": decision.requested_qty,
        "approved_qty": decision.approved_qty,
        "price": decision.price,
        "equity": decision.equity,
        "exposure": decision.exposure,
    }


async def save_decision(
    conn: Any, signal: Signal, decision: RiskDecision, risk_event_id: str, portfolio: str, order: Order | None
) -> None:
    """The decision's row and, when approved, its order's, in one statement."""
    params: dict[str, Any] = {
        "risk_event_id": risk_event_id,
        "signal_id": signal.event_id,
        **decision_fields(decision),
        "limits": json.dumps(decision.limits),
        "portfolio": portfolio,
        "is_probe": signal.is_probe,
    }
    if order is None:
        await conn.execute(INSERT_RISK_EVENT, params)
        return
    params.update(order_id=order.event_id, qty=order.qty, reference_price=order.reference_price)
    await conn.execute(INSERT_DECISION_AND_ORDER, params)


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
