"""Phase `schema`: apply pending migrations from schema/ (once each, checksummed), then make sure every
expected table exists: one dropped after its migration was recorded is re-created by re-applying it."""

from __future__ import annotations

from cdb_ops.apply.context import PhaseContext
from cdb_ops.db.migrations import Migrator
from cdb_ops.load.endpoints import postgres_conninfo
from cdb_ops.load.specs import PhaseSpec
from cdb_ops.model.tables import EXPECTED_TABLES


def run(ctx: PhaseContext, phase: PhaseSpec) -> None:
    migrator = Migrator(postgres_conninfo(ctx.desired, ctx.settings), ctx.project.schema_dir)
    with ctx.timed() as took:
        applied = migrator.migrate()
    for m in applied:
        ctx.record(phase.name, "migration", f"{m.version:03d}_{m.name}", "migrate", "applied", service="postgres")
    if applied:
        ctx.steps[-1].seconds = took()
    with ctx.timed() as took:
        repair = migrator.restore_missing(EXPECTED_TABLES)
    if repair:
        tables = ", ".join(repair.tables)
        why = (
            f"re-applied: table {tables} was missing"
            if len(repair.tables) == 1
            else f"re-applied: tables {tables} were missing"
        )
        for r in repair.reapplied:
            ctx.record(phase.name, "migration", f"{r.version:03d}_{r.name}", "migrate", why, service="postgres")
        ctx.steps[-1].seconds = took()
    if not applied and not repair:
        ctx.record(phase.name, "migration", "schema", "ok", "all migrations applied")
