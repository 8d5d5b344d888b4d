"""What `status` and `validate` say about backups, and validate's `backups` check: the newest *verified*
dump and its age, whether the schedule should have made a newer one, and the last restore drill —
"drilled" is the stronger claim (a restore worked), "verified" only that the file is whole. Read from
the files in backups/ and the state file the backup service and `cdb-ops backup` write
(cdb_common.backupfiles); no engine needed, so the quick `status` path uses it too."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cdb_common import backupfiles as bf
from cdb_common import cron

if TYPE_CHECKING:  # the quick `status` path imports this module: no pydantic, no playbook loader
    from cdb_ops.checks.context import CheckContext
    from cdb_ops.model.results import CheckResult

# a run that started on schedule may take this long before its backup counts as missing
GRACE = timedelta(minutes=15)


def schedule_of(values: Mapping[str, str], key: str) -> cron.Schedule:
    written = (values.get(key) or "").strip()
    if written:
        return cron.parse(written)
    from cdb_common.envrules import RULES  # the default only where .env leaves it out (`status` is lighter)

    return cron.parse(RULES[key].default or "")


def backup_summary(root: Path, system: str, values: Mapping[str, str], now: datetime | None = None) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    db = values.get("POSTGRES_DB") or ""
    directory, prefix = root / "backups", f"{system}_{db}"
    newest, damaged = bf.newest_verified(directory, prefix)
    state = bf.read_state(directory, prefix)
    backup, drill = state.get("backup") or {}, state.get("drill") or {}
    schedule = schedule_of(values, "BACKUP_SCHEDULE")
    drill_schedule = schedule_of(values, "RESTORE_DRILL_SCHEDULE")
    due = schedule.previous_at_or_before(now - GRACE)
    drill_due = drill_schedule.previous_at_or_before(now - GRACE)
    last_drill_ok = _when(drill.get("last_success"))
    return {
        "schedule": schedule.text,
        "newest_verified": newest.to_dict(now) if newest else None,
        "overdue": newest is None or newest.when < due,
        "due_since": due.isoformat(),
        "damaged": [d.to_dict(now) for d in damaged],
        "last_failure": backup.get("last_failure"),
        "consecutive_failures": int(backup.get("consecutive_failures") or 0),
        "last_error": backup.get("last_error"),
        "drill": {
            "schedule": drill_schedule.text,
            "last_run": drill.get("last_run"),
            "ok": drill.get("ok"),
            "file": drill.get("file"),
            "error": drill.get("error"),
            "mismatches": drill.get("mismatches") or {},
            "last_success": drill.get("last_success"),
            "age_seconds": round((now - last_drill_ok).total_seconds()) if last_drill_ok else None,
            "overdue": last_drill_ok is None or last_drill_ok < drill_due,
        },
        # the strongest claim that holds: "drilled" (a restore of it worked), "verified", or "none"
        "level": "drilled" if drill.get("ok") and newest is not None else ("verified" if newest else "none"),
    }


def _when(text: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(text)) if text else None
    except ValueError:
        return None


def age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


def backup_lines(summary: dict[str, Any] | None) -> list[str]:
    """The status footer's backup lines (plain text)."""
    if summary is None:
        return []
    newest, drill = summary["newest_verified"], summary["drill"]
    if newest is None:
        first = "backups: no verified backup yet — `cdb-ops backup` makes one now"
    else:
        first = (
            f"backups: newest verified {newest['file']} ({age(newest['age_seconds'])} old; "
            f"schedule {summary['schedule']})" + (" — OVERDUE" if summary["overdue"] else "")
        )
    out = [first]
    if summary["consecutive_failures"]:
        out.append(f"  last backup FAILED ({summary['consecutive_failures']}x): {summary['last_error']}")
    if summary["damaged"]:
        out.append(f"  damaged, not counted: {', '.join(d['file'] for d in summary['damaged'])}")
    if drill["ok"] is None:
        out.append("  restore drill: never — not proven restorable (`cdb-ops backup --drill`)")
    elif drill["ok"]:
        out.append(f"  restore drill: passed on {drill['file']} ({age(drill['age_seconds'] or 0)} ago) — drilled")
    else:
        out.append(f"  restore drill: FAILED at {drill['last_run']}: {drill['error'] or drill['mismatches']}")
    return out


def backup_verdict(summary: dict[str, Any]) -> tuple[str, str, str]:
    """(status, detail, remedy) for validate: warn on anything a trader must act on."""
    newest, drill = summary["newest_verified"], summary["drill"]
    problems, fixes = [], []
    if newest is None:
        problems.append("no verified backup")
        fixes.append("`cdb-ops backup` makes one; the backup service makes one on BACKUP_SCHEDULE")
    elif summary["overdue"]:
        problems.append(
            f"the newest verified backup is {age(newest['age_seconds'])} old, older than BACKUP_SCHEDULE "
            f"({summary['schedule']}) allows (one was due by {summary['due_since']})"
        )
        fixes.append("see `cdb-ops logs backup`; `cdb-ops backup` makes one now")
    if summary["consecutive_failures"]:
        problems.append(f"the last backup failed: {summary['last_error']}")
    if summary["damaged"]:
        problems.append(f"{len(summary['damaged'])} newer dump(s) fail verification and do not count")
        fixes.append("look at the damaged files in backups/ (retention never deletes them)")
    if drill["ok"] is False:
        problems.append(f"the last restore drill failed: {drill['error'] or drill['mismatches']}")
        fixes.append("`cdb-ops backup` then `cdb-ops backup --drill`")
    elif drill["ok"] is None:
        problems.append("no restore drill yet: nobody has a backup until a restore has worked")
        fixes.append("`cdb-ops backup --drill` (the backup service drills on RESTORE_DRILL_SCHEDULE)")
    elif drill["overdue"]:
        problems.append(f"the last passing restore drill is older than RESTORE_DRILL_SCHEDULE ({drill['schedule']})")
        fixes.append("`cdb-ops backup --drill`")
    if problems:
        return "warn", "; ".join(problems), "; ".join(dict.fromkeys(fixes))
    detail = (
        f"newest verified backup {newest['file']} is {age(newest['age_seconds'])} old; "
        f"{summary['level']}: restore drill passed on {drill['file']}"
    )
    return "pass", detail, ""


def check_backups(ctx: CheckContext) -> list[CheckResult]:
    from cdb_ops.load.endpoints import postgres_service
    from cdb_ops.model.results import CheckResult  # here: the quick status path needs no command results

    if postgres_service(ctx.desired) not in ctx.desired.services:
        return [CheckResult("backups", "skip", "no database in the selected stack")]
    summary = backup_summary(ctx.desired.project.root, ctx.desired.system, ctx.settings.values)
    status, detail, remedy = backup_verdict(summary)
    return [CheckResult("backups", status, detail, remedy, facts=summary)]  # type: ignore[arg-type]
