"""`cdb-ops rollback`: undo the last upgrade's swaps by hand (docs/upgrades.md)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import typer

from cdb_ops.cli.options import JsonOpt, ProgressMode, ProgressOpt, ProjectDir, YesOpt

if TYPE_CHECKING:
    from cdb_ops.cli.session import Session


def _print(s: Session, doc: dict[str, Any]) -> None:
    if s.json:
        s.out.document("rollback", doc)
        return
    con = s.out.console
    for r in doc["restored"]:
        con.print(
            f"{r['container']}: the previous container again — image {r['image_id'][:19]}, config "
            f"{r['config_hash'][:12]} (replaced {r['replaced_image_id'][:19]}, {r['replaced_config_hash'][:12]}) "
            f"in {r['seconds']} s",
            highlight=False,
        )
    if not doc["restored"]:
        con.print("no container to put back (the last upgrade only migrated the schema)")
    for b in doc["books"]:
        con.print(f"book {b['book']}: {b['restored']}", highlight=False)
    if doc["schema"]:
        con.print(f"[yellow]schema:[/yellow] {doc['schema']['note']}", highlight=False)
    con.print(f"{doc['note']} (rolled back in {doc['seconds']} s, {doc['drain_seconds']} s of it draining)")


def rollback(
    ctx: typer.Context,
    project_dir: ProjectDir = None,
    json_output: JsonOpt = False,
    yes: YesOpt = False,
    progress: ProgressOpt = ProgressMode.auto,
) -> None:
    """Put back the containers the last upgrade replaced (previous image and configuration), drained and
    stop-first, each book's state given back; names the backup that undoes its migrations."""
    from cdb_ops.apply.rollback import last_upgrade, roll_back_last
    from cdb_ops.cli.session import open_run
    from cdb_ops.engine.docker import DockerEngine

    s = open_run(ctx, "rollback", json_output, project_dir)
    last = last_upgrade(s.project)
    when = datetime.fromtimestamp(last.at, UTC).isoformat(timespec="seconds")
    names = ", ".join(f"{sw.service} (image {sw.old_image[:19]})" for sw in last.swaps) or "no container"
    schema = f"; {last.schema['note']}" if last.schema else ""
    s.confirm(f"put back {names} — what the upgrade of {when} replaced{schema}", yes, last.preview())
    engine = DockerEngine()
    doc = roll_back_last(engine, s.desired, s.settings, s.project, s.redact, s.progress(progress, False), last)
    from cdb_ops.db.journal import record_event

    why_not = record_event(
        engine,
        s.desired,
        s.settings,
        "rollback",
        f"cdb-ops rollback of run {last.run_id}",
        {"rolled_back_run": last.run_id, "restored": [r.get("service") for r in doc["restored"]], "automatic": False},
        redact=s.redact,
    )
    doc["journaled"], doc["not_journaled_because"] = why_not is None, why_not
    _print(s, doc)
