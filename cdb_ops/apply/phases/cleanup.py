"""Phase `cleanup`: carry out the plan's removals — never anything without the system label.

The planner decides what goes: always containers left over from an interrupted recreate; with --clean
every container of the stack and its network (data volumes stay); with --remove-orphans stack containers
the playbook no longer selects; with --wipe-data (confirmed by the CLI first) containers and data
volumes, after backups this phase makes first. Foreign containers are never touched; the preflight
reports them as conflicts."""

from __future__ import annotations

from cdb_ops.apply.context import PhaseContext
from cdb_ops.errors import CdbError, StepFailed
from cdb_ops.load.endpoints import postgres_service
from cdb_ops.load.specs import PhaseSpec
from cdb_ops.model.plan import Change


def run(ctx: PhaseContext, phase: PhaseSpec) -> None:
    d = ctx.desired
    removals = ctx.plan.removals
    containers = sorted((c for c in removals if c.resource == "container"), key=lambda c: c.name)
    volumes = [c for c in removals if c.resource == "volume" and c.action == "remove"]
    if volumes:
        _back_up(ctx, phase, volumes)
    removed_any = False
    for change in containers:
        if change.action == "orphan":
            ctx.record(phase.name, "container", change.name, "orphan", f"{change.reason}; kept (use --remove-orphans)")
            continue
        with ctx.timed() as took:
            _stop_then_remove(ctx, change.name)
        removed_any = True
        ctx.record(phase.name, "container", change.name, "remove", change.reason, took(), change.service)
    for change in volumes:
        ctx.engine.remove_volume(change.name)
        ctx.record(phase.name, "volume", change.name, "remove", change.reason)
        removed_any = True
    for note in ctx.plan.notes:
        ctx.progress.note(note)
    for change in removals:
        if change.resource == "network" and change.action == "remove":
            ctx.engine.remove_network(change.name)
            ctx.record(phase.name, "network", change.name, "remove", change.reason)
            removed_any = True
    if not removed_any and not any(s.phase == phase.name for s in ctx.steps):
        ctx.record(phase.name, "stack", d.system, "ok", "nothing to clean up")


def _back_up(ctx: PhaseContext, phase: PhaseSpec, volumes: list[Change]) -> None:
    """--wipe-data: back up first (pg_dump of the running database, then — its users stopped — a raw
    archive of every data volume); when any backup fails nothing is removed."""
    from cdb_ops.apply.backup import backup_database, backup_volume

    d = ctx.desired
    observed = ctx.observed.containers
    pg = d.services.get(postgres_service(d))
    pg_c = observed.get(pg.container.name) if pg else None
    try:
        if pg_c is not None and pg_c.running:
            with ctx.timed() as took:
                b = backup_database(ctx.engine, d, ctx.settings, ctx.project, ctx.redact)
            ctx.record(phase.name, "backup", b.path.name, "backup", f"pg_dump of {b.source}, {b.size} bytes", took())
        ours = [observed[c.name] for c in ctx.plan.removals if c.resource == "container" and c.name in observed]
        # a raw archive of a volume in use is torn (Postgres writes WAL while tar reads): stop its users first
        for c in ours:
            if c.running and any(v.name in c.volumes for v in volumes):
                ctx.engine.stop(c.name, timeout=10)
        for vol in volumes:
            users = [c for c in ours if vol.name in c.volumes]
            image: str | None = users[0].image_id if users else None
            if image is None:
                image = next((s.image.fallback.tag for s in d.services.values() if s.image.fallback), None)
            if image is None:
                raise StepFailed(f"no image to archive volume {vol.name} with", "run `cdb-ops rebuild` once first")
            with ctx.timed() as took:
                b = backup_volume(ctx.engine, d, ctx.project, vol.name, image)
            ctx.record(phase.name, "backup", b.path.name, "backup", f"archive of volume {vol.name}", took())
    except CdbError as exc:
        raise StepFailed(f"backup before --wipe-data failed, so nothing was wiped: {exc.message}", exc.remedy) from None


def _stop_then_remove(ctx: PhaseContext, name: str) -> None:
    """A clean stop first (SIGTERM, then Docker's kill after 10 s): a SIGKILLed Postgres needs crash
    recovery on its next start, and the services lose the chance to flush."""
    facts = ctx.observed.containers.get(name)
    if facts is not None and facts.running:
        ctx.engine.stop(name, timeout=10)
    ctx.engine.remove_container(name)
