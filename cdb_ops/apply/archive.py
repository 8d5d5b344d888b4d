"""Backups of data volumes about to be deleted (`rebuild --wipe-data`, `down --volumes`).

A tar of a live database's files is no backup (pages change while they are read: "file changed as we
read it", and the copy is torn). So: a `pg_dump` first while Postgres runs (the logical backup
`restore` takes), then every container of the stack stopped gracefully (services first, databases
last: Postgres checkpoints, Redis fsyncs its AOF), and only then each volume archived by a throwaway
container that mounts it read-only. Every archive is verified before the caller deletes anything:
its checksum where it was made equals the copy's and the sidecar's, and its listing holds the files
that make the volume what it is (PG_VERSION and pg_control for Postgres, the AOF for Redis)."""

from __future__ import annotations

import re
import tarfile
import time
from pathlib import Path

from cdb_ops.apply.backup import DEFAULT_KEEP, backup_database, backups_dir, prune, seal, stamp
from cdb_ops.engine.api import Engine
from cdb_ops.errors import CdbError, StepFailed
from cdb_ops.load.desired import DesiredStack
from cdb_ops.load.endpoints import postgres_service
from cdb_ops.load.playbook import start_order
from cdb_ops.load.project import Project
from cdb_ops.load.settings import Settings
from cdb_ops.model.facts import ContainerFacts
from cdb_ops.model.labels import LABEL_ROLE, LABEL_SERVICE, owned
from cdb_ops.model.resources import MountBinding
from cdb_ops.model.results import Backup
from cdb_ops.redact import Redactor

# volume role (playbook) -> paths an archive of it must list; a prefix matches (appendonlydir/, appendonly.aof)
EXPECTED_FILES: dict[str, tuple[str, ...]] = {
    "database": ("PG_VERSION", "global/pg_control"),
    "bus": ("appendonly",),
}
STOP_TIMEOUT = 30  # seconds before Docker kills: Postgres' fast shutdown and a service's in-flight work fit
_ARCHIVE = "/volume-backup.tar.gz"


def _listing(path: Path) -> list[str]:
    """Every member of a tar.gz, read to the end (a truncated archive fails here)."""
    try:
        with tarfile.open(path, "r:gz") as tar:
            return [m.name.removeprefix("./") for m in tar.getmembers()]
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise StepFailed(f"the archive cannot be read: {exc}", "check free disk space, then run again") from None


def archive_volume(
    engine: Engine,
    desired: DesiredStack,
    project: Project,
    volume: str,
    image: str,
    role: str | None = None,
    keep: int = DEFAULT_KEEP,
) -> Backup:
    """A verified tar.gz of a volume no running container uses (refused otherwise: never a live copy)."""
    started = time.monotonic()
    live = [c.name for c in engine.containers(detail=False) if c.running and volume in c.volumes]
    if live:
        raise StepFailed(
            f"refusing to archive volume {volume} while it is in use by {', '.join(live)} "
            "(a copy of live files is torn)",
            f"stop {', '.join(live)} first",
        )
    code, out, cid = engine.run_once(
        image,
        ["sh", "-c", f"tar czf {_ARCHIVE} -C /data . && sha256sum {_ARCHIVE}"],
        [MountBinding("volume", volume, "/data", True)],
        keep=True,
    )
    final = backups_dir(project) / f"{desired.system}_{volume}_{stamp()}.tar.gz"
    tmp = final.with_name(final.name + ".partial")
    try:
        found = re.search(r"\b([0-9a-f]{64})\b", out)
        if code != 0 or found is None:
            raise StepFailed(
                f"archiving volume {volume} failed (exit {code}): {out.strip()[:300]}",
                "check free disk space and that the volume exists (`docker volume ls`)",
            )
        engine.copy_out(cid, _ARCHIVE, tmp)
        names = _listing(tmp)
        missing = [e for e in EXPECTED_FILES.get(role or "", ()) if not any(n.startswith(e) for n in names)]
        if missing:
            raise StepFailed(
                f"the archive of volume {volume} lacks {', '.join(missing)}, so it would not restore the {role}",
                "see what the volume holds (`docker run --rm -v VOLUME:/d IMAGE ls -la /d`) before deleting it",
            )
        size, digest = seal(tmp, final, found.group(1))
    finally:
        tmp.unlink(missing_ok=True)
        engine.remove_container(cid)
    prune(project, desired.system, volume, keep)
    expected = EXPECTED_FILES.get(role or "")
    lists = f"lists {', '.join(expected)}" if expected else "reads to the end"
    verified = f"verified: sha256 matches the original, the archive {lists} ({len(names)} entries)"
    return Backup(final, "volume", volume, size, digest, time.monotonic() - started, verified)


def stop_order(desired: DesiredStack, running: list[ContainerFacts]) -> list[ContainerFacts]:
    """Reverse dependency order: containers of no known service first, then the services' tiers from
    the last to the first (the databases they depend on stop last)."""
    known = [s for s in desired.stack.services if any(c.labels.get(LABEL_SERVICE) == s for c in running)]
    rank = {name: i for i, tier in enumerate(start_order(desired.stack, known)) for name in tier}
    return sorted(running, key=lambda c: (-rank.get(c.labels.get(LABEL_SERVICE, ""), len(rank) + 1), c.name))


def backup_before_delete(
    engine: Engine,
    desired: DesiredStack,
    settings: Settings,
    project: Project,
    redact: Redactor,
    volumes: list[str],
    keep: int = DEFAULT_KEEP,
) -> list[Backup]:
    """Verified backups of `volumes`, which the caller is about to delete: a pg_dump while Postgres
    runs (when its data volume is among them), then every running container of the stack stopped
    gracefully (reverse dependency order; a volume in use cannot be deleted anyway), then an archive
    of each volume from its stopped state. The caller deletes nothing unless this returns: on any
    failure the stopped containers are started again and the failure (a CdbError) is raised."""
    ours = [c for c in engine.containers(label=desired.system_label, detail=False) if owned(c.labels, desired.system)]
    backups: list[Backup] = []
    stopped: list[ContainerFacts] = []
    try:
        pg = desired.stack.services.get(postgres_service(desired))
        pg_c = next((c for c in ours if pg is not None and c.name == pg.container), None)
        if pg_c is not None and pg_c.running and set(pg_c.volumes) & set(volumes):
            # the database's dumps keep .env's retention (plus the newest few), not the archives' count
            backups.append(backup_database(engine, desired, settings, project, redact))
        for c in stop_order(desired, [c for c in ours if c.running]):
            engine.stop(c.name, timeout=STOP_TIMEOUT)
            stopped.append(c)
        for vol in volumes:
            users = [c for c in ours if vol in c.volumes]
            # the Postgres image has tar, gzip and sha256sum in both variants (official and fallback)
            image = pg_c.image_id if pg_c is not None else (users[0].image_id if users else None)
            if image is None:
                image = next((s.image.fallback.tag for s in desired.services.values() if s.image.fallback), None)
            if image is None:
                raise StepFailed(f"no image to archive volume {vol} with", "run `cdb-ops rebuild` once first")
            facts = engine.volume(vol)
            role = facts.labels.get(LABEL_ROLE) if facts else None
            backups.append(archive_volume(engine, desired, project, vol, image, role, keep))
    except CdbError:
        for c in reversed(stopped):  # databases first again
            engine.start(c.name)
        raise
    return backups
