"""The one backup and the one restore drill, for the backup service (on its schedule) and `cdb-ops
backup` (on request). Only where the client tools run differs, behind `PgTools`: the service runs
them in its own container over the stack network, cdb-ops inside the Postgres container (its
pg_dump matches the server) and copies the file out.

A backup: one REPEATABLE READ transaction exports its snapshot, counts the rows of every table in it,
and `pg_dump --snapshot` dumps exactly that snapshot, so the counts are what the dump holds. The dump
is read whole by `pg_restore --list`, checksummed where it was made and again after the copy, sealed
(.sha256 sidecar, .json manifest with the counts, 0600) and only then may retention prune.

A drill: the newest verified dump restored into a throwaway database of the same server, its rows
counted per table and compared with the manifest, the throwaway dropped whatever happened."""

from __future__ import annotations

import json
import secrets
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from .backupfiles import (
    DUMP_MAGIC,
    BackupError,
    Retention,
    check_sidecar,
    dump_name,
    inventory,
    manifest_path,
    private_dir,
    prune,
    seal,
    sidecar,
    stamp,
    write_private,
)

LOCK_WAIT_SECONDS = 20
COUNT_SQL = (
    "SELECT table_name FROM information_schema.tables "
    "WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY 1"
)


class PgTools(Protocol):
    """Where pg_dump / pg_restore run and how a file gets there and back."""

    conninfo: dict[str, Any]  # psycopg.connect() keywords for the stack's database

    def run(self, argv: list[str], dbname: str | None = None) -> tuple[int, str]:
        """A client tool, connected to `dbname` on the stack's server when given; (exit code, output)."""
        ...

    def staging(self, name: str) -> str:
        """Where pg_dump writes `name` (a path where run() executes)."""
        ...

    def checksum(self, staged: str) -> str:
        """sha256 of a staged file, computed where it was made."""
        ...

    def fetch(self, staged: str, local: Path) -> None:
        """The staged dump copied (or moved) to `local`."""
        ...

    def put(self, local: Path) -> str:
        """A local dump made readable for run(); returns its path there."""
        ...

    def discard(self, staged: str) -> None: ...


@dataclass
class Made:
    path: Path
    size: int
    sha256: str
    seconds: float
    listed: str
    rows: dict[str, int]
    pruned: list[Path]
    copies: list[Path]


def connect_args(pg: PgTools, dbname: str | None = None) -> dict[str, Any]:
    args = {**pg.conninfo, "connect_timeout": 10, "application_name": "cdb-backup"}
    return args | ({"dbname": dbname} if dbname else {})


def count_rows(conn: Any) -> dict[str, int]:
    tables = [r[0] for r in conn.execute(COUNT_SQL).fetchall()]
    return {t: int(conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]) for t in tables}  # noqa: S608 - names from the catalog


def list_entries(pg: PgTools, staged: str) -> tuple[int, str]:
    """`pg_restore --list` reads the whole table of contents: a truncated or damaged dump fails here."""
    code, out = pg.run(["pg_restore", "--list", staged])
    entries = [ln for ln in out.splitlines() if ln.strip() and not ln.startswith(";")]
    if code != 0 or not entries:
        raise BackupError(
            f"pg_restore --list cannot read the dump (exit {code}): {out.strip()[:300]}",
            "the dump is damaged; run the backup again",
        )
    tables = sum(1 for ln in entries if " TABLE public " in ln and " TABLE DATA " not in ln)
    return len(entries), f"pg_restore --list reads {len(entries)} entries ({tables} tables)"


