"""Taking turns with the trading services for row and table locks, instead of deadlocking with them.

cdb-ops changes the database while the services work in it: a migration alters tables, a halt touches
today's day row and then cancels the book's unfilled orders. A service's transaction may hold one of
those and ask for another (execution holds the order it fills, then asks for the day row; the screener's
holdings read positions, then orders). Both waiting, Postgres ends the cycle after deadlock_timeout
(1 s) by killing one of them with "deadlock detected": a failed command, or an ERROR line that fails
every later `validate`. So cdb-ops' transaction waits for a lock at most TURN_LOCK_TIMEOUT (well under
the deadlock timeout, so a wait never becomes a deadlock), then rolls back — the service goes on with
what it held — and tries again after a short pause. Postgres logs each give-up as "canceling statement
due to lock timeout", which validate's log check knows to be by design.

Standard library only; psycopg is imported when a turn is taken.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

TURN_LOCK_TIMEOUT = "200ms"
TURN_WAIT_SECONDS = 60.0

T = TypeVar("T")


class NoTurn(Exception):
    """The locks were not all free at once within the wait: a long transaction holds one."""


def in_turn(conn: Any, body: Callable[[], T], what: str, wait_seconds: float = TURN_WAIT_SECONDS) -> T:
    """`body()` in one transaction of the autocommit connection `conn`, its lock waits cut at
    TURN_LOCK_TIMEOUT; a lock timeout rolls it back and, after a pause (50 ms doubling to 1 s), runs it
    again. Raises NoTurn (naming `what`) once `wait_seconds` have passed."""
    import psycopg.errors

    deadline = time.monotonic() + wait_seconds
    pause = 0.05
    while True:
        try:
            with conn.transaction():
                conn.execute("SELECT set_config('lock_timeout', %s, true)", (TURN_LOCK_TIMEOUT,))
                return body()
        except psycopg.errors.LockNotAvailable:
            if time.monotonic() + pause > deadline:
                raise NoTurn(
                    f"{what}: the locks it needs were not free within {wait_seconds:.0f} s — a long-running "
                    "transaction holds one (see pg_stat_activity)"
                ) from None
            time.sleep(pause)  # the other side finishes its transaction meanwhile
            pause = min(pause * 2, 1.0)
