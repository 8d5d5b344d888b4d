"""Backups before anything is deleted, and on request: `cdb-ops backup` runs the very backup the
stack's backup service runs on its schedule (cdb_common.backupjob: a snapshot's row counts, `pg_dump
--snapshot`, `pg_restore --list` reads it whole, its checksum where it was made equals the copy's,
sidecar and manifest, then grandfather-father-son retention), with the client tools of the Postgres
container (they match the server). Raw archives of data volumes are in `archive`."""

from __future__ import annotations

import re
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from cdb_common import backupfiles as bf
from cdb_common.backupjob import DrillResult, drill, list_entries, take_backup

from cdb_ops.apply.quiesce import clients_stopped
from cdb_ops.engine.api import Engine
from cdb_ops.errors import CdbError, ConfigError, StepFailed
from cdb_ops.load.desired import DesiredStack
from cdb_ops.load.endpoints import postgres_conninfo, postgres_service
from cdb_ops.load.project import Project
from cdb_ops.load.settings import Settings
from cdb_ops.model.results import Backup
from cdb_ops.model.tables import EXPECTED_TABLES
from cdb_ops.redact import Redactor

DUMP_MAGIC = bf.DUMP_MAGIC
STAMP_RE = bf.STAMP_RE
DEFAULT_KEEP = 7


def backups_dir(project: Project) -> Path:
    return bf.private_dir(project.root / "backups")


def second_dir(project: Project, settings: Settings) -> Path | None:
    """BACKUP_SECOND_DIR, relative to the project (validated by the rules table)."""
    raw = settings.get("BACKUP_SECOND_DIR") or ""
    return project.root / raw if raw else None


def seal(tmp: Path, final: Path, expected: str) -> tuple[int, str]:
    try:
        return bf.seal(tmp, final, expected)
    except bf.BackupError as exc:
        raise StepFailed(exc.message, exc.fix) from None


def sha256_inside(engine: Engine, container: str, path: str) -> str:
    """sha256sum of a file inside a container (both database images have it)."""
    code, out = engine.exec(container, ["sha256sum", path])
    digest = out.split()[0] if out.split() else ""
    if code != 0 or not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise StepFailed(f"cannot checksum {path} in {container}: {out.strip()[:200]}", "run the command again")
    return digest


def stamp() -> str:
    return bf.stamp()


class ContainerTools:
    """cdb_common.backupjob.PgTools with the client tools of the running Postgres container."""

    def __init__(self, engine: Engine, container: str, desired: DesiredStack, settings: Settings) -> None:
        self.engine = engine
        self.container = container
        self.user = settings.get("POSTGRES_USER") or ""
        self.conninfo: dict[str, Any] = postgres_conninfo(desired, settings)

    def run(self, argv: list[str], dbname: str | None = None) -> tuple[int, str]:
        # the container's local socket: its pg_hba trusts it, so no password travels into the exec
        return self.engine.exec(self.container, argv + (["-U", self.user, "-d", dbname] if dbname else []))

    def staging(self, name: str) -> str:
        return f"/tmp/cdb-backup-{name}"

    def checksum(self, staged: str) -> str:
        return sha256_inside(self.engine, self.container, staged)

    def fetch(self, staged: str, local: Path) -> None:
        self.engine.copy_out(self.container, staged, local)

    def put(self, local: Path) -> str:
        name = f"cdb-drill-{bf.stamp()}.dump"
        self.engine.copy_in(self.container, local, "/tmp", name)
        return f"/tmp/{name}"

    def discard(self, staged: str) -> None:
        self.engine.exec(self.container, ["rm", "-f", staged])


def _running_postgres(engine: Engine, desired: DesiredStack, what: str) -> str:
    svc = desired.services.get(postgres_service(desired))
    if svc is None:
        raise StepFailed("the postgres service is not part of the selected stack", "select the core profile")
    container = svc.container.name
    c = engine.container(container)
    if c is None or not c.running:
        raise StepFailed(
            f"cannot {what}: {container} is not running",
            "start it with `cdb-ops rebuild --phase postgres`; for a database that no longer starts, "
            "`rebuild --wipe-data` archives the raw volume instead",
        )
    return container


def retention_of(settings: Settings, keep: int | None) -> bf.Retention:
    """`--keep N`: the N newest, as before. Otherwise .env's grandfather-father-son counts plus the
    DEFAULT_KEEP newest: a person's backups come in bursts (before a wipe, the safety backup of a
    restore), and one a day would leave only the newest of them — the safety backup would prune the
    very file being restored."""
    if keep is not None:
        return bf.Retention(0, 0, 0, keep)
    return replace(bf.Retention.from_env(settings), last=DEFAULT_KEEP)


