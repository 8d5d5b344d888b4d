"""Phase `cleanup`: remove what is ours and in the way — never anything without the system label.

Always: containers left over from an interrupted recreate. With --clean: every container of the stack
and its network (data volumes stay). With --remove-orphans: stack containers the playbook no longer
selects. Foreign containers are never touched; they are reported as conflicts by the preflight."""

from __future__ import annotations

from cdb_ops.desired import LABEL_SYSTEM
from cdb_ops.phases import PhaseContext
from cdb_ops.planner import REPLACED_MARK
from cdb_ops.playbook import PhaseSpec


def run(ctx: PhaseContext, phase: PhaseSpec) -> None:
    d = ctx.desired
    ours = [c for c in ctx.engine.containers(label=d.system_label) if c.labels.get(LABEL_SYSTEM) == d.system]
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
            ctx.engine.remove_container(c.name)
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
