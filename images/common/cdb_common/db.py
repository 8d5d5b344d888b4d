"""Postgres access (psycopg 3, async): one connection per service, reconnected on failure.

A lost connection surfaces as `Unavailable`; the stream consumer then retries the same event with
backoff, so nothing is acknowledged that was not committed. Money columns come back as Decimal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
import psycopg.errors

from .backoff import Backoff, Outage
from .config import PostgresSettings
from .metrics import DEPENDENCY_UP, RECONNECTS


class Unavailable(Exception):
    """A dependency (Postgres or Redis) cannot be reached right now; retry later."""


class Conflict(Unavailable):
    """The transaction lost a race (serialization failure, deadlock); retry at once, the link is fine."""


def application_name(service: str) -> str:
    """`cdb_<service>`: Postgres logs it with each line of the session (log_line_prefix), so cdb-ops'
    validate tells the stack's own errors from those of another client's session (a user's psql)."""
    return f"cdb_{service}"[:63]  # Postgres keeps 63 bytes of it


class Database:
    def __init__(self, settings: PostgresSettings, log: logging.Logger) -> None:
        self.settings = settings
        self.log = log
        self.outage = Outage("postgres", log, "database connection")
        self._conn: psycopg.AsyncConnection | None = None
        # One connection serves every task of the service; the lock keeps transactions from interleaving.
        self._lock = asyncio.Lock()

    @property
    def connected(self) -> bool:
        return self.outage.connected

    async def _ensure(self) -> psycopg.AsyncConnection:
        if self._conn is None or self._conn.closed:
            conninfo = {**self.settings.conninfo(), "application_name": application_name(self.log.name)}
            self._conn = await psycopg.AsyncConnection.connect(autocommit=True, **conninfo)
            self.outage.up()
            DEPENDENCY_UP.labels("postgres").set(1)
        return self._conn

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        DEPENDENCY_UP.labels("postgres").set(0)
        if conn is not None:
            # The connection is already broken; closing it is best effort.
            with contextlib.suppress(Exception):
                await conn.close()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection]:
        """The connection, under the lock, outside any transaction (each statement commits on its own); a
        connection fault becomes `Unavailable` and the connection is rebuilt next time."""
        async with self._lock:
            try:
                yield await self._ensure()
            except psycopg.errors.TransactionRollback as exc:
                # Rolled back by the server on purpose; the connection is healthy, so keep it.
                raise Conflict(f"postgres: {exc}".strip()) from exc
            except (psycopg.OperationalError, psycopg.InterfaceError, OSError) as exc:
                await self._drop()
                raise Unavailable(f"postgres: {exc}".strip()) from exc

    @asynccontextmanager
    async def transaction(self, isolation: str | None = None) -> AsyncIterator[psycopg.AsyncConnection]:
        """One transaction (faults as for `connection`)."""
        async with self.connection() as conn:
            # The level goes into the BEGIN itself (psycopg adds it): a SET TRANSACTION after it cost one more
            # round trip to Postgres on the path every order takes.
            level = psycopg.IsolationLevel[isolation.replace(" ", "_")] if isolation else None
            await conn.set_isolation_level(level)
            async with conn.transaction():
                yield conn

    async def execute(self, sql: str, params: Any = None) -> None:
        """One statement on its own: atomic by itself in autocommit, one round trip where a transaction takes
        three (BEGIN, the statement, COMMIT)."""
        async with self.connection() as conn:
            await conn.execute(sql, params)

    async def ping(self) -> bool:
        try:
            await self.execute("SELECT 1")
            return True
        except Unavailable:
            return False

    async def monitor(self, stop: asyncio.Event, interval: float = 5.0) -> None:
        """Keep the connection checked (for /health) and reconnect with backoff while it is down."""
        # A 5 s cap: back within seconds of Postgres' return, and the 60 s ERROR fires on time.
        backoff = Backoff(base=0.5, cap=5.0)
        while not stop.is_set():
            try:
                await self.execute("SELECT 1")  # one round trip, holding the lock the handlers need briefly
                backoff.reset()
                delay = interval
            except Unavailable as exc:
                delay = backoff.next_delay()
                RECONNECTS.labels("postgres").inc()
                self.outage.down(exc.__cause__ or exc, delay)
            await sleep_or_stop(stop, delay)

    def report_failure(self, exc: BaseException, retry_in: float) -> None:
        RECONNECTS.labels("postgres").inc()
        self.outage.down(exc.__cause__ or exc, retry_in)

    async def close(self) -> None:
        await self._drop()


async def sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    """Sleep `seconds`, returning early when `stop` is set (so SIGTERM is honoured within the 2 s budget)."""
    if seconds <= 0:
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
