"""The one migrations core: `schema/NNN_description.sql` applied once each, in order, checksummed.

Used by `cdb-ops schema migrate` (cdb_ops/db/migrations.py) and by the `migrate` image that an exported
Compose / Swarm file runs as a one-shot service (`python3 -m cdb_common.migrations`), so both keep the
same bookkeeping (schema `cdb_ops`, outside `public`), the same checksums and the same lock, and can
take turns on one database volume. Standard library plus psycopg (imported lazily), nothing else.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from .turns import NoTurn, in_turn

FILE_RE = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")
BOOKKEEPING = "cdb_ops.schema_migrations"
REPAIRS = "cdb_ops.schema_repairs"  # when tables were re-created after they went missing
# any constant works: it only has to be the same for every run against this database
LOCK_KEY = 0x0CDB0C5
# A migration runs while the services trade (cdb_common.turns): it takes every table of schema public in
# one LOCK first, in turn with the services, so its statements wait for nothing in public and no lock
# cycle can form with a service's transaction (the screener's holdings read positions, then orders).
PUBLIC_TABLES = "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
# the tables a migration creates: `CREATE TABLE [IF NOT EXISTS] [public.]name`
CREATES_TABLE = re.compile(
    r"\bCREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(?:public\s*\.\s*)?\"?([a-z_][a-z0-9_]*)", re.IGNORECASE
)


class MigrationProblem(Exception):
    """A migration file or the recorded history is wrong: what, the fix, and which file."""

    def __init__(
        self, message: str, fix: str, file: str | None = None, line: int | None = None, column: int | None = None
    ):
        super().__init__(message)
        self.message, self.fix, self.file, self.line, self.column = message, fix, file, line, column


class MigrationProblems(Exception):
    def __init__(self, problems: list[MigrationProblem]):
        super().__init__("; ".join(p.message for p in problems))
        self.problems = problems


class MigrationFailed(Exception):
    """A migration's SQL failed; its transaction was rolled back (earlier ones stay applied)."""

    def __init__(self, migration: Migration, error: str):
        super().__init__(error)
        self.migration, self.error = migration, error


def strip_comments(sql: str) -> str:
    return re.sub(r"--[^\n]*", "", sql)


def tables_created(sql: str) -> frozenset[str]:
    """The tables a migration creates (SQL comments ignored)."""
    return frozenset(m.group(1).lower() for m in CREATES_TABLE.finditer(strip_comments(sql)))


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path
    checksum: str  # sha256 of the file's bytes, as recorded in the bookkeeping table
    sql: str = field(default="", repr=False, compare=False)

    @property
    def creates(self) -> frozenset[str]:
        return tables_created(self.sql)


@dataclass(frozen=True)
class State:
    version: int
    name: str
    state: str  # applied | pending | changed | missing
    applied_at: datetime | None
    checksum: str


def _read(path: Path) -> tuple[bytes, str]:
    data = path.read_bytes()
    try:
        return data, data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise MigrationProblem("not UTF-8 text", "save the file as UTF-8", file=str(path)) from None


def discover(schema_dir: Path, read: Callable[[Path], tuple[bytes, str]] = _read) -> list[Migration]:
    """Every migration of `schema_dir`, checked before anything connects: names, numbers, content.
    `read` returns (bytes, text) or raises MigrationProblem; all problems are reported at once."""
    if not os.path.isdir(schema_dir):
        raise MigrationProblem(f"{schema_dir} is not a folder", "run from the project checkout (it ships schema/)")
    found: list[Migration] = []
    problems: list[MigrationProblem] = []
    seen: dict[int, str] = {}
    for path in sorted(Path(schema_dir).iterdir()):
        if path.suffix.lower() != ".sql" or path.name.startswith("."):
            continue  # READMEs, editors' backups: not migrations
        m = FILE_RE.match(path.name)
        if not m:
            problems.append(
                MigrationProblem(
                    "migration file name is not NNN_description.sql",
                    "rename it like 005_add_column.sql (three digits, lower-case words joined by _, lower-case .sql)",
                    file=str(path),
                )
            )
            continue
        version = int(m.group(1))
        if version in seen:
            problems.append(
                MigrationProblem(
                    f"version {version:03d} is also used by {seen[version]}", "give it the next free number", str(path)
                )
            )
            continue
        seen[version] = path.name
        try:
            data, text = read(path)
        except MigrationProblem as exc:
            problems.append(exc)
            continue
        if not strip_comments(text).strip():
            problems.append(
                MigrationProblem(
                    "the migration is empty (no SQL besides comments)",
                    "write its SQL, or remove the file; an applied empty migration could never be filled in",
                    file=str(path),
                )
            )
            continue
        found.append(Migration(version, m.group(2), path, hashlib.sha256(data).hexdigest(), text))
    if problems:
        raise MigrationProblems(problems) if len(problems) > 1 else problems[0]
    return found


def ensure_bookkeeping(conn: Any) -> None:
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


def applied(conn: Any) -> dict[int, tuple[str, str, datetime]]:
    """version -> (name, checksum, applied_at); empty when nothing was ever recorded."""
    exists = conn.execute("SELECT to_regclass(%s)", (BOOKKEEPING,)).fetchone()
    if not (exists and exists[0]):
        return {}
    rows = conn.execute(f"SELECT version, name, checksum, applied_at FROM {BOOKKEEPING}").fetchall()
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def compare(files: list[Migration], done: dict[int, tuple[str, str, datetime]]) -> list[State]:
    out: list[State] = []
    for m in files:
        row = done.get(m.version)
        if row is None:
            out.append(State(m.version, m.name, "pending", None, m.checksum))
        else:
            out.append(State(m.version, m.name, "changed" if row[1] != m.checksum else "applied", row[2], m.checksum))
    known = {m.version for m in files}
    out += [State(v, name, "missing", at, cs) for v, (name, cs, at) in sorted(done.items()) if v not in known]
    return sorted(out, key=lambda s: s.version)


