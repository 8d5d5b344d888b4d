"""Each book's trading state in Postgres (table book_states, migration 008): read it, change it, flatten.

ACTIVE trades; REDUCING takes exits only (BUYs rejected `reducing`); HALTED takes nothing new (every
signal rejected `halted`) and its change cancels the book's unfilled orders in the same transaction. The
risk manager reads the newest row of a book in the statement that decides a signal, so a change applies
to the next signal, survives every restart (it is in the database volume) and comes back with a restore.
The daily breaker is the same model: while it is tripped the book is REDUCING until the next UTC day.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from cdb_ops.errors import DatabaseUnavailable

STATES = ("ACTIVE", "REDUCING", "HALTED")

# The book's newest row, and whether today's breaker is tripped (the risk manager latches it in daily_pnl).
SELECT_STATE = """
SELECT (SELECT json_build_object('state', state, 'reason', reason, 'changed_by', changed_by,
                                 'changed_at', changed_at, 'cancelled_orders', cancelled_orders)
          FROM book_states WHERE portfolio = %(book)s ORDER BY id DESC LIMIT 1),
       coalesce((SELECT breaker_tripped FROM daily_pnl
                  WHERE portfolio = %(book)s AND day = (now() AT TIME ZONE 'UTC')::date), false),
       ((now() AT TIME ZONE 'UTC')::date + 1)::timestamp AT TIME ZONE 'UTC'
"""
SELECT_HISTORY = """
SELECT state, reason, changed_by, changed_at, cancelled_orders FROM book_states
WHERE portfolio = %s ORDER BY id DESC LIMIT %s
"""
INSERT_STATE = """
INSERT INTO book_states (portfolio, state, reason, changed_by) VALUES (%s, %s, %s, %s) RETURNING id, changed_at
"""
# A risk decision that read the book before this change commits after it would slip an order past the halt:
# touching today's day row makes such a decision's write of that row a serialization conflict, so it is
# decided again and sees HALTED (the risk manager writes the row in every decision's transaction).
TOUCH_DAY = """
UPDATE daily_pnl SET updated_at = updated_at WHERE portfolio = %s AND day = (now() AT TIME ZONE 'UTC')::date
"""
CANCEL_NEW = """
UPDATE orders SET status = 'CANCELLED', reject_reason = %s, updated_at = now()
WHERE portfolio = %s AND status = 'NEW' RETURNING order_id
"""
SET_CANCELLED = "UPDATE book_states SET cancelled_orders = %s WHERE id = %s"
SELECT_POSITIONS = """
SELECT symbol, qty, last_price, avg_entry_price FROM positions WHERE portfolio = %s AND qty > 0 ORDER BY symbol
"""


@dataclass(frozen=True)
class BookState:
    """A book's state as stored (`stored`: the trader's, ACTIVE when never set) and as risk applies it."""

    book: str
    stored: str
    reason: str | None
    changed_by: str | None
    changed_at: str | None
    cancelled_orders: int
    breaker_tripped: bool
    next_utc_day: datetime

    @property
    def state(self) -> str:
        """The state the book trades under: HALTED, else REDUCING when set or while the breaker is tripped."""
        if self.stored == "HALTED":
            return "HALTED"
        return "REDUCING" if self.stored == "REDUCING" or self.breaker_tripped else "ACTIVE"

    @property
    def may_open(self) -> bool:
        return self.state == "ACTIVE"

    @property
    def summary(self) -> str:
        """One line: `HALTED (by ops@host at …: why)`, `REDUCING (daily breaker, until …)`, `ACTIVE`."""
        if self.stored != "ACTIVE":
            return f"{self.stored} (by {self.changed_by} at {self.changed_at}: {self.reason})"
        if self.breaker_tripped:
            return f"REDUCING (daily drawdown breaker tripped, until {self.next_utc_day.isoformat()})"
        return "ACTIVE"

    def to_dict(self) -> dict[str, Any]:
        return {
            "book": self.book,
            "state": self.state,
            "stored_state": self.stored,
            "reason": self.reason,
            "changed_by": self.changed_by,
            "changed_at": self.changed_at,
            "cancelled_orders": self.cancelled_orders,
            "breaker_tripped": self.breaker_tripped,
            "breaker_until": self.next_utc_day.isoformat() if self.breaker_tripped else None,
            "may_open_positions": self.may_open,
        }


# Both books in one statement as one JSON text: `status` reads it through libpq_read (no psycopg import).
SELECT_BOOKS_JSON = """
SELECT json_agg(json_build_object(
    'book', b.book,
    'stored', (SELECT json_build_object('state', state, 'reason', reason, 'changed_by', changed_by,
                                        'changed_at', changed_at, 'cancelled_orders', cancelled_orders)
                 FROM book_states WHERE portfolio = b.book ORDER BY id DESC LIMIT 1),
    'tripped', coalesce((SELECT breaker_tripped FROM daily_pnl
                          WHERE portfolio = b.book AND day = (now() AT TIME ZONE 'UTC')::date), false),
    'next_day', ((now() AT TIME ZONE 'UTC')::date + 1)::timestamp AT TIME ZONE 'UTC'
) ORDER BY b.book) FROM (VALUES ('live'), ('replay')) AS b(book)
"""


def _state_of(book: str, stored: dict[str, Any] | None, tripped: bool, next_day: datetime) -> BookState:
    stored = stored or {}
    return BookState(
        book=book,
        stored=stored.get("state", "ACTIVE"),
        reason=stored.get("reason"),
        changed_by=stored.get("changed_by"),
        changed_at=stored.get("changed_at"),
        cancelled_orders=int(stored.get("cancelled_orders") or 0),
        breaker_tripped=bool(tripped),
        next_utc_day=next_day,
    )


def states_from_json(text: str) -> list[BookState]:
    """SELECT_BOOKS_JSON's answer as BookStates."""
    return [
        _state_of(b["book"], b.get("stored"), bool(b.get("tripped")), datetime.fromisoformat(b["next_day"]))
        for b in json.loads(text)
    ]


