"""Phase `volumes`: every named volume the selected services mount exists and is ours. Never removes."""

from __future__ import annotations

from cdb_ops.desired import LABEL_SYSTEM
from cdb_ops.errors import ForeignResource
from cdb_ops.phases import PhaseContext
from cdb_ops.playbook import PhaseSpec


def run(ctx: PhaseContext, phase: PhaseSpec) -> None:
    d = ctx.desired
    for name, labels in d.volumes.items():
        vol = ctx.engine.volume(name)
        if vol is None:
            ctx.engine.create_volume(name, labels)
            ctx.record(phase.name, "volume", name, "create", "missing")
        elif vol.labels.get(LABEL_SYSTEM) != d.system:
            raise ForeignResource(
                f"volume {name} exists but was not created by cdb-ops for {d.system}",
                "it may hold data from a hand-built stack: back it up, then rename or remove it "
                f"(`docker volume rm {name}`), and run rebuild again",
            )
        else:
            ctx.record(phase.name, "volume", name, "ok")
