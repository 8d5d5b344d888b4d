"""Probe rows age out: what validate's end-to-end probe wrote (flagged `is_probe`, in portfolio
'probe') is deleted once older than the retention, so a validate every five minutes for a month leaves
the trading tables the size the real trading made them. Children go before parents (trade → order →
risk event → signal), each guarded so a row something still refers to stays."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

PROBE_PORTFOLIO = "probe"
DEFAULT_RETENTION_HOURS = Decimal(24)

# (table, statement): run in this order in one transaction; %(cutoff)s is now() - retention
_PRUNE = (
    (
        "portfolio_snapshots",
        "DELETE FROM portfolio_snapshots WHERE portfolio = %(portfolio)s AND taken_at < %(cutoff)s",
    ),
    (
        "trades",
        "DELETE FROM trades t WHERE t.is_probe AND t.executed_at < %(cutoff)s"
        " AND NOT EXISTS (SELECT 1 FROM portfolio_snapshots p WHERE p.trigger_trade_id = t.trade_id)",
    ),
    (
        "orders",
        "DELETE FROM orders o WHERE o.is_probe AND o.created_at < %(cutoff)s"
        " AND NOT EXISTS (SELECT 1 FROM trades t WHERE t.order_id = o.order_id)",
    ),
    (
        "risk_events",
        "DELETE FROM risk_events r WHERE r.is_probe AND r.created_at < %(cutoff)s"
        " AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.risk_event_id = r.risk_event_id)",
    ),
    (
        "signals",
        "DELETE FROM signals s WHERE s.is_probe AND s.created_at < %(cutoff)s"
        " AND NOT EXISTS (SELECT 1 FROM risk_events r WHERE r.signal_id = s.signal_id)",
    ),
    ("market_snapshots", "DELETE FROM market_snapshots WHERE is_probe AND inserted_at < %(cutoff)s"),
    ("positions", "DELETE FROM positions WHERE portfolio = %(portfolio)s AND updated_at < %(cutoff)s"),
    ("daily_pnl", "DELETE FROM daily_pnl WHERE portfolio = %(portfolio)s AND updated_at < %(cutoff)s"),
)


def prune_probe_rows(conn: Any, retention_hours: Decimal) -> dict[str, int]:
    """Delete probe rows older than `retention_hours`; {table: rows deleted} for the tables that lost any."""
    from datetime import UTC, datetime, timedelta

    cutoff = datetime.now(UTC) - timedelta(hours=float(retention_hours))
    deleted: dict[str, int] = {}
    with conn.transaction():
        for table, statement in _PRUNE:
            cur = conn.execute(statement, {"cutoff": cutoff, "portfolio": PROBE_PORTFOLIO})
            if cur.rowcount:
                deleted[table] = cur.rowcount
    return deleted
