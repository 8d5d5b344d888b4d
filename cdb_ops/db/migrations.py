"""Versioned SQL migrations from `schema/NNN_description.sql`: applied once each, in order, checksummed.

The bookkeeping lives in schema `cdb_ops` (outside `public`, which belongs to the trading tables)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cdb_common import migrations as core
from cdb_common.migrations import BOOKKEEPING, FILE_RE, LOCK_KEY, REPAIRS, Migration, tables_created
from cdb_common.turns import NoTurn

from cdb_ops.errors import ConfigError, ConfigErrors, StepFailed
from cdb_ops.fsutil import decode_utf8, read_bytes
from cdb_ops.model.results import MigrationState

if TYPE_CHECKING:
    import psycopg

__all__ = ["BOOKKEEPING", "FILE_RE", "LOCK_KEY", "REPAIRS", "Migration", "Migrator", "discover", "tables_created"]

PUBLIC_TABLES = (
    "SELECT table_name FROM information_schema.tables "
    "WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY table_name"
)


@dataclass(frozen=True)
class Repair:
    """Tables that had gone missing although their migration was recorded, and the migrations re-applied."""

    tables: tuple[str, ...]
    reapplied: tuple[Migration, ...]


def _config_error(p: core.MigrationProblem) -> ConfigError:
    return ConfigError(p.message, p.fix, file=p.file, line=p.line, column=p.column)


def _raise(exc: core.MigrationProblem | core.MigrationProblems) -> None:
    if isinstance(exc, core.MigrationProblems):
        raise ConfigErrors([_config_error(p) for p in exc.problems]) from None
    raise _config_error(exc) from None


def _bare(exc: ConfigError) -> str:
    """The message without the `file:line:col: ` that ConfigError put in front (it is added back)."""
    where = (exc.file or "") + (f":{exc.line}" + (f":{exc.column}" if exc.column else "") if exc.line else "")
    return exc.message.removeprefix(f"{where}: ") if where else exc.message


def _hardened_read(path: Path) -> tuple[bytes, str]:
    """cdb-ops' own reader: a FIFO, a device, a dangling symlink or a huge file is refused by name."""
    try:
        data = read_bytes(path, "migration file")
        return data, decode_utf8(data, path)
    except ConfigError as exc:
        raise core.MigrationProblem(
            _bare(exc),
            exc.remedy,
            file=exc.file or str(path),
            line=exc.line,
            column=exc.column,
        ) from None


def discover(schema_dir: Path) -> list[Migration]:
    """Every migration of schema/, checked before any engine call: names, numbers, content (the core in
    cdb_common.migrations, which the `migrate` image runs too, with cdb-ops' hardened file reader)."""
    if not os.path.isdir(schema_dir):
        raise ConfigError(f"{schema_dir} is not a folder", "run from the project checkout (it ships schema/)")
    try:
        return core.discover(schema_dir, _hardened_read)
    except (core.MigrationProblem, core.MigrationProblems) as exc:
        _raise(exc)
        raise  # unreachable


def _state(s: core.State) -> MigrationState:
    return MigrationState(s.version, s.name, s.state, s.applied_at, s.checksum)