def read_books(conninfo: dict[str, Any]) -> tuple[list[BookState] | None, str | None]:
    """Both books' states for `status` — (states, None), or (None, why not) when Postgres cannot say —
    with one statement through libpq (psycopg only where libpq cannot be loaded)."""
    from cdb_ops.db.libpq_read import LibpqUnavailable, QueryFailed, first_value

    where = f"Postgres at {conninfo.get('host')}:{conninfo.get('port')}"
    try:
        text = first_value(conninfo, SELECT_BOOKS_JSON)
    except QueryFailed as exc:
        return None, _why(str(exc), where)
    except LibpqUnavailable:
        import psycopg

        try:
            with psycopg.connect(**conninfo, connect_timeout=2, autocommit=True) as conn:
                row = conn.execute(SELECT_BOOKS_JSON).fetchone()
                text = None if row is None or row[0] is None else json.dumps(row[0], default=str)
        except psycopg.Error as exc:
            return None, _why(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__, where)
    return (states_from_json(text) if text else []), None


def _why(message: str, where: str) -> str:
    if "book_states" in message and "does not exist" in message:
        return "no trading states yet (migration 008 not applied: `cdb-ops schema migrate`)"
    return f"{where} did not answer: {message}"


@dataclass(frozen=True)
class OpenLong:
    symbol: str
    qty: Decimal
    mark: Decimal
    entry: Decimal

    def to_dict(self) -> dict[str, str]:
        return {"symbol": self.symbol, "qty": _text(self.qty), "mark": _text(self.mark), "entry": _text(self.entry)}


def _text(value: Decimal) -> str:
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def has_states(conn: Any) -> bool:
    from psycopg.rows import tuple_row

    row = conn.cursor(row_factory=tuple_row).execute("SELECT to_regclass('public.book_states')").fetchone()
    return bool(row and row[0] is not None)


def require_states(conn: Any) -> None:
    if not has_states(conn):
        raise DatabaseUnavailable(
            "the database has no trading states yet (migration 008_trading_state is not applied)",
            "run `cdb-ops schema migrate` (or `cdb-ops rebuild`)",
        )


def read_state(conn: Any, book: str) -> BookState:
    from psycopg.rows import tuple_row  # whatever rows the connection makes (validate's are dicts)

    stored, tripped, next_day = conn.cursor(row_factory=tuple_row).execute(SELECT_STATE, {"book": book}).fetchone()
    return _state_of(book, stored, tripped, next_day)


