"""Phase `schema`: apply pending migrations from schema/ (once each, checksummed)."""

from __future__ import annotations

from cdb_ops.migrations import Migrator
from cdb_ops.phases import PhaseContext
from cdb_ops.playbook import PhaseSpec
from cdb_ops.stackinfo import postgres_conninfo


def run(ctx: PhaseContext, phase: PhaseSpec) -> None:
    migrator = Migrator(postgres_conninfo(ctx.desired, ctx.settings), ctx.project.schema_dir)
    with ctx.timed() as took:
        applied = migrator.migrate()
    if applied:
        for m in applied:
            ctx.record(phase.name, "migration", f"{m.version:03d}_{m.name}", "migrate", "applied", service="postgres")
        ctx.steps[-1].seconds = took()
    else:
        ctx.record(phase.name, "migration", "schema", "ok", "all migrations applied")
