"""Phase `network`: carry out the plan's network change — create it, or refuse a foreign one."""

from __future__ import annotations

from cdb_ops.apply.context import PhaseContext
from cdb_ops.errors import ForeignResource
from cdb_ops.load.specs import PhaseSpec


def run(ctx: PhaseContext, phase: PhaseSpec) -> None:
    d = ctx.desired
    change = ctx.plan.network
    assert change is not None
    if change.action == "create":
        with ctx.timed() as took:
            ctx.engine.create_network(d.network, d.stack.network.driver, d.network_labels)
        ctx.record(phase.name, "network", d.network, "create", change.reason, took())
    elif change.action == "conflict":
        raise ForeignResource(
            change.reason,
            f"it was made by hand or by another tool; remove it (`docker network rm {d.network}`) "
            "after checking nothing else uses it",
        )
    else:
        ctx.record(phase.name, "network", d.network, "ok")
