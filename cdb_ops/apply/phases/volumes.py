"""Phase `volumes`: carry out the plan's volume changes — create missing ones, refuse foreign ones.
Never removes (only --wipe-data does, in cleanup)."""

from __future__ import annotations

import uuid

from cdb_ops.apply.context import PhaseContext
from cdb_ops.errors import ForeignResource
from cdb_ops.load.specs import PhaseSpec
from cdb_ops.model.labels import LABEL_VOLUME_ID


def run(ctx: PhaseContext, phase: PhaseSpec) -> None:
    for name, change in ctx.plan.volumes.items():
        if change.action == "create":
            ctx.engine.create_volume(name, {**ctx.desired.volumes[name], LABEL_VOLUME_ID: uuid.uuid4().hex})
            ctx.record(phase.name, "volume", name, "create", change.reason)
        elif change.action == "conflict":
            raise ForeignResource(
                change.reason,
                "it may hold data from a hand-built stack: back it up, then rename or remove it "
                f"(`docker volume rm {name}`), and run rebuild again",
            )
        else:
            ctx.record(phase.name, "volume", name, "ok")
