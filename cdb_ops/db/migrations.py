"""Versioned SQL migrations from `schema/NNN_description.sql`: applied once each, in order, checksummed.

The bookkeeping lives in schema `cdb_ops` (outside `public`, which belongs to the trading tables)."""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cdb_ops.errors import ConfigError, ConfigErrors, StepFailed
from cdb_ops.model.results import MigrationState

if TYPE_CHECKING:
    import psycopg

FILE_RE = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")
BOOKKEEPING = "cdb_ops.schema_migrations"
REPAIRS = "cdb_ops.schema_repairs"  # when tables were re-created after they went missing
# the tables a migration creates: `CREATE TABLE [IF NOT EXISTS] [public.]name`
CREATES_TABLE = re.compile(
    r"\bCREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(?:public\s*\.\s*)?\"?([a-z_][a-z0-9_]*)", re.IGNORECASE
)
PUBLIC_TABLES = (
    "SELECT table_name FROM information_schema.tables "
    "WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY table_name"
)
# any constant works: it only has to be the same for every cdb-ops run against this database
LOCK_KEY = 0x0CDB0C5


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path
    checksum: str

    @property
    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")

    @property
    def creates(self) -> frozenset[str]:
        return tables_created(self.sql)


def tables_created(sql: str) -> frozenset[str]:
    """The tables a migration creates (SQL comments ignored)."""
    return frozenset(m.group(1).lower() for m in CREATES_TABLE.finditer(re.sub(r"--[^\n]*", "", sql)))


@dataclass(frozen=True)
class Repair:
    """Tables that had gone missing although their migration was recorded, and the migrations re-applied."""

    tables: tuple[str, ...]
    reapplied: tuple[Migration, ...]


def discover(schema_dir: Path) -> list[Migration]:
    if not schema_dir.is_dir():
        raise ConfigError(f"{schema_dir} does not exist", "run from the project checkout (it ships schema/)")
    found: list[Migration] = []
    errors: list[ConfigError] = []
    seen: dict[int, str] = {}
    for path in sorted(schema_dir.iterdir()):
        if path.suffix != ".sql":
            continue
        m = FILE_RE.match(path.name)
        if not m:
            errors.append(
                ConfigError(
                    "migration file name is not NNN_description.sql",
                    "rename it like 005_add_column.sql (three digits, lower-case words joined by _)",
                    file=str(path),
                )
            )
            continue
        version = int(m.group(1))
        if version in seen:
            errors.append(
                ConfigError(
                    f"version {version:03d} is also used by {seen[version]}",
                    "give it the next free number",
                    file=str(path),
                )
            )
            continue
        seen[version] = path.name
        found.append(Migration(version, m.group(2), path, hashlib.sha256(path.read_bytes()).hexdigest()))
    if errors:
        raise ConfigErrors(errors) if len(errors) > 1 else errors[0]
    return found