def history_problem(s: State, schema_dir: Path, tool: str = "cdb-ops schema migrate") -> MigrationProblem:
    if s.state == "changed":
        return MigrationProblem(
            f"migration {s.version:03d}_{s.name} was changed after it was applied (checksum differs)",
            "applied migrations are history: restore the file (git checkout) and put the change in a new, "
            "higher-numbered migration",
            file=str(schema_dir / f"{s.version:03d}_{s.name}.sql"),
        )
    return MigrationProblem(
        f"migration {s.version:03d}_{s.name} is recorded as applied but its file is gone",
        "restore the file from git; migrations are append-only",
        file=str(schema_dir),
    )


def with_tables_locked(conn: Any, body: Callable[[], None], what: str) -> None:
    """`body` in one transaction that first holds every table of schema public (ACCESS EXCLUSIVE, one LOCK
    statement), taken in turn with the services (turns.in_turn; raises turns.NoTurn)."""

    def locked() -> None:
        tables = [r[0] for r in conn.execute(PUBLIC_TABLES).fetchall()]
        if tables:
            conn.execute(f"LOCK TABLE {', '.join(tables)} IN ACCESS EXCLUSIVE MODE")
        conn.execute("SET LOCAL lock_timeout = DEFAULT")  # holding them all, the body's own waits are as configured
        body()

    in_turn(conn, locked, what)


def migrate(conn: Any, files: list[Migration], schema_dir: Path) -> list[Migration]:
    """Apply every pending migration on an autocommit connection, each in its own transaction, under
    the advisory lock (a second runner waits, then finds nothing to do); refuse when history was edited."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
        ensure_bookkeeping(conn)
    try:
        states = compare(files, applied(conn))
        bad = [history_problem(s, schema_dir) for s in states if s.state in ("changed", "missing")]
        if bad:
            raise MigrationProblems(bad) if len(bad) > 1 else bad[0]
        by_version = {m.version: m for m in files}
        done: list[Migration] = []
        import psycopg

        for s in states:
            if s.state != "pending":
                continue
            m = by_version[s.version]

            def apply(m: Migration = m) -> None:
                started = time.monotonic()
                conn.execute(m.sql)
                conn.execute(
                    f"INSERT INTO {BOOKKEEPING} (version, name, checksum, duration_ms) VALUES (%s, %s, %s, %s)",
                    (m.version, m.name, m.checksum, int((time.monotonic() - started) * 1000)),
                )

            try:
                with_tables_locked(conn, apply, f"migration {m.version:03d}_{m.name}")
            except NoTurn as exc:
                raise MigrationFailed(m, str(exc)) from None
            except psycopg.Error as exc:
                raise MigrationFailed(m, str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)) from None
            done.append(m)
        return done
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))


# --- the one-shot runner of the `migrate` image -------------------------------------------------------


def _log(level: str, msg: str, **extra: Any) -> None:
    line = {"ts": datetime.now().astimezone().isoformat(timespec="milliseconds"), "level": level}
    sys.stdout.write(json.dumps(line | {"service": "migrate", "msg": msg} | extra) + "\n")
    sys.stdout.flush()


def main(env: dict[str, str] | None = None) -> int:
    """Wait for Postgres (up to MIGRATE_WAIT_SECONDS, default 120), apply schema/, exit 0; exit 1 when
    Postgres never answered, 3 when a file or the history is wrong or a migration failed."""
    import psycopg

    from cdb_common.config import read_secret

    env = dict(os.environ if env is None else env)
    schema_dir = Path(env.get("SCHEMA_DIR", "/schema"))
    try:
        files = discover(schema_dir)
    except (MigrationProblem, MigrationProblems) as exc:
        for p in exc.problems if isinstance(exc, MigrationProblems) else [exc]:
            _log("ERROR", p.message, file=p.file, fix=p.fix)
        return 3
    conninfo = {
        "host": env.get("POSTGRES_HOST", "postgres"),
        "port": int(env.get("POSTGRES_PORT", "5432")),
        "dbname": env.get("POSTGRES_DB", ""),
        "user": env.get("POSTGRES_USER", ""),
        "password": read_secret(env, "POSTGRES_PASSWORD"),
        "connect_timeout": 5,
        "application_name": "cdb_migrate",
    }
    deadline = time.monotonic() + float(env.get("MIGRATE_WAIT_SECONDS", "120"))
    while True:
        try:
            conn = psycopg.connect(**conninfo, autocommit=True)
            break
        except psycopg.OperationalError as exc:
            if time.monotonic() > deadline:
                _log("ERROR", "Postgres did not answer", host=conninfo["host"], error=str(exc).strip()[-300:])
                return 1
            time.sleep(0.5)
    try:
        with conn:
            done = migrate(conn, files, schema_dir)
    except (MigrationProblem, MigrationProblems) as exc:
        for p in exc.problems if isinstance(exc, MigrationProblems) else [exc]:
            _log("ERROR", p.message, file=p.file, fix=p.fix)
        return 3
    except MigrationFailed as exc:
        _log("ERROR", f"migration failed and was rolled back: {exc.error}", file=str(exc.migration.path))
        return 3
    _log("INFO", "schema current", applied=[f"{m.version:03d}_{m.name}" for m in done], known=len(files))
    return 0


if __name__ == "__main__":
    sys.exit(main())
