"""Backups before anything is deleted: `pg_dump` in custom format (logical, restorable with
`restore`), raw archives of data volumes (for a database that no longer starts), each with a
SHA-256 sidecar and a retention count."""

from __future__ import annotations

import hashlib
import os
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cdb_ops.engine.api import Engine
from cdb_ops.errors import ConfigError, StepFailed
from cdb_ops.fsutil import atomic_write, publish
from cdb_ops.load.desired import DesiredStack
from cdb_ops.load.endpoints import postgres_conninfo, postgres_service
from cdb_ops.load.project import Project
from cdb_ops.load.settings import Settings
from cdb_ops.model.resources import MountBinding
from cdb_ops.model.results import Backup
from cdb_ops.model.tables import EXPECTED_TABLES
from cdb_ops.redact import Redactor

DUMP_MAGIC = b"PGDMP"  # the first bytes of every pg_dump custom-format archive
STAMP_RE = re.compile(r"^_(\d{8}T\d{6}Z)\.(dump|tar\.gz)$")
DEFAULT_KEEP = 7


def backups_dir(project: Project) -> Path:
    d = project.root / "backups"
    d.mkdir(mode=0o700, exist_ok=True)
    os.chmod(d, 0o700)
    return d


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _seal(tmp: Path, final: Path) -> tuple[int, str]:
    """Checksum, sidecar, then the atomic rename: a backup file that exists is complete."""
    digest = _sha256(tmp)
    atomic_write(final.with_name(final.name + ".sha256"), f"{digest}  {final.name}\n", mode=0o600)
    publish(tmp, final, mode=0o600)
    return final.stat().st_size, digest


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def backup_database(
    engine: Engine,
    desired: DesiredStack,
    settings: Settings,
    project: Project,
    redact: Redactor,
    keep: int = DEFAULT_KEEP,
) -> Backup:
    """pg_dump -Fc inside the Postgres container (its pg_dump matches the server), copied out."""
    started = time.monotonic()
    svc = desired.services.get(postgres_service(desired))
    if svc is None:
        raise StepFailed("the postgres service is not part of the selected stack", "select the core profile")
    container = svc.container.name
    c = engine.container(container)
    if c is None or not c.running:
        raise StepFailed(
            f"cannot back up: {container} is not running",
            "start it with `cdb-ops rebuild --phase postgres`; for a database that no longer starts, "
            "`rebuild --wipe-data` archives the raw volume instead",
        )
    db, user = settings.get("POSTGRES_DB") or "", settings.get("POSTGRES_USER") or ""
    stamp = _stamp()
    inside = f"/tmp/cdb-backup-{stamp}.dump"
    code, out = engine.exec(container, ["pg_dump", "-U", user, "-d", db, "-Fc", "-f", inside])
    if code != 0:
        raise StepFailed(
            f"pg_dump failed (exit {code}): {redact(out.strip())[:500]}",
            "see `cdb-ops logs postgres`; `cdb-ops doctor` checks the usual causes",
        )
    final = backups_dir(project) / f"{desired.system}_{db}_{stamp}.dump"
    tmp = final.with_name(final.name + ".partial")
    try:
        engine.copy_out(container, inside, tmp)
        with open(tmp, "rb") as f:
            if f.read(len(DUMP_MAGIC)) != DUMP_MAGIC:
                raise StepFailed("pg_dump produced no custom-format archive", "run `cdb-ops backup` again")
        size, digest = _seal(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
        engine.exec(container, ["rm", "-f", inside])
    prune(project, desired.system, db, keep)
    return Backup(final, "pg_dump", db, size, digest, time.monotonic() - started)


def backup_volume(
    engine: Engine, desired: DesiredStack, project: Project, volume: str, image: str, keep: int = DEFAULT_KEEP
) -> Backup:
    """A raw tar.gz of a volume's files, made by a throwaway container that mounts it read-only."""
    started = time.monotonic()
    stamp = _stamp()
    code, out, cid = engine.run_once(
        image,
        ["tar", "czf", "/volume-backup.tar.gz", "-C", "/data", "."],
        [MountBinding("volume", volume, "/data", True)],
        keep=True,
    )
    final = backups_dir(project) / f"{desired.system}_{volume}_{stamp}.tar.gz"
    tmp = final.with_name(final.name + ".partial")
    try:
        if code != 0:
            raise StepFailed(
                f"archiving volume {volume} failed (exit {code}): {out.strip()[:300]}",
                "check free disk space and that the volume exists (`docker volume ls`)",
            )
        engine.copy_out(cid, "/volume-backup.tar.gz", tmp)
        size, digest = _seal(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
        engine.remove_container(cid)
    prune(project, desired.system, volume, keep)
    return Backup(final, "volume", volume, size, digest, time.monotonic() - started)


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


def verify(path: Path) -> str:
    """The file's checksum equals its sidecar's; returns it."""
    if not path.is_file():
        raise ConfigError(f"{path} does not exist", "pass a file from backups/ (see `ls backups/`)")
    sidecar = path.with_name(path.name + ".sha256")
    if not sidecar.is_file():
        raise ConfigError(
            f"{sidecar.name} is missing, so {path.name} cannot be verified",
            "restore only backups made by `cdb-ops backup` (they carry a .sha256 file)",
            file=str(path),
        )
    expected = sidecar.read_text().split()[0] if sidecar.read_text().split() else ""
    actual = _sha256(path)
    if actual != expected:
        raise ConfigError(
            f"checksum mismatch: the file is {actual[:12]}…, its sidecar says {expected[:12]}…",
            "the backup is damaged or was changed; pick another one",
            file=str(path),
        )
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
    inside_name = f"cdb-restore-{_stamp()}.dump"
    engine.copy_in(container, path, "/tmp", inside_name)
    db, user = settings.get("POSTGRES_DB") or "", settings.get("POSTGRES_USER") or ""
    try:
        code, out = engine.exec(
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
    finally:
        engine.exec(container, ["rm", "-f", f"/tmp/{inside_name}"])
    if code != 0:
        raise StepFailed(
            f"pg_restore failed (exit {code}) and was rolled back: {redact(out.strip())[:500]}",
            "the database is as it was before; check the dump with `pg_restore --list FILE`",
        )
    return {"file": str(path), "seconds": round(time.monotonic() - started, 3), "rows": row_counts(desired, settings)}