def backup_database(
    engine: Engine,
    desired: DesiredStack,
    settings: Settings,
    project: Project,
    redact: Redactor,
    keep: int | None = None,
) -> Backup:
    """The shared backup with the Postgres container's pg_dump; recorded in the state file either way."""
    if keep is not None and keep < 1:
        raise ConfigError("--keep must be at least 1", "keep at least the backup just made")
    container = _running_postgres(engine, desired, "back up")
    db = settings.get("POSTGRES_DB") or ""
    directory, prefix = backups_dir(project), f"{desired.system}_{db}"
    tools = ContainerTools(engine, container, desired, settings)
    try:
        made = take_backup(
            tools, directory, desired.system, db, retention_of(settings, keep), second_dir(project, settings)
        )
    except bf.BackupError as exc:
        bf.record(directory, prefix, "backup", ok=False, last_error=redact(exc.message)[:500], by="cdb-ops")
        raise StepFailed(
            redact(exc.message), exc.fix or "see `cdb-ops logs postgres`; `cdb-ops doctor` checks the usual causes"
        ) from None
    except CdbError as exc:  # the engine's: recorded, then raised as it is
        bf.record(directory, prefix, "backup", ok=False, last_error=redact(exc.message)[:500], by="cdb-ops")
        raise
    except Exception as exc:  # psycopg's (a database that is not there, a lock held too long)
        message = redact(f"{type(exc).__name__}: {exc}".strip())[:500]
        bf.record(directory, prefix, "backup", ok=False, last_error=message, by="cdb-ops")
        raise StepFailed(
            f"the backup failed: {message}", "see `cdb-ops logs postgres`; `cdb-ops doctor` checks the usual causes"
        ) from None
    bf.record(directory, prefix, "backup", ok=True, file=made.path.name, by="cdb-ops")
    tables = sum(1 for t in EXPECTED_TABLES if t in made.rows)
    verified = (
        f"verified: sha256 matches the original, {made.listed}; {tables} of {len(EXPECTED_TABLES)} "
        f"tables, {sum(made.rows.values())} rows in the snapshot"
    )
    return Backup(made.path, "pg_dump", db, made.size, made.sha256, made.seconds, verified)


def drill_database(
    engine: Engine, desired: DesiredStack, settings: Settings, project: Project, redact: Redactor
) -> DrillResult:
    """The shared restore drill with the Postgres container's pg_restore; the result recorded."""
    container = _running_postgres(engine, desired, "drill a restore")
    db = settings.get("POSTGRES_DB") or ""
    directory, prefix = backups_dir(project), f"{desired.system}_{db}"
    started = time.monotonic()
    try:
        result = drill(ContainerTools(engine, container, desired, settings), directory, desired.system, db)
    except bf.BackupError as exc:
        result = DrillResult(False, None, time.monotonic() - started, 0, 0, {}, redact(exc.message)[:500])
    except Exception as exc:
        result = DrillResult(False, None, time.monotonic() - started, 0, 0, {}, redact(str(exc))[:500])
    bf.record(directory, prefix, "drill", by="cdb-ops", **result.to_dict())
    return result


def prune(project: Project, system: str, what: str, keep: int) -> list[Path]:
    """Keep the `keep` newest backups of `what`; older ones (and their sidecars) go."""
    if keep < 1:
        raise ConfigError("--keep must be at least 1", "keep at least the backup just made")
    # names are <system>_<what>_<stamp>.<ext>; both parts may contain "_", so match the known prefix
    prefix = f"{system}_{what}"
    mine = [
        p for p in backups_dir(project).iterdir() if p.name.startswith(prefix) and STAMP_RE.match(p.name[len(prefix) :])
    ]
    removed = []
    for p in sorted(mine, key=lambda x: x.name, reverse=True)[keep:]:
        p.unlink()
        p.with_name(p.name + ".sha256").unlink(missing_ok=True)
        removed.append(p)
    return removed


def check_sidecar(path: Path) -> str:
    """The file's checksum equals its sidecar's; returns it."""
    if not path.is_file():
        raise ConfigError(f"{path} does not exist", "pass a file from backups/ (see `ls backups/`)")
    try:
        return bf.check_sidecar(path)
    except bf.BackupError as exc:
        raise ConfigError(exc.message, exc.fix, file=str(path)) from None


def verify(path: Path) -> str:
    """A dump to restore: its checksum equals its sidecar's and it is a pg_dump archive; returns the checksum."""
    actual = check_sidecar(path)
    with open(path, "rb") as f:
        if f.read(len(DUMP_MAGIC)) != DUMP_MAGIC:
            raise ConfigError(
                "not a pg_dump custom-format archive", "pass a .dump file made by `cdb-ops backup`", file=str(path)
            )
    return actual


def row_counts(desired: DesiredStack, settings: Settings) -> dict[str, int]:
    import psycopg

    with psycopg.connect(**postgres_conninfo(desired, settings), connect_timeout=5) as conn:
        out = {}
        for table in EXPECTED_TABLES:
            row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()  # noqa: S608 - fixed names
            out[table] = int(row[0]) if row else 0
        return out


