"""Retention of the time-series tables: which rows age out, on which clock, and the batch delete.

Three tables grow with time alone: market_snapshots (the screener's), portfolio_snapshots (execution's)
and ops_runs (cdb-ops'). Each owner deletes its own table's old rows (`RetentionTask` in the services,
`prune_sync` in cdb-ops) in small batches, each its own short transaction that skips rows another
session holds (FOR UPDATE SKIP LOCKED) and gives up on a table lock at once (lock_timeout): a writer
never waits behind retention. Autovacuum (tuned per table in schema/007_retention.sql) then hands the
freed space to new rows, so a table's size levels off instead of growing.

The clock is the table's own: the time of its 11th newest row, not the wall clock. A fast-forward
replay (event time running ahead of wall time) so keeps N days of *its* data, not N wall-days of it; a
replay of an old recording is not deleted the moment it is written; and a few rows with a bogus future
time cannot move the clock. docs/retention.md has the reasoning.

Standard library only, plus psycopg at call time: cdb-ops imports the policies too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from .config import env_int

# a table's clock is the time of its 11th newest row: up to ten rows with a bogus future time cannot move
# it, and a table of ten rows or fewer has no clock (nothing to age out)
CLOCK_SKIP = 10
# a transaction that would wait for a table lock (a migration, a VACUUM FULL) gives up at once
LOCK_TIMEOUT = "200ms"
# no batch may run long: its row locks are held until it commits
STATEMENT_TIMEOUT = "10s"
# both, for the current transaction only (SET LOCAL), in one round trip
LIMITS_SQL = "SELECT set_config('lock_timeout', %s, true), set_config('statement_timeout', %s, true)"
LIMITS = (LOCK_TIMEOUT, STATEMENT_TIMEOUT)


@dataclass(frozen=True)
class Policy:
    """How one table ages out. Table and column names are constants of this module, never input."""

    table: str
    key: str  # primary key: a batch names its rows by it
    time_column: str  # the row's own time, compared with the cutoff
    newest_first: str  # an ORDER BY that an index answers, newest rows first (for the clock)
    setting: str  # the .env key with the days to keep
    # One row per value of this column is never deleted (the newest, by key): execution and the risk
    # manager read a book's cash and peak equity from its latest snapshot, however old it is.
    keep_latest_in: str | None = None

    def days(self, env: Mapping[str, str]) -> int:
        """The days to keep: the env's value within the rule's bounds, else the rule's default (ConfigError
        names the key and the bounds)."""
        return env_int(env, self.setting, 0)

    def clock_sql(self) -> str:
        return f"SELECT {self.time_column} FROM {self.table} ORDER BY {self.newest_first} OFFSET {CLOCK_SKIP} LIMIT 1"

    def batch_sql(self) -> str:
        """One batch: at most %(batch)s rows older than %(cutoff)s, none that another session holds."""
        keep = (
            f" AND s.{self.key} < (SELECT max(n.{self.key}) FROM {self.table} n"
            f" WHERE n.{self.keep_latest_in} = s.{self.keep_latest_in})"
            if self.keep_latest_in
            else ""
        )
        return (
            f"DELETE FROM {self.table} WHERE {self.key} IN ("
            f"SELECT s.{self.key} FROM {self.table} s WHERE s.{self.time_column} < %(cutoff)s{keep}"
            f" LIMIT %(batch)s FOR UPDATE SKIP LOCKED)"
        )


MARKET_SNAPSHOTS = Policy("market_snapshots", "id", "minute", "minute DESC", "MARKET_SNAPSHOT_RETENTION_DAYS")
PORTFOLIO_SNAPSHOTS = Policy(
    "portfolio_snapshots", "id", "taken_at", "id DESC", "PORTFOLIO_SNAPSHOT_RETENTION_DAYS", keep_latest_in="portfolio"
)
OPS_RUNS = Policy("ops_runs", "run_id", "started_at", "started_at DESC", "OPS_RUN_RETENTION_DAYS")
POLICIES = (MARKET_SNAPSHOTS, PORTFOLIO_SNAPSHOTS, OPS_RUNS)

# The account's own history: no policy may ever name one of these (checked below and in the tests).
ACCOUNT_HISTORY = (
    "signals", "risk_events", "orders", "trades", "positions", "daily_pnl", "book_states", "journal",
)  # fmt: skip
if any(p.table in ACCOUNT_HISTORY for p in POLICIES):  # pragma: no cover - a guard on this file's own table
    raise AssertionError("a retention policy names a table of the account's history")


def batch_rows(env: Mapping[str, str]) -> int:
    return env_int(env, "RETENTION_BATCH_ROWS", 0)


def cutoff_of(clock: datetime | None, days: int) -> datetime | None:
    """Rows older than this go; None (an empty table) deletes nothing."""
    return None if clock is None else clock - timedelta(days=days)


@dataclass
class Pruned:
    table: str
    cutoff: datetime | None
    deleted: int = 0
    batches: int = 0
    stopped_early: str = ""  # why a pass ended before it found no more old rows (lock timeout, stop)

    def as_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "cutoff": self.cutoff.isoformat() if self.cutoff else None,
            "deleted": self.deleted,
            "batches": self.batches,
            "stopped_early": self.stopped_early,
        }


def prune_sync(conn: Any, policy: Policy, days: int, batch: int, *, max_batches: int = 10_000) -> Pruned:
    """One retention pass over `policy.table` on a psycopg (sync) connection in autocommit mode: the
    table's clock, then batches until one comes back short. Every statement runs under LIMITS, so a
    table lock held elsewhere ends the pass at once (the next pass carries on) instead of queueing the
    table's writers behind this pass's own lock request."""
    import psycopg.errors

    result = Pruned(policy.table, None)
    try:
        with conn.transaction():
            conn.execute(LIMITS_SQL, LIMITS)
            row = conn.execute(policy.clock_sql()).fetchone()
        result.cutoff = cutoff_of(row[0] if row else None, days)
        while result.cutoff is not None and result.batches < max_batches:
            with conn.transaction():
                conn.execute(LIMITS_SQL, LIMITS)
                deleted = max(conn.execute(policy.batch_sql(), {"cutoff": result.cutoff, "batch": batch}).rowcount, 0)
            result.batches += 1
            result.deleted += deleted
            if deleted < batch:
                break
    except (psycopg.errors.LockNotAvailable, psycopg.errors.QueryCanceled) as exc:
        result.stopped_early = type(exc).__name__
    return result
