"""Phase `network`: the stack's bridge network exists and is ours."""

from __future__ import annotations

from cdb_ops.desired import LABEL_SYSTEM
from cdb_ops.errors import ForeignResource
from cdb_ops.phases import PhaseContext
from cdb_ops.playbook import PhaseSpec


def run(ctx: PhaseContext, phase: PhaseSpec) -> None:
    d = ctx.desired
    net = ctx.engine.network(d.network)
    if net is None:
        with ctx.timed() as took:
            ctx.engine.create_network(d.network, d.stack.network.driver, d.network_labels)
        ctx.record(phase.name, "network", d.network, "create", "missing", took())
    elif net.labels.get(LABEL_SYSTEM) != d.system:
        raise ForeignResource(
            f"network {d.network} exists but is not part of {d.system}",
            f"it was made by hand or by another tool; remove it (`docker network rm {d.network}`) "
            "after checking nothing else uses it",
        )
    else:
        ctx.record(phase.name, "network", d.network, "ok")
