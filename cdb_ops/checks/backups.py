"""validate's backup check: a verified backup no older than BACKUP_SCHEDULE allows, no failed backup or
drill, and a restore drill that passed (cdb_ops.views.backups reads the files; docs/backups.md)."""

from __future__ import annotations

from cdb_ops.checks.context import CheckContext
from cdb_ops.load.endpoints import postgres_service
from cdb_ops.model.results import CheckResult
from cdb_ops.views.backups import backup_summary, backup_verdict


def check_backups(ctx: CheckContext) -> list[CheckResult]:
    if postgres_service(ctx.desired) not in ctx.desired.services:
        return [CheckResult("backups", "skip", "no database in the selected stack")]
    summary = backup_summary(ctx.desired.project.root, ctx.desired.system, ctx.settings.values)
    status, detail, remedy = backup_verdict(summary)
    return [CheckResult("backups", status, detail, remedy, facts=summary)]  # type: ignore[arg-type]
