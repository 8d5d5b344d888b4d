"""`cdb-ops portfolio`: one book's paper account now — cash, equity, exposure against the cap, PnL, today's
drawdown against the breaker, the headroom for the next entry, and the open positions with their marks.

Equity is marked to market (cash + Σ qty · last price), as execution and risk compute it; cash is the one
of the book's last snapshot (every fill writes one), INITIAL_CAPITAL for a book that never traded.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from cdb_ops.db.trading_state import BookState, has_states, read_state
from cdb_ops.views.book import HUNDRED, ZERO, dec

# A mark older than this is flagged: the feed stopped sending the symbol (or the stack is down).
STALE_MARK_SECONDS = 120

SELECT_NOW = "SELECT now()"
SELECT_CASH = "SELECT cash, taken_at FROM portfolio_snapshots WHERE portfolio = %s ORDER BY id DESC LIMIT 1"
SELECT_REALIZED = "SELECT coalesce(sum(realized_pnl), 0) FROM positions WHERE portfolio = %s"
SELECT_PENDING_BUYS = """
SELECT coalesce(sum(qty * reference_price), 0) FROM orders WHERE portfolio = %s AND status = 'NEW' AND side = 'BUY'
"""
SELECT_DAY = """
SELECT start_equity, breaker_tripped FROM daily_pnl
WHERE portfolio = %s AND day = (now() AT TIME ZONE 'UTC')::date
"""
# The freshest price of a held symbol: execution's own mark write, or the screener's last snapshot of
# that symbol from this book's feed (a flat market re-sends prices that change nothing in positions).
# A replay played faster than real time carries exchange times ahead of the clock: capped at now.
SELECT_POSITIONS = """
SELECT p.symbol, p.qty, p.avg_entry_price, p.last_price, p.opened_at,
       GREATEST(p.updated_at, LEAST(now(), (SELECT max(m.event_time) FROM market_snapshots m
                                            WHERE m.symbol = p.symbol AND NOT m.is_probe
                                              AND (m.source = 'replay') = (%(book)s = 'replay'))))
FROM positions p WHERE p.portfolio = %(book)s AND p.qty > 0 ORDER BY p.symbol
"""


@dataclass(frozen=True)
class Limits:
    """The memo's limits as risk reads them (percent), plus the costs it reserves cash for."""

    max_daily_drawdown_pct: Decimal
    max_position_size_pct: Decimal
    max_total_exposure_pct: Decimal
    initial_capital: Decimal
    fee_pct: Decimal = Decimal("0.1")
    slippage_bps: Decimal = Decimal(5)

    @classmethod
    def from_settings(cls, get: Any) -> Limits:
        def d(name: str, default: str) -> Decimal:
            return Decimal(get(name) or default)

        return cls(
            d("MAX_DAILY_DRAWDOWN", "5.0"), d("MAX_POSITION_SIZE", "10.0"), d("MAX_TOTAL_EXPOSURE", "50.0"),
            d("INITIAL_CAPITAL", "1000"), d("FEE_PCT", "0.1"), d("SLIPPAGE_BPS", "5"),
        )  # fmt: skip

    @property
    def cost_factor(self) -> Decimal:
        """What one USDT of notional costs with slippage and fee (the cash risk keeps back)."""
        return (1 + self.slippage_bps / 10000) * (1 + self.fee_pct / HUNDRED)


@dataclass(frozen=True)
class OpenPosition:
    symbol: str
    qty: Decimal
    entry: Decimal  # cost basis per coin incl. the buying fee
    mark: Decimal
    value: Decimal
    unrealized_pnl: Decimal
    opened_at: datetime
    age_seconds: float
    mark_age_seconds: float | None
    stale: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol, "qty": dec(self.qty), "entry": dec(self.entry), "mark": dec(self.mark),
            "value": dec(self.value), "unrealized_pnl": dec(self.unrealized_pnl),
            "opened_at": self.opened_at.isoformat(), "age_seconds": round(self.age_seconds, 1),
            "mark_age_seconds": None if self.mark_age_seconds is None else round(self.mark_age_seconds, 1),
            "stale": self.stale,
        }  # fmt: skip