class Migrator:
    def __init__(self, conninfo: dict[str, Any], schema_dir: Path):
        self.conninfo = conninfo
        self.schema_dir = schema_dir

    def _connect(self) -> psycopg.Connection[Any]:
        import psycopg  # lazily: most commands never talk to Postgres

        try:
            return psycopg.connect(**self.conninfo, connect_timeout=5, autocommit=True)
        except psycopg.OperationalError as exc:
            raise StepFailed(
                f"cannot connect to Postgres at {self.conninfo.get('host')}:{self.conninfo.get('port')}: "
                f"{str(exc).strip().splitlines()[-1] if str(exc).strip() else exc}",
                "is the stack up? run `cdb-ops rebuild` (or `cdb-ops status` to see cdb_postgres)",
            ) from None

    @staticmethod
    def _ensure_bookkeeping(conn: psycopg.Connection[Any]) -> None:
        conn.execute("CREATE SCHEMA IF NOT EXISTS cdb_ops")
        conn.execute(
            f"""CREATE TABLE IF NOT EXISTS {BOOKKEEPING} (
                   version     INTEGER PRIMARY KEY,
                   name        TEXT NOT NULL,
                   checksum    TEXT NOT NULL,
                   applied_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
                   duration_ms INTEGER NOT NULL
               )"""
        )
        conn.execute(
            f"""CREATE TABLE IF NOT EXISTS {REPAIRS} (
                   repaired_at TIMESTAMPTZ NOT NULL DEFAULT now(),
                   missing_tables TEXT[] NOT NULL,
                   versions       INTEGER[] NOT NULL
               )"""
        )

    @staticmethod
    def _applied(conn: psycopg.Connection[Any]) -> dict[int, tuple[str, str, datetime]]:
        rows = conn.execute(f"SELECT version, name, checksum, applied_at FROM {BOOKKEEPING}").fetchall()
        return {r[0]: (r[1], r[2], r[3]) for r in rows}

    def status(self) -> list[MigrationState]:
        files = discover(self.schema_dir)
        with self._connect() as conn:
            exists = conn.execute("SELECT to_regclass(%s)", (BOOKKEEPING,)).fetchone()
            applied = self._applied(conn) if exists and exists[0] else {}
        return self._compare(files, applied)

    @staticmethod
    def _compare(files: list[Migration], applied: dict[int, tuple[str, str, datetime]]) -> list[MigrationState]:
        out: list[MigrationState] = []
        for m in files:
            row = applied.get(m.version)
            if row is None:
                out.append(MigrationState(m.version, m.name, "pending", None, m.checksum))
            elif row[1] != m.checksum:
                out.append(MigrationState(m.version, m.name, "changed", row[2], m.checksum))
            else:
                out.append(MigrationState(m.version, m.name, "applied", row[2], m.checksum))
        known = {m.version for m in files}
        for version, (name, checksum, at) in sorted(applied.items()):
            if version not in known:
                out.append(MigrationState(version, name, "missing", at, checksum))
        return sorted(out, key=lambda s: s.version)

    def migrate(self) -> list[MigrationState]:
        """Apply every pending migration, each in its own transaction; refuse when history was edited."""
        files = discover(self.schema_dir)
        applied_now: list[MigrationState] = []
        with self._connect() as conn:
            with conn.transaction():
                # two cdb-ops runs must not migrate at once: the second waits, then finds nothing to do
                conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
                self._ensure_bookkeeping(conn)
            try:
                states = self._compare(files, self._applied(conn))
                bad = [s for s in states if s.state in ("changed", "missing")]
                if bad:
                    raise (
                        ConfigErrors([_history_error(s, self.schema_dir) for s in bad])
                        if len(bad) > 1
                        else (_history_error(bad[0], self.schema_dir))
                    )
                by_version = {m.version: m for m in files}
                for s in states:
                    if s.state != "pending":
                        continue
                    m = by_version[s.version]
                    started = time.monotonic()
                    import psycopg

                    try:
                        with conn.transaction():
                            conn.execute(m.sql)  # type: ignore[call-overload]
                            conn.execute(
                                f"INSERT INTO {BOOKKEEPING} (version, name, checksum, duration_ms) "
                                "VALUES (%s, %s, %s, %s)",
                                (m.version, m.name, m.checksum, int((time.monotonic() - started) * 1000)),
                            )
                    except psycopg.Error as exc:
                        raise ConfigError(
                            f"migration failed and was rolled back: {str(exc).strip().splitlines()[0]}",
                            "fix the SQL and run `cdb-ops schema migrate` again (earlier migrations stay applied)",
                            file=str(m.path),
                        ) from None
                    applied_now.append(MigrationState(m.version, m.name, "applied", None, m.checksum))
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))

        return applied_now

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
                self._ensure_bookkeeping(conn)
            try:
                present = {r[0] for r in conn.execute(PUBLIC_TABLES)}
                applied = self._applied(conn)
                recorded = [m for m in files if m.version in applied]
                missing = [t for t in expected if t not in present and any(t in m.creates for m in recorded)]
                if not missing:
                    return None  # (a table no recorded migration creates is for validate to report)
                first = next(m.version for m in recorded if m.creates & set(missing))
                redo = tuple(m for m in recorded if m.version >= first)
                import psycopg

                try:
                    with conn.transaction():
                        for m in redo:
                            conn.execute(m.sql)  # type: ignore[call-overload]
                        # the time just before the commit: from then on nobody can miss the tables
                        conn.execute(
                            f"INSERT INTO {REPAIRS} (repaired_at, missing_tables, versions) "
                            "VALUES (clock_timestamp(), %s, %s)",
                            (missing, [m.version for m in redo]),
                        )
                except psycopg.Error as exc:
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


def _history_error(s: MigrationState, schema_dir: Path) -> ConfigError:
    if s.state == "changed":
        return ConfigError(
            f"migration {s.version:03d}_{s.name} was changed after it was applied (checksum differs)",
            "applied migrations are history: restore the file (git checkout) and put the change in a new, "
            "higher-numbered migration",
            file=str(schema_dir / f"{s.version:03d}_{s.name}.sql"),
        )
    return ConfigError(
        f"migration {s.version:03d}_{s.name} is recorded as applied but its file is gone",
        "restore the file from git; migrations are append-only",
        file=str(schema_dir),
    )