class Migrator:
    def __init__(self, conninfo: dict[str, Any], schema_dir: Path):
        self.conninfo = conninfo
        self.schema_dir = schema_dir
        self._shared: psycopg.Connection[Any] | None = None

    @contextmanager
    def session(self) -> Iterator[Migrator]:
        """Every call inside the block on one connection (the schema phase's status, migrate and repair):
        each connection authenticates anew, ~15 ms a time."""
        with self._open() as conn:
            self._shared = conn
            try:
                yield self
            finally:
                self._shared = None

    @contextmanager
    def _connect(self) -> Iterator[psycopg.Connection[Any]]:
        if self._shared is not None:
            yield self._shared  # the session's: it closes it
            return
        with self._open() as conn:
            yield conn

    def _open(self) -> psycopg.Connection[Any]:
        import psycopg  # lazily: most commands never talk to Postgres

        try:
            return psycopg.connect(**self.conninfo, connect_timeout=5, autocommit=True)
        except psycopg.OperationalError as exc:
            raise StepFailed(
                f"cannot connect to Postgres at {self.conninfo.get('host')}:{self.conninfo.get('port')}: "
                f"{str(exc).strip().splitlines()[-1] if str(exc).strip() else exc}",
                "is the stack up? run `cdb-ops rebuild` (or `cdb-ops status` to see cdb_postgres)",
            ) from None

    def status(self) -> list[MigrationState]:
        files = discover(self.schema_dir)
        with self._connect() as conn:
            return [_state(st) for st in core.compare(files, core.applied(conn))]

    def migrate(self) -> list[MigrationState]:
        """Apply every pending migration, each in its own transaction; refuse when history was edited."""
        files = discover(self.schema_dir)
        with self._connect() as conn:
            try:
                done = core.migrate(conn, files, self.schema_dir)
            except (core.MigrationProblem, core.MigrationProblems) as exc:
                _raise(exc)
                raise  # unreachable
            except core.MigrationFailed as exc:
                raise ConfigError(
                    f"migration failed and was rolled back: {exc.error}",
                    "fix the SQL and run `cdb-ops schema migrate` again (earlier migrations stay applied)",
                    file=str(exc.migration.path),
                ) from None
        return [MigrationState(m.version, m.name, "applied", None, m.checksum) for m in done]

    def restore_missing(self, expected: Iterable[str]) -> Repair | None:
        """Re-create expected tables that are gone although the migration creating them is recorded as
        applied (dropped by hand): `migrate` alone would never notice. That migration and every later
        one (which may have altered the table) are applied again, in one transaction — migrations are
        written to be re-runnable (CREATE ... IF NOT EXISTS); one that is not rolls the whole repair
        back and is named. The table comes back empty: its rows went with the DROP."""
        files = discover(self.schema_dir)
        with self._connect() as conn:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
                core.ensure_bookkeeping(conn)
            try:
                present = {r[0] for r in conn.execute(PUBLIC_TABLES)}
                applied = core.applied(conn)
                recorded = [m for m in files if m.version in applied]
                missing = [t for t in expected if t not in present and any(t in m.creates for m in recorded)]
                if not missing:
                    return None  # (a table no recorded migration creates is for validate to report)
                first = next(m.version for m in recorded if m.creates & set(missing))
                redo = tuple(m for m in recorded if m.version >= first)
                import psycopg

                def reapply() -> None:
                    for m in redo:
                        conn.execute(m.sql)  # type: ignore[call-overload]
                    # the time just before the commit: from then on nobody can miss the tables
                    conn.execute(
                        f"INSERT INTO {REPAIRS} (repaired_at, missing_tables, versions) "
                        "VALUES (clock_timestamp(), %s, %s)",
                        (missing, [m.version for m in redo]),
                    )

                try:
                    core.with_tables_locked(conn, reapply, "re-creating the missing tables")
                except (psycopg.Error, NoTurn) as exc:
                    names = ", ".join(f"{m.version:03d}_{m.name}" for m in redo)
                    raise StepFailed(
                        f"table(s) {', '.join(missing)} are missing; re-applying {names} to re-create them failed "
                        f"and was rolled back: {str(exc).strip().splitlines()[0]}",
                        "a migration that is not re-runnable (write CREATE ... IF NOT EXISTS) is in the way: "
                        "re-create the table by hand from its migration, or `cdb-ops restore` a backup",
                    ) from None
                return Repair(tuple(missing), redo)
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))

    def last_repair(self) -> datetime | None:
        """When `restore_missing` last re-created tables (None: never)."""
        with self._connect() as conn:
            exists = conn.execute("SELECT to_regclass(%s)", (REPAIRS,)).fetchone()
            if not (exists and exists[0]):
                return None
            row = conn.execute(f"SELECT max(repaired_at) FROM {REPAIRS}").fetchone()
        return row[0] if row else None

    def public_tables(self) -> list[str]:
        with self._connect() as conn:
            rows = conn.execute(PUBLIC_TABLES).fetchall()
        return [r[0] for r in rows]