def take_backup(
    pg: PgTools,
    directory: Path,
    system: str,
    db: str,
    retention: Retention,
    second: Path | None = None,
) -> Made:
    """One verified dump into `directory` (and a verified copy into `second`), then retention."""
    import psycopg

    started = time.monotonic()
    when = datetime.now(UTC)
    final = private_dir(directory) / dump_name(system, db, when)
    staged = pg.staging(final.name)
    tmp = final.with_name(final.name + ".partial")
    try:
        with psycopg.connect(**connect_args(pg), autocommit=True) as conn:  # BEGIN/COMMIT below, explicit
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            # behind a long exclusive lock a backup fails (and is retried) instead of queueing forever, and
            # every statement queued behind it with it
            conn.execute(f"SET LOCAL lock_timeout = '{LOCK_WAIT_SECONDS}s'")
            exported = conn.execute("SELECT pg_export_snapshot()").fetchone()
            snapshot = str(exported[0]) if exported else ""
            rows = count_rows(conn)  # in the snapshot pg_dump is about to dump
            code, out = pg.run(
                ["pg_dump", "-Fc", f"--lock-wait-timeout={LOCK_WAIT_SECONDS}s", "--snapshot", snapshot, "-f", staged],
                db,
            )
            conn.execute("COMMIT")
        if code != 0:
            raise BackupError(f"pg_dump failed (exit {code}): {out.strip()[:500]}", "see the Postgres log")
        entries, listed = list_entries(pg, staged)
        expected = pg.checksum(staged)
        pg.fetch(staged, tmp)
        with open(tmp, "rb") as f:
            if f.read(len(DUMP_MAGIC)) != DUMP_MAGIC:
                raise BackupError("pg_dump produced no custom-format archive", "run the backup again")
        size, digest = seal(tmp, final, expected)
    except BaseException:
        final.unlink(missing_ok=True)  # a failed backup leaves nothing half-made, and deletes nothing older
        sidecar(final).unlink(missing_ok=True)
        raise
    finally:
        tmp.unlink(missing_ok=True)
        pg.discard(staged)
    manifest = {
        "file": final.name,
        "sha256": digest,
        "size": size,
        "created": when.isoformat(),
        "database": db,
        "listed": listed,
        "entries": entries,
        "rows": rows,
    }
    write_private(manifest_path(final), json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    prefix = f"{system}_{db}"
    copies = []
    if second is not None and not same_dir(second, directory):
        copies.append(copy_verified(final, private_dir(second)))
    pruned = prune(directory, prefix, retention)
    if copies and second is not None:
        pruned += prune(second, prefix, retention)
    return Made(final, size, digest, time.monotonic() - started, listed, rows, pruned, copies)


def same_dir(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and a.samefile(b)
    except OSError:
        return False


def copy_verified(src: Path, target_dir: Path) -> Path:
    """The dump, its sidecar and manifest into the second target, the copy checked against the sidecar."""
    dest = target_dir / src.name
    tmp = dest.with_name(dest.name + ".partial")
    try:
        shutil.copyfile(src, tmp)
        seal(tmp, dest, check_sidecar(src))
    finally:
        tmp.unlink(missing_ok=True)
    write_private(manifest_path(dest), manifest_path(src).read_bytes())
    return dest


@dataclass
class DrillResult:
    ok: bool
    file: str | None
    seconds: float
    tables: int
    rows: int
    mismatches: dict[str, dict[str, int | None]]
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "file": self.file,
            "seconds": round(self.seconds, 3),
            "tables": self.tables,
            "rows": self.rows,
            "mismatches": self.mismatches,
            "error": self.error,
        }


def compare(expected: dict[str, int], restored: dict[str, int]) -> dict[str, dict[str, int | None]]:
    """Tables whose row count differs (or that one side lacks): {table: {dump, restored}}."""
    return {
        t: {"dump": expected.get(t), "restored": restored.get(t)}
        for t in sorted(set(expected) | set(restored))
        if expected.get(t) != restored.get(t)
    }


def drill(pg: PgTools, directory: Path, system: str, db: str) -> DrillResult:
    """Restore the newest verified dump into a throwaway database, compare, drop it."""
    import psycopg

    started = time.monotonic()
    newest = next((d for d in inventory(directory, f"{system}_{db}") if d.verified), None)
    if newest is None:
        raise BackupError("there is no verified backup to drill", "make one: `cdb-ops backup`")
    if not newest.manifest.get("rows"):
        raise BackupError(
            f"{newest.path.name} has no manifest of its row counts (made by an older cdb-ops)",
            "make a new backup (`cdb-ops backup`), then drill again",
        )
    throwaway = f"cdb_drill_{stamp().lower()}_{secrets.token_hex(3)}"  # two drills at once never share one
    admin = connect_args(pg, "postgres")
    with psycopg.connect(**admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{throwaway}"')
    staged = None
    try:
        staged = pg.put(newest.path)
        argv = ["pg_restore", "--no-owner", "--exit-on-error", "--single-transaction", staged]
        code, out = pg.run(argv, throwaway)
        if code != 0:
            raise BackupError(f"pg_restore into {throwaway} failed (exit {code}): {out.strip()[:400]}", "")
        with psycopg.connect(**connect_args(pg, throwaway)) as conn:
            restored = count_rows(conn)
    finally:
        if staged is not None:
            pg.discard(staged)
        with psycopg.connect(**admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{throwaway}" WITH (FORCE)')
    expected = {k: int(v) for k, v in newest.manifest["rows"].items()}
    diff = compare(expected, restored)
    return DrillResult(
        not diff, newest.path.name, time.monotonic() - started, len(restored), sum(restored.values()), diff
    )
