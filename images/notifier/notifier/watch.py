"""What the notifier reads of the stack's own records, never touching what trading reads: fills from
cdb:fills in a consumer group of its own ("notifier"), trading-state changes from book_states, the daily
breaker from daily_pnl, and the day's numbers for the summary — all polled from Postgres, read-only."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

BOOKS = ("live", "replay")  # the probe book is validate's: never notified

STATES_SINCE = """
SELECT id, portfolio, state, reason, changed_by, cancelled_orders FROM book_states WHERE id > %s ORDER BY id
"""
LAST_STATES = """
SELECT DISTINCT ON (portfolio) portfolio, state, id FROM book_states ORDER BY portfolio, id DESC
"""
BREAKERS = """
SELECT DISTINCT ON (portfolio) portfolio, day::text, breaker_tripped, start_equity, end_equity, low_equity
  FROM daily_pnl WHERE portfolio IN ('live', 'replay') ORDER BY portfolio, day DESC
"""
# the decision that tripped the breaker: the risk manager's own numbers (daily_pnl's low is execution's,
# and may lag the decision)
TRIP_DECISION = """
SELECT equity, (limits->>'daily_drawdown_pct')::numeric, (limits->>'day_start_equity')::numeric,
       (limits->>'max_daily_drawdown_pct')::numeric, side, symbol
  FROM risk_events
 WHERE portfolio = %s AND NOT is_probe AND limits->>'day' = %s
   AND (limits->>'daily_drawdown_pct')::numeric >= (limits->>'max_daily_drawdown_pct')::numeric
 ORDER BY created_at LIMIT 1
"""
SUMMARY = """
SELECT b.book,
       (SELECT count(*) FROM trades t WHERE t.portfolio = b.book AND t.executed_at > %(since)s),
       (SELECT coalesce(sum(realized_pnl), 0) FROM trades t WHERE t.portfolio = b.book AND t.executed_at > %(since)s),
       (SELECT coalesce(sum(fee), 0) FROM trades t WHERE t.portfolio = b.book AND t.executed_at > %(since)s),
       (SELECT equity FROM portfolio_snapshots p WHERE p.portfolio = b.book ORDER BY taken_at DESC LIMIT 1),
       (SELECT coalesce(bool_or(breaker_tripped), false) FROM daily_pnl d
         WHERE d.portfolio = b.book AND d.day >= (%(since)s AT TIME ZONE 'UTC')::date),
       (SELECT state FROM book_states s WHERE s.portfolio = b.book ORDER BY id DESC LIMIT 1),
       EXISTS (SELECT 1 FROM trades t WHERE t.portfolio = b.book)
  FROM unnest(%(books)s::text[]) AS b(book)
"""


@dataclass(frozen=True)
class Breaker:
    day: str
    tripped: bool
    start: Decimal
    equity: Decimal
    low: Decimal


def breaker_change(before: Breaker | None, now: Breaker) -> str | None:
    """'tripped', 'reset' or None: what changed between two looks at a book's newest daily_pnl row. The
    first look only learns (a restarted notifier never repeats an old trip)."""
    if before is None:
        return None
    if now.tripped and (not before.tripped or now.day != before.day):
        return "tripped"
    if before.tripped and not now.tripped and now.day != before.day:
        return "reset"
    return None


def breakers_from(rows: list[tuple[Any, ...]]) -> dict[str, Breaker]:
    return {r[0]: Breaker(r[1], bool(r[2]), Decimal(r[3]), Decimal(r[4]), Decimal(r[5])) for r in rows}


def summary_books(rows: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """The summary's books: those that ever traded (a replay book nobody used is left out)."""
    return [
        {
            "book": r[0],
            "trades": int(r[1]),
            "realized_pnl": Decimal(r[2]),
            "fees": Decimal(r[3]),
            "equity": Decimal(r[4]) if r[4] is not None else None,
            "breaker_tripped": bool(r[5]),
            "state": r[6] or "ACTIVE",
        }
        for r in rows
        if r[7]
    ]


def summary_since(at: datetime) -> datetime:
    return at - timedelta(hours=24)
