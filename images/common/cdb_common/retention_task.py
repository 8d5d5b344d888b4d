"""The background task that ages out a service's time-series table (cdb_common.retention has the rules).

It runs on its own connection, never the service's: the service's one connection is shared under a
lock, and a retention batch holding that lock would stall the service's writes. Each pass measures the
table's clock, then deletes in short batches with a pause between them; Postgres being down only
postpones the pass (a warning, never an ERROR line that would fail `validate`'s log check).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import psycopg
import psycopg.errors
from prometheus_client import Counter, Gauge

from .config import Settings, env_int
from .db import sleep_or_stop
from .retention import LIMITS, LIMITS_SQL, Policy, Pruned, batch_rows, cutoff_of

ROWS_DELETED = Counter("cdb_retention_rows_deleted_total", "Rows deleted by retention", ["table"])
LAST_PASS = Gauge("cdb_retention_last_pass_timestamp_seconds", "When the last retention pass ended", ["table"])
CUTOFF = Gauge("cdb_retention_cutoff_timestamp_seconds", "Rows older than this (the table's clock) go", ["table"])
# a pause between batches lets the service's writes and the disk breathe during a large first pass
BATCH_PAUSE_SECONDS = 0.05
# the first pass waits this long after start at most (a start-up is busy enough), later ones the interval
FIRST_PASS_DELAY_SECONDS = 60


class RetentionTask:
    """`await RetentionTask(policy, service.settings, service.log).run(service.stop)` in a service's loops."""

    def __init__(self, policy: Policy, settings: Settings, log: logging.Logger) -> None:
        self.policy = policy
        self.log = log
        self.days = policy.days(settings.env)
        self.batch = batch_rows(settings.env)
        self.interval = env_int(settings.env, "RETENTION_INTERVAL_SECONDS", 3600, minimum=1)
        self.conninfo = {**settings.postgres.conninfo(), "application_name": f"cdb_retention_{policy.table}"}
        self.last: Pruned | None = None

    async def run(self, stop: asyncio.Event) -> None:
        await sleep_or_stop(stop, min(self.interval, FIRST_PASS_DELAY_SECONDS))
        while not stop.is_set():
            started = time.monotonic()
            try:
                self.last = await self.prune(stop)
            except (psycopg.Error, OSError) as exc:
                # down, or not migrated yet (a missing table): the service keeps trading, the next pass retries
                self.log.warning(
                    "retention pass postponed",
                    extra={"table": self.policy.table, "error": str(exc).strip()[:200], "retry_in_s": self.interval},
                )
            else:
                LAST_PASS.labels(self.policy.table).set_to_current_time()
                if self.last.deleted or self.last.stopped_early:
                    took = round(time.monotonic() - started, 2)
                    self.log.info("retention pass", extra={**self.last.as_dict(), "days": self.days, "seconds": took})
            await sleep_or_stop(stop, self.interval)

    async def prune(self, stop: asyncio.Event | None = None) -> Pruned:
        """One pass: the table's clock, then batches until one comes back short (or the service stops);
        every statement under LIMITS (cdb_common.retention.prune_sync is the same pass, synchronous)."""
        result = Pruned(self.policy.table, None)
        conn: Any = await psycopg.AsyncConnection.connect(autocommit=True, **self.conninfo)
        async with conn:
            try:
                async with conn.transaction():
                    await conn.execute(LIMITS_SQL, LIMITS)
                    row = await (await conn.execute(self.policy.clock_sql())).fetchone()
                result.cutoff = cutoff_of(row[0] if row else None, self.days)
                if result.cutoff is None:
                    return result
                CUTOFF.labels(self.policy.table).set(result.cutoff.timestamp())
                sql, params = self.policy.batch_sql(), {"cutoff": result.cutoff, "batch": self.batch}
                while not (stop and stop.is_set()):
                    async with conn.transaction():
                        await conn.execute(LIMITS_SQL, LIMITS)
                        deleted = max((await conn.execute(sql, params)).rowcount, 0)
                    result.batches += 1
                    result.deleted += deleted
                    ROWS_DELETED.labels(self.policy.table).inc(deleted)
                    if deleted < self.batch:
                        return result
                    await asyncio.sleep(BATCH_PAUSE_SECONDS)
                result.stopped_early = "stopping"
            except (psycopg.errors.LockNotAvailable, psycopg.errors.QueryCanceled) as exc:
                result.stopped_early = type(exc).__name__  # the next pass carries on
        return result