def history(conn: Any, book: str, limit: int = 10) -> list[dict[str, Any]]:
    rows = conn.execute(SELECT_HISTORY, (book, limit)).fetchall()
    return [
        {"state": s, "reason": r, "changed_by": by, "changed_at": at.isoformat(), "cancelled_orders": n}
        for s, r, by, at, n in rows
    ]


def who() -> str:
    """Who changes a state: the user and host running cdb-ops (no secret in it)."""
    import getpass  # here: `status`, which imports this module, never asks
    import socket

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()} (cdb-ops)"


def change_state(conn: Any, book: str, state: str, reason: str, by: str) -> int:
    """Record `state` for `book` with who and why; a HALTED change cancels the book's unfilled orders in
    the same transaction. Returns how many it cancelled."""
    if state not in STATES:
        raise ValueError(f"unknown trading state {state!r}")
    from cdb_common.turns import NoTurn, in_turn

    def change() -> int:
        state_id, _at = conn.execute(INSERT_STATE, (book, state, reason, by)).fetchone()
        if state != "HALTED":
            return 0
        conn.execute(TOUCH_DAY, (book,))
        # execution may hold one of these orders while it fills it, and ask for the day row next: in turn
        cancelled = conn.execute(CANCEL_NEW, (f"cancelled: book {book} halted by {by}: {reason}", book)).fetchall()
        conn.execute(SET_CANCELLED, (len(cancelled), state_id))
        return len(cancelled)

    try:
        return in_turn(conn, change, f"setting book {book} {state}")
    except NoTurn as exc:
        raise DatabaseUnavailable(str(exc), "run it again once that transaction ended") from None


def open_longs(conn: Any, book: str) -> list[OpenLong]:
    return [OpenLong(s, q, m, e) for s, q, m, e in conn.execute(SELECT_POSITIONS, (book,)).fetchall()]


def count_open(conn: Any, book: str) -> int:
    return int(conn.execute("SELECT count(*) FROM positions WHERE portfolio = %s AND qty > 0", (book,)).fetchone()[0])


# The exit signal of a flatten: a SELL at the position's mark, stored like the signal engine stores its own
# (risk_events references signals) and published on cdb:signals, so risk decides it and execution fills it
# at market with the usual slippage and fee — the normal path, nothing bypassed.
INSERT_SIGNAL = """
INSERT INTO signals (signal_id, symbol, side, price, change_pct, window_seconds, quote_volume, threshold_pct,
                     confidence, tick_time, is_probe, portfolio)
VALUES (%s, %s, 'SELL', %s, 0, 1, 0, 1, 1, to_timestamp(%s / 1000.0), false, %s)
"""


def flatten_signal(book: str, position: OpenLong, now_ms: int) -> dict[str, Any]:
    """The cdb:signals event (the fields of cdb_common.events.Signal) that closes `position`."""
    import uuid  # here: `status`, which imports this module, never flattens

    return {
        "event_id": str(uuid.uuid4()),
        "symbol": position.symbol,
        "side": "SELL",
        "price": format(position.mark, "f"),
        "change_pct": "0",
        "window_seconds": 1,
        "quote_volume": "0",
        "threshold_pct": "1",
        "confidence": "1",
        "tick_id": str(uuid.uuid4()),
        "tick_time": now_ms,
        "received_at": now_ms,
        "produced_at": now_ms,
        "is_probe": False,
        "portfolio": book,
    }


def publish_flatten(conn: Any, redis_client: Any, book: str, positions: list[OpenLong], now_ms: int) -> list[str]:
    """Store and publish one SELL signal per open position; the signal ids, in order."""
    ids = []
    for position in positions:
        event = flatten_signal(book, position, now_ms)
        conn.execute(INSERT_SIGNAL, (event["event_id"], position.symbol, position.mark, now_ms, book))
        redis_client.xadd(
            "cdb:signals", {"data": json.dumps(event, separators=(",", ":"))}, maxlen=100_000, approximate=True
        )
        ids.append(event["event_id"])
    return ids
