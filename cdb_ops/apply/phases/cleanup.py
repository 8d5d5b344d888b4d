"""Phase `cleanup`: carry out the plan's removals — never anything without the system label.

The planner decides what goes: always containers left over from an interrupted recreate; with --clean
every container of the stack and its network (data volumes stay); with --remove-orphans stack containers
the playbook no longer selects; with --wipe-data (confirmed by the CLI first) containers and data
volumes, after the verified backups this phase makes first (apply/archive.py: the databases are
stopped before their volumes are archived). Foreign containers are never touched; the preflight
reports them as conflicts."""

from __future__ import annotations

from cdb_ops.apply.context import PhaseContext
from cdb_ops.apply.rotate import remember_after_removal, remember_password
from cdb_ops.apply.stopping import Doomed, how_it_stopped, stop_and_remove
from cdb_ops.errors import CdbError, ConfigError, StepFailed
from cdb_ops.load.endpoints import postgres_service
from cdb_ops.load.specs import PhaseSpec
from cdb_ops.model.plan import Change
from cdb_ops.plan.planner import BACKED_UP_FIRST


def run(ctx: PhaseContext, phase: PhaseSpec) -> None:
    d = ctx.desired
    removals = ctx.plan.removals
    containers = sorted((c for c in removals if c.resource == "container"), key=lambda c: c.name)
    volumes = [c for c in removals if c.resource == "volume" and c.action == "remove"]
    data = [c for c in volumes if c.reason.endswith(f"({BACKED_UP_FIRST})")]  # scratch volumes hold nothing
    if data:
        _back_up(ctx, phase, data)
    for change in containers:
        if change.action == "orphan":
            ctx.record(phase.name, "container", change.name, "orphan", f"{change.reason}; kept (use --remove-orphans)")
    doomed = [c for c in containers if c.action == "remove"]
    _remove_in_dependency_order(ctx, phase, doomed)
    removed_any = bool(doomed)
    for change in volumes:
        ctx.engine.remove_volume(change.name)
        remember_password(ctx.project, change.name, "", None)
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
    """--wipe-data: verified backups first (a pg_dump of the running database, then the stack stopped
    and every data volume archived from its stopped state); when any backup fails nothing is removed."""
    from cdb_ops.apply.archive import backup_before_delete

    try:
        made = backup_before_delete(
            ctx.engine, ctx.desired, ctx.settings, ctx.project, ctx.redact, [v.name for v in volumes]
        )
    except CdbError as exc:
        raise StepFailed(f"backup before --wipe-data failed, so nothing was wiped: {exc.message}", exc.remedy) from None
    for b in made:
        ctx.record(phase.name, "backup", b.path.name, "backup", b.describe(), b.seconds)


def _remove_in_dependency_order(ctx: PhaseContext, phase: PhaseSpec, changes: list[Change]) -> None:
    """Stop and remove, dependents first (apply/stopping.py), recording each container as it is gone."""
    doomed = []
    for c in changes:
        facts = ctx.observed.containers.get(c.name)
        doomed.append(Doomed(c.name, c.service, facts is not None and facts.running))
    named = {c.name: c for c in changes}

    def removed(gone: Doomed, code: int | None, took: float) -> None:
        change = named[gone.name]
        _remember_password(ctx, change)
        detail = f"{change.reason}; {how_it_stopped(code)}"
        ctx.record(phase.name, "container", change.name, "remove", detail, took, change.service)

    depends_on = {name: svc.depends_on for name, svc in ctx.desired.stack.services.items()}
    stop_and_remove(ctx.engine, ctx.desired.system_label, doomed, depends_on, removed)


def _remember_password(ctx: PhaseContext, removed: Change) -> None:
    """The Postgres container is gone: what its data volume's password was set from (apply/rotate.py)."""
    try:
        service = postgres_service(ctx.desired)
    except ConfigError:
        return
    svc = ctx.desired.services.get(service)
    facts = ctx.observed.containers.get(removed.name)
    if svc is None or removed.service != service or facts is None:
        return
    volume = svc.data_volume
    vfacts = ctx.observed.volumes.get(volume) if volume else None
    if volume is None or vfacts is None:
        return
    pending = service in ctx.plan_options.pending_rotations
    remember_after_removal(ctx.project, volume, vfacts.labels, facts.labels, pending)
