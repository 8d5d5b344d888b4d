"""Backups before anything is deleted: `pg_dump` in custom format (logical, restorable with
`restore`), each verified before it counts (`pg_restore --list` reads it whole, its checksum where it
was made equals the copy's, the sealed file equals its SHA-256 sidecar), with a retention count.
Raw archives of data volumes are in `archive`."""

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


def seal(tmp: Path, final: Path, expected: str) -> tuple[int, str]:
    """Checksum against the one computed where the file was made (a copy that differs is refused),
    sidecar, the atomic rename (a backup file that exists is complete), then the file read back
    against its sidecar."""
    digest = _sha256(tmp)
    if digest != expected:
        raise StepFailed(
            f"the copy of {final.name} differs from the original (sha256 {digest[:12]}… != {expected[:12]}…)",
            "check free disk space on this machine, then run the command again",
        )
    atomic_write(final.with_name(final.name + ".sha256"), f"{digest}  {final.name}\n", mode=0o600)
    publish(tmp, final, mode=0o600)
    check_sidecar(final)
    return final.stat().st_size, digest


def sha256_inside(engine: Engine, container: str, path: str) -> str:
    """sha256sum of a file inside a container (both database images have it)."""
    code, out = engine.exec(container, ["sha256sum", path])
    digest = out.split()[0] if out.split() else ""
    if code != 0 or not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise StepFailed(f"cannot checksum {path} in {container}: {out.strip()[:200]}", "run the command again")
    return digest


def list_dump(engine: Engine, container: str, path: str, redact: Redactor) -> str:
    """`pg_restore --list` reads the whole archive's table of contents: a truncated or damaged dump
    fails here. Returns how it went, for the step's detail."""
    code, out = engine.exec(container, ["pg_restore", "--list", path])
    entries = [ln for ln in out.splitlines() if ln.strip() and not ln.startswith(";")]
    if code != 0 or not entries:
        raise StepFailed(
            f"pg_restore --list cannot read the dump (exit {code}): {redact(out.strip())[:300]}",
            "the dump is damaged; run `cdb-ops backup` again",
        )
    tables = [t for t in EXPECTED_TABLES if any(f" TABLE public {t} " in f"{ln} " for ln in entries)]
    return f"pg_restore --list reads {len(entries)} entries ({len(tables)} of {len(EXPECTED_TABLES)} tables)"


def stamp() -> str:
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
    when = stamp()
    inside = f"/tmp/cdb-backup-{when}.dump"
    code, out = engine.exec(container, ["pg_dump", "-U", user, "-d", db, "-Fc", "-f", inside])
    if code != 0:
        raise StepFailed(
            f"pg_dump failed (exit {code}): {redact(out.strip())[:500]}",
            "see `cdb-ops logs postgres`; `cdb-ops doctor` checks the usual causes",
        )
    final = backups_dir(project) / f"{desired.system}_{db}_{when}.dump"
    tmp = final.with_name(final.name + ".partial")
    try:
        listed = list_dump(engine, container, inside, redact)
        expected = sha256_inside(engine, container, inside)
        engine.copy_out(container, inside, tmp)
        with open(tmp, "rb") as f:
            if f.read(len(DUMP_MAGIC)) != DUMP_MAGIC:
                raise StepFailed("pg_dump produced no custom-format archive", "run `cdb-ops backup` again")
        size, digest = seal(tmp, final, expected)
    finally:
        tmp.unlink(missing_ok=True)
        engine.exec(container, ["rm", "-f", inside])
    prune(project, desired.system, db, keep)
    verified = f"verified: sha256 matches the original, {listed}"
    return Backup(final, "pg_dump", db, size, digest, time.monotonic() - started, verified)


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
    sidecar = path.with_name(path.name + ".sha256")
    if not sidecar.is_file():
        raise ConfigError(
            f"{sidecar.name} is missing, so {path.name} cannot be verified",
            "restore only backups made by `cdb-ops backup` (they carry a .sha256 file)",
            file=str(path),
        )
    words = sidecar.read_text().split()
    expected = words[0] if words else ""
    actual = _sha256(path)
    if actual != expected:
        raise ConfigError(
            f"checksum mismatch: the file is {actual[:12]}…, its sidecar says {expected[:12]}…",
            "the backup is damaged or was changed; pick another one",
            file=str(path),
        )
    return actual


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
    try:
        list_dump(engine, container, f"/tmp/{inside_name}", redact)  # readable whole before anything is dropped
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
