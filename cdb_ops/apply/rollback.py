"""`cdb-ops rollback`: put back the containers the last successful upgrade replaced — each kept, stopped,
as `<name>-previous` (its image id and its exact configuration) — drained and stop-first like the upgrade
itself, with each book's state given back afterwards. A schema is not a container: the migrations that
upgrade applied are undone only by restoring the verified backup taken before them, which is named."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from cdb_ops.apply import drain
from cdb_ops.apply.lock import run_lock
from cdb_ops.apply.readiness import HealthWait
from cdb_ops.apply.upgrade import drain_timeout, load_record, open_books, record_path, schema_note, swap_back
from cdb_ops.engine.api import Engine
from cdb_ops.errors import Conflict, StepFailed
from cdb_ops.load.desired import DesiredStack
from cdb_ops.load.project import Project
from cdb_ops.load.settings import Settings
from cdb_ops.model.labels import LABEL_HASH
from cdb_ops.model.progress import Progress
from cdb_ops.model.upgrade import BookDrain, Swap
from cdb_ops.redact import Redactor

BY = "rollback"


@dataclass(frozen=True)
class LastUpgrade:
    run_id: str
    at: float
    swaps: list[Swap]
    migrations: list[str]
    backup: str | None

    @property
    def schema(self) -> dict[str, Any] | None:
        if not self.migrations:
            return None
        return {
            "migrations": self.migrations,
            "backup": self.backup,
            "undo": f"cdb-ops restore {self.backup} --yes" if self.backup else None,
            "note": schema_note(self.migrations, self.backup),
        }

    def preview(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "would_restore": [s.to_dict() for s in self.swaps],
            "schema": self.schema,
        }


def last_upgrade(project: Project) -> LastUpgrade:
    data = load_record(project)
    if data is None:
        raise StepFailed(
            "there is no upgrade to roll back (no successful rebuild replaced a container since the last rollback)",
            "`cdb-ops status` shows what runs; `cdb-ops restore FILE` brings back a database backup",
        )
    return LastUpgrade(
        str(data.get("run_id", "")),
        float(data.get("at", 0)),
        [Swap.from_dict(d) for d in data.get("swaps", [])],
        list(data.get("migrations", [])),
        data.get("backup_before_migrations"),
    )


def check_swaps(engine: Engine, desired: DesiredStack, last: LastUpgrade) -> None:
    """Refuse before anything changes when a previous container is gone or the current one is no longer the
    one the upgrade made (a later run or a person changed it: putting the old one back would undo that)."""
    problems = []
    for s in last.swaps:
        if s.service not in desired.services:
            problems.append(f"{s.service} is not in the selected stack")
            continue
        if engine.container(s.kept) is None:
            problems.append(f"{s.kept} (the previous {s.service}) is gone")
        current = engine.container(s.container)
        if current is not None and current.labels.get(LABEL_HASH) != s.new_config:
            problems.append(
                f"{s.container} changed since the upgrade (config {current.labels.get(LABEL_HASH, '?')[:12]}, "
                f"the upgrade made {s.new_config[:12]})"
            )
    if problems:
        raise Conflict(
            "cannot roll back, nothing was changed: " + "; ".join(problems),
            "run `cdb-ops rebuild` to converge to .env instead; a previous container that is gone cannot come back",
            details={"problems": problems},
        )


def _swap_all_back(
    engine: Engine,
    desired: DesiredStack,
    settings: Settings,
    redact: Redactor,
    progress: Progress,
    last: LastUpgrade,
    restored: list[dict[str, Any]],
) -> tuple[list[BookDrain], float]:
    """Drain, then each previous container back stop-first; the books' states given back whatever happens."""
    started = time.monotonic()
    by = drain.drained_by(BY)
    books = open_books(desired, settings, [desired.services[s.service].spec.role for s in last.swaps])
    try:
        drained = drain.set_reducing(books.conn, drain.books_to_drain(books.conn, desired.feed), by)
        try:
            progress.note(f"draining: books {', '.join(b.book for b in drained)}; {books.in_flight().describe()}")
            drain.wait_until_clear(
                books.in_flight,
                drain_timeout(settings),
                lambda now, waited: progress.note(f"draining: {now.describe()} after {waited:.0f} s"),
            )
            drained_after = time.monotonic() - started
            waiter = HealthWait(engine, settings, redact)
            for s in reversed(last.swaps):
                t0 = time.monotonic()
                swap_back(engine, waiter, desired.services[s.service], s.kept)
                facts = engine.container(s.container)
                restored.append(
                    {
                        "service": s.service,
                        "container": s.container,
                        "image_id": facts.image_id if facts else s.old_image,
                        "config_hash": facts.labels.get(LABEL_HASH, "") if facts else s.old_config,
                        "replaced_image_id": s.new_image,
                        "replaced_config_hash": s.new_config,
                        "seconds": round(time.monotonic() - t0, 3),
                    }
                )
                progress.note(f"{s.container}: the previous container again (image {s.old_image[:19]})")
        finally:  # whatever happened, the books get back the states they had
            drain.restore_books(books.conn, drained, by)
    finally:
        books.close()
    return drained, drained_after


def roll_back_last(
    engine: Engine,
    desired: DesiredStack,
    settings: Settings,
    project: Project,
    redact: Redactor,
    progress: Progress,
    last: LastUpgrade,
) -> dict[str, Any]:
    started = time.monotonic()
    project.ensure_state_dir()
    with run_lock(project.state_dir, f"rollback since {time.strftime('%H:%M:%S')}"):
        check_swaps(engine, desired, last)
        restored: list[dict[str, Any]] = []
        drained: list[BookDrain] = []
        drained_after = 0.0
        if last.swaps:  # a migration-only upgrade has no container to put back (and nothing to drain for)
            drained, drained_after = _swap_all_back(engine, desired, settings, redact, progress, last, restored)
        record_path(project).unlink(missing_ok=True)  # done: a second rollback has nothing to put back
    return {
        "rolled_back_run": last.run_id,
        "restored": restored,
        "books": [b.to_dict() for b in drained],
        "drain_seconds": round(drained_after, 3),
        "schema": last.schema,
        "seconds": round(time.monotonic() - started, 3),
        "note": "`.env` and the images still describe the replaced version: the next `cdb-ops rebuild` upgrades "
        "again unless you change them back",
    }
