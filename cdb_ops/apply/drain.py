"""Drained upgrades: before a running risk manager or execution is swapped, the books it trades go
REDUCING — one row in book_states, the table `cdb-ops trading` writes, so the risk manager refuses new
entries the next signal — and the swap waits (bounded) until no order is in flight: nothing delivered to
the risk or execution consumer group is left unacknowledged (XPENDING), and no order is still NEW (filled,
rejected, cancelled or expired) while a consumer may hold it. A NEW order no consumer holds (execution has
read and answered every order entry; e.g. a row a restored dump brought back) is reported, not waited for:
only its ORDER_TTL_SECONDS expiry ends it, and a swap cannot lose it. Afterwards each book gets back the
state it had: a book the trader halted stays halted, one he changed meanwhile keeps his change."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from cdb_ops.db import trading_state as ts
from cdb_ops.errors import DatabaseUnavailable, DrainTimeout
from cdb_ops.model.upgrade import BookDrain, InFlight

# The consumer groups of the order flow, by role (images/risk_manager and images/execution name them).
STREAM_GROUPS = {"risk": ("cdb:signals", "risk_manager"), "execution": ("cdb:orders", "execution")}
DRAIN_REASON = "drain for upgrade"
DEFAULT_TIMEOUT = 60.0  # CDB_DRAIN_TIMEOUT; a NEW order normally fills within milliseconds
POLL_SECONDS = 0.1
PROGRESS_EVERY = 2.0

NEW_ORDERS = "SELECT count(*) FROM orders WHERE status = 'NEW'"
BOOKS_WITH_NEW = "SELECT DISTINCT portfolio FROM orders WHERE status = 'NEW' AND NOT is_probe ORDER BY 1"


def drained_by(command: str) -> str:
    """Who a drain's state change is recorded as: the command, and the user and host running it."""
    return f"cdb-ops {command} ({ts.who().removesuffix(' (cdb-ops)')})"


def groups_of(roles: list[str]) -> list[tuple[str, str]]:
    """The (stream, group) pairs whose pending entries a drain waits for: those of the roles swapped."""
    return [STREAM_GROUPS[r] for r in dict.fromkeys(roles) if r in STREAM_GROUPS]


# The order flow's hand-overs a NEW order can be in: its signal delivered to risk and not yet acknowledged
# (risk commits the order, then publishes it, then acknowledges), or its entry on cdb:orders not yet read
# or not yet acknowledged by execution (which commits the fill before it acknowledges).
ORDER_HANDOVERS = (STREAM_GROUPS["risk"], STREAM_GROUPS["execution"])


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def group_backlog(redis_client: Any, stream: str, group: str) -> tuple[int, int]:
    """(delivered and not acknowledged, not yet read) of one consumer group; (0, 0) for a stream or group
    that does not exist yet (nothing was ever published to or delivered in it)."""
    import redis

    try:
        groups = redis_client.xinfo_groups(stream)
    except redis.ResponseError:
        return 0, 0
    info = next((g for g in groups if _text(g.get("name")) == group), None)
    if info is None:
        return 0, 0
    lag = info.get("lag")
    if lag is None:  # Redis cannot tell after deletions or trimming past the group: count what lies beyond
        last = _text(info.get("last-delivered-id", "0-0"))
        lag = len(redis_client.xrange(stream, min=f"({last}", max="+", count=10_000))
    return int(info.get("pending", 0)), int(lag)


def new_orders(conn: Any) -> int:
    return int(conn.execute(NEW_ORDERS).fetchone()[0])


def in_flight(conn: Any, redis_client: Any, groups: list[tuple[str, str]]) -> InFlight:
    """The NEW orders are counted before Redis is read: an order counted that has since moved through every
    hand-over is filled by now, so counting it as held by no one can only err towards a finished order."""
    new = new_orders(conn)
    backlog = {pair: group_backlog(redis_client, *pair) for pair in dict.fromkeys([*groups, *ORDER_HANDOVERS])}
    pending = {f"{s}/{g}": backlog[(s, g)][0] for s, g in groups}
    if backlog[STREAM_GROUPS["risk"]][0] > 0 or any(backlog[STREAM_GROUPS["execution"]]):
        return InFlight(pending, new)
    return InFlight(pending, 0, stranded_orders=new)


def books_to_drain(conn: Any, feed: str | None) -> list[str]:
    """The feed's book (the one the stack trades) and every other book with an unfilled order."""
    books = [feed] if feed else []
    books += [b for (b,) in conn.execute(BOOKS_WITH_NEW).fetchall() if b not in books and b != "probe"]
    return books


def set_reducing(conn: Any, books: list[str], by: str) -> list[BookDrain]:
    """REDUCING for every ACTIVE book; a HALTED or REDUCING one already takes no entry and is left as it is."""
    if not ts.has_states(conn):  # a database before migration 008: no trading states to set or give back
        return []
    out = []
    for book in books:
        before = ts.read_state(conn, book).stored
        if before == "ACTIVE":
            ts.change_state(conn, book, "REDUCING", DRAIN_REASON, by)
        out.append(BookDrain(book, before, before == "ACTIVE"))
    return out


def wait_until_clear(
    probe: Callable[[], InFlight],
    timeout: float,
    on_progress: Callable[[InFlight, float], None],
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> InFlight:
    """Poll `probe` until nothing is in flight; report progress every few seconds; raise DrainTimeout."""
    started = clock()
    last_report = started
    while True:
        now_in_flight = probe()
        if now_in_flight.clear:
            return now_in_flight
        now = clock()
        if now - started >= timeout:
            raise DrainTimeout(
                f"orders still in flight after {timeout:.0f} s of draining: {now_in_flight.describe()}",
                "see `cdb-ops logs risk execution` (are risk and execution running and answering?); "
                "NEW orders expire after ORDER_TTL_SECONDS; raise CDB_DRAIN_TIMEOUT in .env to wait longer",
                details={"in_flight": now_in_flight.to_dict()},
            )
        if now - last_report >= PROGRESS_EVERY:
            on_progress(now_in_flight, now - started)
            last_report = now
        sleep(POLL_SECONDS)


def restore_books(conn: Any, drained: list[BookDrain], by: str) -> list[BookDrain]:
    """Give each book the drain set REDUCING its state from before — unless someone changed it since (the
    newest row is no longer the drain's), which is then kept: the trader's word wins."""
    for b in drained:
        if not b.changed:
            b.restored = f"left {b.before} (the drain did not change it)"
            continue
        now = ts.read_state(conn, b.book)
        if now.stored != "REDUCING" or now.changed_by != by or now.reason != DRAIN_REASON:
            b.restored = f"kept {now.stored}: changed by {now.changed_by} during the upgrade"
            continue
        ts.change_state(conn, b.book, b.before, f"{DRAIN_REASON} done: the state before it restored", by)
        b.restored = b.before
    return drained


def connect(conninfo: dict[str, Any]) -> Any:
    import psycopg

    try:
        return psycopg.connect(**conninfo, connect_timeout=5, autocommit=True)
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(
            f"cannot reach Postgres to drain the books: {str(exc).strip().splitlines()[0]}",
            "is the database up? `cdb-ops status`; nothing was swapped",
        ) from None