def restore(engine: Engine, desired: DesiredStack, settings: Settings, redact: Redactor, path: Path) -> dict[str, Any]:
    """Replace the database's contents with a verified dump (the caller made a safety backup first)."""
    started = time.monotonic()
    verify(path)
    svc = desired.services[postgres_service(desired)]
    container = svc.container.name
    c = engine.container(container)
    if c is None or not c.running:
        raise StepFailed(f"cannot restore: {container} is not running", "run `cdb-ops rebuild` first")
    inside_name = f"cdb-restore-{stamp()}.dump"
    engine.copy_in(container, path, "/tmp", inside_name)
    db, user = settings.get("POSTGRES_DB") or "", settings.get("POSTGRES_USER") or ""
    paused: list[str] = []
    dropped: list[str] = []
    try:
        tools = ContainerTools(engine, container, desired, settings)
        try:  # readable whole before anything is dropped
            list_entries(tools, f"/tmp/{inside_name}")
        except bf.BackupError as exc:
            raise StepFailed(redact(exc.message), exc.fix) from None
        in_dump = dumped_relations(tools.run(["pg_restore", "--list", f"/tmp/{inside_name}"])[1])
        with clients_stopped(engine, desired, settings, redact, postgres_service(desired)) as paused:
            code, out = _pg_restore(engine, container, db, user, inside_name)
            if code == 0:
                dropped = _drop_newer(engine, container, db, user, in_dump)
    finally:
        engine.exec(container, ["rm", "-f", f"/tmp/{inside_name}"])
    if code != 0:
        raise StepFailed(
            f"pg_restore failed (exit {code}) and was rolled back: {redact(out.strip())[:500]}",
            "the database is as it was before; check the dump with `pg_restore --list FILE`",
        )
    return {
        "file": str(path),
        "seconds": round(time.monotonic() - started, 3),
        "rows": row_counts(desired, settings),
        "dropped_since_backup": dropped,
        "services_paused": paused,
    }


def _pg_restore(engine: Engine, container: str, db: str, user: str, inside_name: str) -> tuple[int, str]:
    """The dump into the database in one transaction: all of it, or (on any error) nothing."""
    return engine.exec(
        container,
        [
            "pg_restore",
            "--clean",
            "--if-exists",
            "--no-owner",
            "--single-transaction",
            "--exit-on-error",
            "-U",
            user,
            "-d",
            db,
            f"/tmp/{inside_name}",
        ],
    )


# pg_restore --list: "215; 1259 16385 TABLE public signals claire" — the relations a dump holds
_TOC_RELATION = re.compile(r"^\d+; \d+ \d+ (TABLE|VIEW|SEQUENCE|MATERIALIZED VIEW) public (\S+) ")
_KINDS = {"r": "TABLE", "p": "TABLE", "v": "VIEW", "m": "MATERIALIZED VIEW", "S": "SEQUENCE"}


def dumped_relations(listing: str) -> set[str]:
    return {m.group(2) for ln in listing.splitlines() if (m := _TOC_RELATION.match(ln))}


def _drop_newer(engine: Engine, container: str, db: str, user: str, in_dump: set[str]) -> list[str]:
    """`pg_restore --clean` drops and re-creates what the dump holds, nothing else: a table a migration
    created after the backup would survive the restore. Restoring means the database as it was, so the
    relations of schema public the dump does not know go too (one transaction); their names are returned."""
    query = (
        "SELECT c.relkind::text || ' ' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'public' AND c.relkind IN ('r','p','v','m','S') AND NOT EXISTS (SELECT 1 FROM pg_depend d "
        "WHERE d.objid = c.oid AND d.deptype IN ('a','i','e') AND d.classid = 'pg_class'::regclass) ORDER BY c.relname"
    )
    code, out = engine.exec(container, ["psql", "-U", user, "-d", db, "-At", "-v", "ON_ERROR_STOP=1", "-c", query])
    if code != 0:
        raise StepFailed(f"cannot list the restored relations: {out.strip()[:300]}", "see `cdb-ops logs postgres`")
    extra = [(k, n) for k, _, n in (ln.partition(" ") for ln in out.splitlines() if ln.strip()) if n not in in_dump]
    if not extra:
        return []
    drops = "; ".join(f'DROP {_KINDS[k]} IF EXISTS public."{n}" CASCADE' for k, n in extra)
    code, out = engine.exec(container, ["psql", "-U", user, "-d", db, "-v", "ON_ERROR_STOP=1", "-c", drops])
    if code != 0:
        raise StepFailed(
            f"restored, but the relations made after the backup could not be dropped: {out.strip()[:300]}",
            f"drop them by hand: {', '.join(n for _, n in extra)}",
        )
    return [n for _, n in extra]
