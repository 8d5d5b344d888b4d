"""Phase `cleanup`: remove what is ours and in the way — never anything without the system label.

Always: containers left over from an interrupted recreate. With --clean: every container of the stack
and its network (data volumes stay). With --remove-orphans: stack containers the playbook no longer
selects. With --wipe-data (confirmed by the CLI first): backups, then containers and data volumes.
Foreign containers are never touched; they are reported as conflicts by the preflight."""

from __future__ import annotations

from cdb_ops.desired import LABEL_DATA, LABEL_SYSTEM
from cdb_ops.engine import ContainerFacts
from cdb_ops.errors import CdbError, StepFailed
from cdb_ops.phases import PhaseContext
from cdb_ops.planner import REPLACED_MARK
from cdb_ops.playbook import PhaseSpec
from cdb_ops.stackinfo import postgres_service


def run(ctx: PhaseContext, phase: PhaseSpec) -> None:
    d = ctx.desired
    if ctx.options.wipe_data:
        wipe_data(ctx, phase)
    ours = [
        c for c in ctx.engine.containers(label=d.system_label, detail=False) if c.labels.get(LABEL_SYSTEM) == d.system
    ]
    wanted = {s.container.name for s in d.services.values()}
    removed_any = False
    for c in sorted(ours, key=lambda c: c.name):
        if REPLACED_MARK in c.name:
            why = "left over from an interrupted recreate"
        elif ctx.options.clean:
            why = "--clean"
        elif c.name not in wanted and ctx.options.remove_orphans:
            why = "orphan (--remove-orphans)"
        elif c.name not in wanted:
            ctx.record(
                phase.name,
                "container",
                c.name,
                "orphan",
                "not selected by the playbook/profiles; kept (use --remove-orphans)",
            )
            continue
        else:
            continue
        with ctx.timed() as took:
            _stop_then_remove(ctx, c)
        removed_any = True
        ctx.record(phase.name, "container", c.name, "remove", why, took(), c.labels.get("cdb.service"))
    if ctx.options.clean:
        net = ctx.engine.network(d.network)
        if net is not None and net.labels.get(LABEL_SYSTEM) == d.system:
            if net.containers:
                ctx.progress.note(f"network {d.network} still has members {', '.join(net.containers)}; kept")
            else:
                ctx.engine.remove_network(d.network)
                ctx.record(phase.name, "network", d.network, "remove", "--clean")
                removed_any = True
    if not removed_any and not any(s.phase == phase.name for s in ctx.steps):
        ctx.record(phase.name, "stack", d.system, "ok", "nothing to clean up")


def wipe_data(ctx: PhaseContext, phase: PhaseSpec) -> None:
    """--wipe-data: back up first (pg_dump of a running database, a raw archive of every data volume),
    and only when every backup succeeded remove the stack's containers and its data volumes."""
    from cdb_ops.backup import backup_database, backup_volume

    d = ctx.desired
    volumes = [v for v in ctx.engine.volumes(d.system_label) if v.labels.get(LABEL_DATA) == "true"]
    ours = ctx.engine.containers(label=d.system_label)
    pg = d.services.get(postgres_service(d))
    pg_c = ctx.engine.container(pg.container.name) if pg else None
    try:
        if pg_c is not None and pg_c.running:
            with ctx.timed() as took:
                b = backup_database(ctx.engine, d, ctx.settings, ctx.project)
            ctx.record(phase.name, "backup", b.path.name, "backup", f"pg_dump of {b.source}, {b.size} bytes", took())
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
    for c in sorted(ours, key=lambda c: c.name):
        _stop_then_remove(ctx, c)
        ctx.record(phase.name, "container", c.name, "remove", "--wipe-data", service=c.labels.get("cdb.service"))
    for vol in volumes:
        ctx.engine.remove_volume(vol.name)
        ctx.record(phase.name, "volume", vol.name, "remove", "--wipe-data (backed up first)")


def _stop_then_remove(ctx: PhaseContext, c: ContainerFacts) -> None:
    """A clean stop first (SIGTERM, then Docker's kill after 10 s): a SIGKILLed Postgres needs crash
    recovery on its next start, and the services lose the chance to flush."""
    if c.running:
        ctx.engine.stop(c.name, timeout=10)
    ctx.engine.remove_container(c.name)