@dataclass(frozen=True)
class Portfolio:
    book: str
    chosen_by: str
    as_of: datetime
    last_snapshot_at: datetime | None
    limits: Limits
    cash: Decimal
    equity: Decimal
    exposure: Decimal
    pending_buys: Decimal
    realized_pnl: Decimal
    unrealized_pnl: Decimal
    day_start_equity: Decimal
    daily_drawdown_pct: Decimal
    breaker_tripped: bool
    headroom: Decimal
    headroom_limited_by: str
    positions: list[OpenPosition] = field(default_factory=list)
    trading_state: BookState | None = None  # None: the database predates the trading states (migration 008)

    @property
    def exposure_pct(self) -> Decimal:
        return self.exposure / self.equity * HUNDRED if self.equity > 0 else ZERO

    @property
    def stale_marks(self) -> int:
        return sum(1 for p in self.positions if p.stale)

    def to_dict(self) -> dict[str, Any]:
        q = Decimal("0.000001")
        return {
            "book": self.book,
            "chosen_by": self.chosen_by,
            "as_of": self.as_of.isoformat(),
            "last_snapshot_at": self.last_snapshot_at.isoformat() if self.last_snapshot_at else None,
            "initial_capital": dec(self.limits.initial_capital),
            "cash": dec(self.cash),
            "equity": dec(self.equity),
            "exposure": dec(self.exposure),
            "exposure_pct": dec(self.exposure_pct.quantize(q)),
            "exposure_cap_pct": dec(self.limits.max_total_exposure_pct),
            "pending_buys": dec(self.pending_buys),
            "realized_pnl": dec(self.realized_pnl),
            "unrealized_pnl": dec(self.unrealized_pnl),
            "today": {
                "start_equity": dec(self.day_start_equity),
                "drawdown_pct": dec(self.daily_drawdown_pct.quantize(q)),
                "max_daily_drawdown_pct": dec(self.limits.max_daily_drawdown_pct),
                "breaker_tripped": self.breaker_tripped,
            },
            "headroom": {"next_entry_usdt": dec(self.headroom), "limited_by": self.headroom_limited_by},
            "stale_after_seconds": STALE_MARK_SECONDS,
            "positions": [p.to_dict() for p in self.positions],
            "trading_state": self.trading_state.to_dict() if self.trading_state else None,
        }


def headroom(
    limits: Limits, cash: Decimal, equity: Decimal, exposure: Decimal, pending: Decimal, tripped: bool
) -> tuple[Decimal, str]:
    """The notional the next BUY may have, and which rule limits it (the order risk applies them in)."""
    if tripped:
        return ZERO, "breaker"
    rooms = {
        "position size": equity * limits.max_position_size_pct / HUNDRED,
        "exposure cap": equity * limits.max_total_exposure_pct / HUNDRED - exposure - pending,
        "cash": (cash - pending * limits.cost_factor) / limits.cost_factor,
    }
    name = min(rooms, key=lambda k: rooms[k])
    return max(ZERO, rooms[name]).quantize(Decimal("0.01")), name


def load_portfolio(conn: Any, book: str, chosen_by: str, limits: Limits) -> Portfolio:
    """Everything in one REPEATABLE READ snapshot, so cash and positions come from the same moment."""
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        now: datetime = conn.execute(SELECT_NOW).fetchone()[0]
        row = conn.execute(SELECT_CASH, (book,)).fetchone()
        cash, snap_at = (row[0], row[1]) if row else (limits.initial_capital, None)
        realized = conn.execute(SELECT_REALIZED, (book,)).fetchone()[0]
        pending = conn.execute(SELECT_PENDING_BUYS, (book,)).fetchone()[0]
        day = conn.execute(SELECT_DAY, (book,)).fetchone()
        rows = conn.execute(SELECT_POSITIONS, {"book": book}).fetchall()
        state = read_state(conn, book) if has_states(conn) else None
    positions = []
    for symbol, qty, entry, mark, opened, marked in rows:
        mark_age = (now - marked).total_seconds() if marked else None
        positions.append(
            OpenPosition(
                symbol, qty, entry, mark, qty * mark, qty * (mark - entry), opened, (now - opened).total_seconds(),
                mark_age, mark_age is None or mark_age > STALE_MARK_SECONDS,
            )
        )  # fmt: skip
    exposure = sum((p.value for p in positions), ZERO)
    equity = cash + exposure
    start = day[0] if day else equity
    drawdown = max(ZERO, (start - equity) / start * HUNDRED) if start > 0 else ZERO
    tripped = bool(day and day[1]) or drawdown >= limits.max_daily_drawdown_pct
    room, limited_by = headroom(limits, cash, equity, exposure, pending, tripped)
    return Portfolio(
        book=book, chosen_by=chosen_by, as_of=now, last_snapshot_at=snap_at, limits=limits, cash=cash,
        equity=equity, exposure=exposure, pending_buys=pending, realized_pnl=realized,
        unrealized_pnl=sum((p.unrealized_pnl for p in positions), ZERO), day_start_equity=start,
        daily_drawdown_pct=drawdown, breaker_tripped=tripped, headroom=room, headroom_limited_by=limited_by,
        positions=positions,
        trading_state=replace(state, breaker_tripped=tripped) if state else None,
    )  # fmt: skip
