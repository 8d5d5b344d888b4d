"""`cdb-ops report`: one book's results over the last N UTC days — per day and per pair: trades, win rate,
realized PnL, fees — and the equity curve with its maximum drawdown, marked where the journal says the
book's state changed or a service was swapped (db/journal.py).

A win is a closing SELL with realized PnL > 0 (net of both fees); the win rate is wins / closing SELLs.
Drawdown is measured on the equity curve (cash + marked-to-market positions, every portfolio snapshot
execution wrote), never on closed-trade profit alone: max drawdown = the largest fall from a running peak.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from cdb_ops.views.book import HUNDRED, ZERO, dec

SELECT_NOW = "SELECT now()"
SELECT_GROUPS = """
SELECT (executed_at AT TIME ZONE 'UTC')::date, symbol, count(*),
       count(*) FILTER (WHERE side = 'SELL'), count(*) FILTER (WHERE side = 'SELL' AND realized_pnl > 0),
       coalesce(sum(realized_pnl), 0), coalesce(sum(fee), 0)
FROM trades WHERE portfolio = %s AND executed_at >= %s
GROUP BY 1, 2 ORDER BY 1, 2
"""
SELECT_CURVE = "SELECT taken_at, equity FROM portfolio_snapshots WHERE portfolio = %s AND taken_at >= %s ORDER BY id"
SELECT_BEFORE = """
SELECT equity FROM portfolio_snapshots WHERE portfolio = %s AND taken_at < %s ORDER BY id DESC LIMIT 1
"""
MAX_CURVE_POINTS = 1000  # in --json and the charts; the drawdown is computed on every point


@dataclass
class Tally:
    trades: int = 0
    closed: int = 0
    wins: int = 0
    realized_pnl: Decimal = ZERO
    fees: Decimal = ZERO

    def add(self, trades: int, closed: int, wins: int, realized: Decimal, fees: Decimal) -> None:
        self.trades += trades
        self.closed += closed
        self.wins += wins
        self.realized_pnl += realized
        self.fees += fees

    @property
    def win_rate_pct(self) -> Decimal | None:
        return (Decimal(self.wins) / self.closed * HUNDRED).quantize(Decimal("0.01")) if self.closed else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "trades": self.trades, "closed": self.closed, "wins": self.wins, "win_rate_pct": dec(self.win_rate_pct),
            "realized_pnl": dec(self.realized_pnl), "fees": dec(self.fees),
        }  # fmt: skip


@dataclass(frozen=True)
class Drawdown:
    pct: Decimal
    usdt: Decimal
    peak_at: datetime | None
    trough_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "pct": dec(self.pct.quantize(Decimal("0.000001"))), "usdt": dec(self.usdt),
            "peak_at": self.peak_at.isoformat() if self.peak_at else None,
            "trough_at": self.trough_at.isoformat() if self.trough_at else None,
        }  # fmt: skip


def max_drawdown(curve: list[tuple[datetime, Decimal]]) -> Drawdown:
    """The largest fall from a running peak of the equity curve, in % of that peak and in USDT."""
    best = Drawdown(ZERO, ZERO, None, None)
    peak: tuple[datetime, Decimal] | None = None
    for at, equity in curve:
        if peak is None or equity > peak[1]:
            peak = (at, equity)
            continue
        pct = (peak[1] - equity) / peak[1] * HUNDRED if peak[1] > 0 else ZERO
        if pct > best.pct:
            best = Drawdown(pct, peak[1] - equity, peak[0], at)
    return best


def thin(curve: list[tuple[datetime, Decimal]], limit: int = MAX_CURVE_POINTS) -> list[tuple[datetime, Decimal]]:
    """At most `limit` points for display, keeping the first and the last."""
    if len(curve) <= limit:
        return curve
    step = len(curve) / (limit - 1)
    return [curve[int(i * step)] for i in range(limit - 1)] + [curve[-1]]


@dataclass(frozen=True)
class Marker:
    """A journal row worth a mark on the curve: a state change, a breaker trip, an upgrade, a rollback."""

    at: datetime
    kind: str
    label: str
    who: str
    why: str

    def to_dict(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(), "kind": self.kind, "label": self.label, "who": self.who, "why": self.why}


@dataclass(frozen=True)
class Report:
    book: str
    chosen_by: str
    days: int
    since: datetime
    as_of: datetime
    initial_capital: Decimal
    per_day: dict[date, Tally]
    per_pair: dict[str, Tally]
    total: Tally
    curve: list[tuple[datetime, Decimal]] = field(default_factory=list)
    drawdown: Drawdown = field(default_factory=lambda: Drawdown(ZERO, ZERO, None, None))
    markers: list[Marker] = field(default_factory=list)

    @property
    def start_equity(self) -> Decimal:
        return self.curve[0][1] if self.curve else self.initial_capital

    @property
    def end_equity(self) -> Decimal:
        return self.curve[-1][1] if self.curve else self.initial_capital

    @property
    def return_pct(self) -> Decimal:
        start = self.start_equity
        return ((self.end_equity - start) / start * HUNDRED).quantize(Decimal("0.000001")) if start > 0 else ZERO

    def to_dict(self) -> dict[str, Any]:
        return {
            "book": self.book,
            "chosen_by": self.chosen_by,
            "days": self.days,
            "since": self.since.isoformat(),
            "as_of": self.as_of.isoformat(),
            "per_day": [{"day": d.isoformat()} | t.to_dict() for d, t in self.per_day.items()],
            "per_pair": [{"symbol": s} | t.to_dict() for s, t in self.per_pair.items()],
            "total": self.total.to_dict(),
            "equity": {
                "start": dec(self.start_equity),
                "end": dec(self.end_equity),
                "return_pct": dec(self.return_pct),
                "points": len(self.curve),
                "curve": [{"at": at.isoformat(), "equity": dec(eq)} for at, eq in thin(self.curve)],
            },  # fmt: skip
            "max_drawdown": self.drawdown.to_dict(),
            "markers": [m.to_dict() for m in self.markers],
        }


def load_report(conn: Any, book: str, chosen_by: str, days: int, initial_capital: Decimal) -> Report:
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        now: datetime = conn.execute(SELECT_NOW).fetchone()[0]
        since = datetime.combine(now.astimezone(UTC).date() - timedelta(days=days - 1), time(0), UTC)
        groups = conn.execute(SELECT_GROUPS, (book, since)).fetchall()
        curve: list[tuple[datetime, Decimal]] = [(r[0], r[1]) for r in conn.execute(SELECT_CURVE, (book, since))]
        before = conn.execute(SELECT_BEFORE, (book, since)).fetchone()
        markers = load_markers(conn, book, since)
    if curve:
        # where the window starts: the equity carried in from before it, or a book that began in it
        curve.insert(0, (since if before else curve[0][0], before[0] if before else initial_capital))
    per_day: dict[date, Tally] = {}
    per_pair: dict[str, Tally] = {}
    total = Tally()
    for day, symbol, trades, closed, wins, realized, fees in groups:
        for tally in (per_day.setdefault(day, Tally()), per_pair.setdefault(symbol, Tally()), total):
            tally.add(trades, closed, wins, realized, fees)
    return Report(
        book, chosen_by, days, since, now, initial_capital, per_day, dict(sorted(per_pair.items())), total, curve,
        max_drawdown(curve), markers,
    )  # fmt: skip


def load_markers(conn: Any, book: str, since: datetime) -> list[Marker]:
    """The book's journal rows worth a mark since `since` (none before migration 009)."""
    from cdb_ops.db.journal import entries, has_journal

    if not has_journal(conn):
        return []
    return [Marker(e.at, e.kind, e.title, e.who, e.why) for e in entries(conn, since, None, book) if e.is_marker]
