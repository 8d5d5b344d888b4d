"""`cdb-ops trades`: one book's fills with the signal and the risk decision behind each, and on request
(--rejected) what was not traded: signals risk rejected, orders execution rejected, that expired or that a
halt cancelled; (--versions) the risk manager and execution that made each fill, from the journal.

Rows are joined along the chain signal → risk event → order → trade (foreign keys), all of one book.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from cdb_ops.db.journal import Version, has_journal, load_versions, version_at
from cdb_ops.views.book import ZERO, dec

# the services whose version stands behind a fill: risk decided it, execution filled it
FILL_SERVICES = ("risk", "execution")

SELECT_FILLS = """
SELECT t.executed_at, t.symbol, t.side, t.qty, t.price, t.fee, t.notional, t.realized_pnl, t.trade_id,
       s.signal_id, s.change_pct, s.confidence, s.price, s.tick_time,
       r.decision, r.reason, r.requested_qty, r.approved_qty, r.created_at
FROM trades t
JOIN orders o ON o.order_id = t.order_id
JOIN risk_events r ON r.risk_event_id = o.risk_event_id
JOIN signals s ON s.signal_id = o.signal_id
WHERE t.portfolio = %(book)s AND t.executed_at >= now() - %(since)s
  AND (%(symbol)s::text IS NULL OR t.symbol = %(symbol)s)
ORDER BY t.executed_at, t.trade_id
"""
# What the chain stopped: a risk rejection (no order), or an order execution rejected, that expired, or that
# a halt cancelled (trading_state.change_state: the reason names the halt, who and why).
SELECT_REJECTED = """
SELECT r.created_at, r.symbol, r.side, 'risk' AS stage, r.reason, r.requested_qty, r.price,
       s.signal_id, s.change_pct, s.confidence
FROM risk_events r JOIN signals s ON s.signal_id = r.signal_id
WHERE r.portfolio = %(book)s AND r.decision = 'REJECTED' AND r.created_at >= now() - %(since)s
  AND (%(symbol)s::text IS NULL OR r.symbol = %(symbol)s)
UNION ALL
SELECT o.updated_at, o.symbol, o.side,
       CASE o.status WHEN 'EXPIRED' THEN 'expired' WHEN 'CANCELLED' THEN 'cancelled' ELSE 'execution' END,
       coalesce(o.reject_reason, lower(o.status)), o.qty, o.reference_price,
       s.signal_id, s.change_pct, s.confidence
FROM orders o JOIN signals s ON s.signal_id = o.signal_id
WHERE o.portfolio = %(book)s AND o.status IN ('REJECTED', 'EXPIRED', 'CANCELLED')
  AND o.updated_at >= now() - %(since)s
  AND (%(symbol)s::text IS NULL OR o.symbol = %(symbol)s)
ORDER BY 1
"""


@dataclass(frozen=True)
class FillRow:
    executed_at: datetime
    symbol: str
    side: str
    qty: Decimal
    price: Decimal
    fee: Decimal
    notional: Decimal
    realized_pnl: Decimal
    trade_id: str
    signal: dict[str, Any]
    risk: dict[str, Any]
    decided_at: datetime | None = None  # when risk decided (its version is the one live then)
    versions: dict[str, Version | None] | None = None  # with --versions: risk and execution behind the fill

    def to_dict(self) -> dict[str, Any]:
        out = {
            "executed_at": self.executed_at.isoformat(), "symbol": self.symbol, "side": self.side,
            "qty": dec(self.qty), "price": dec(self.price), "fee": dec(self.fee), "notional": dec(self.notional),
            "realized_pnl": dec(self.realized_pnl), "trade_id": self.trade_id, "signal": self.signal,
            "risk": self.risk,
        }  # fmt: skip
        if self.versions is not None:
            out["versions"] = {k: v.to_dict() if v else None for k, v in self.versions.items()}
        return out


@dataclass(frozen=True)
class RejectedRow:
    at: datetime
    symbol: str
    side: str
    stage: str  # risk | execution | expired | cancelled
    reason: str
    qty: Decimal
    price: Decimal
    signal: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(), "symbol": self.symbol, "side": self.side, "stage": self.stage,
            "reason": self.reason, "qty": dec(self.qty), "price": dec(self.price), "signal": self.signal,
        }  # fmt: skip


@dataclass(frozen=True)
class Trades:
    book: str
    chosen_by: str
    since_seconds: int
    symbol: str | None
    fills: list[FillRow] = field(default_factory=list)
    rejected: list[RejectedRow] | None = None  # None: not asked for (--rejected)

    @property
    def fees(self) -> Decimal:
        return sum((f.fee for f in self.fills), ZERO)

    @property
    def realized_pnl(self) -> Decimal:
        return sum((f.realized_pnl for f in self.fills), ZERO)

    def to_dict(self) -> dict[str, Any]:
        return {
            "book": self.book,
            "chosen_by": self.chosen_by,
            "since_seconds": self.since_seconds,
            "symbol": self.symbol,
            "fills": [f.to_dict() for f in self.fills],
            "totals": {"fills": len(self.fills), "fees": dec(self.fees), "realized_pnl": dec(self.realized_pnl)},
            "rejected": None if self.rejected is None else [r.to_dict() for r in self.rejected],
        }


def _signal(signal_id: Any, change: Decimal, confidence: Decimal) -> dict[str, Any]:
    return {"signal_id": str(signal_id), "change_pct": dec(change), "confidence": dec(confidence)}


def load_trades(
    conn: Any, book: str, chosen_by: str, since: timedelta, symbol: str | None, rejected: bool, versions: bool = False
) -> Trades:
    params = {"book": book, "since": since, "symbol": symbol}
    fills = [
        FillRow(
            at, sym, side, qty, price, fee, notional, realized, str(trade_id),
            _signal(sid, change, conf) | {"price": dec(sprice), "tick_time": stime.isoformat()},
            {"decision": decision, "reason": reason, "requested_qty": dec(req), "approved_qty": dec(appr)},
            decided,
        )  # fmt: skip
        for (at, sym, side, qty, price, fee, notional, realized, trade_id, sid, change, conf, sprice, stime,
             decision, reason, req, appr, decided) in conn.execute(SELECT_FILLS, params).fetchall()
    ]  # fmt: skip
    if versions:
        fills = with_versions(fills, load_versions(conn, FILL_SERVICES) if has_journal(conn) else {})
    stopped = None
    if rejected:
        stopped = [
            RejectedRow(at, sym, side, stage, reason, qty, price, _signal(sid, change, conf))
            for at, sym, side, stage, reason, qty, price, sid, change, conf in conn.execute(
                SELECT_REJECTED, params
            ).fetchall()
        ]
    return Trades(book, chosen_by, int(since.total_seconds()), symbol, fills, stopped)


def with_versions(fills: list[FillRow], known: dict[str, list[Version]]) -> list[FillRow]:
    """Each fill with the risk manager live when it was decided and the execution live when it filled
    (None: before the journal knew that service)."""
    from dataclasses import replace

    def at(service: str, when: datetime | None) -> Version | None:
        return version_at(known.get(service, []), when) if when is not None else None

    return [
        replace(
            f, versions={"risk": at("risk", f.decided_at or f.executed_at), "execution": at("execution", f.executed_at)}
        )
        for f in fills
    ]
