"""Phase `schema`: apply pending migrations from schema/ (once each, checksummed), then make sure every
expected table exists: one dropped after its migration was recorded is re-created by re-applying it."""

from __future__ import annotations

from cdb_ops.apply.context import PhaseContext
from cdb_ops.db.migrations import Migrator
from cdb_ops.load.endpoints import postgres_conninfo
from cdb_ops.load.specs import PhaseSpec
from cdb_ops.model.tables import EXPECTED_TABLES


def run(ctx: PhaseContext, phase: PhaseSpec) -> None:
    with Migrator(postgres_conninfo(ctx.desired, ctx.settings), ctx.project.schema_dir).session() as migrator:
        _run(ctx, phase, migrator)


def _run(ctx: PhaseContext, phase: PhaseSpec, migrator: Migrator) -> None:
    states = migrator.status()
    # a database that already holds migrations holds data: it is backed up first, and what it is migrated
    # to is part of the run's upgrade (a fresh one has nothing to go back to)
    upgrade = any(m.state == "pending" for m in states) and any(m.state == "applied" for m in states)
    if upgrade:
        _backup_first(ctx, phase)
    with ctx.timed() as took:
        applied = migrator.migrate()
    for m in applied:
        ctx.record(phase.name, "migration", f"{m.version:03d}_{m.name}", "migrate", "applied", service="postgres")
        if upgrade:
            ctx.upgrade.migrations.append(f"{m.version:03d}_{m.name}")
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


def _backup_first(ctx: PhaseContext, phase: PhaseSpec) -> None:
    """A database that holds data gets a verified backup before a migration changes its schema: a
    migration has no down script, so undoing it is a restore of this very file (`cdb-ops rollback` and a
    failed run's message name it)."""
    from cdb_ops.apply.backup import backup_database

    with ctx.timed() as took:
        made = backup_database(ctx.engine, ctx.desired, ctx.settings, ctx.project, ctx.redact)
    ctx.upgrade.backup = str(made.path)
    ctx.record(
        phase.name, "backup", made.path.name, "backup", f"before the migrations: {made.describe()}", took(), "postgres"
    )
