"""The backup service: on BACKUP_SCHEDULE the backup `cdb-ops backup` makes (cdb_common.backupjob),
retried with a bounded backoff; on RESTORE_DRILL_SCHEDULE a restore drill of the newest verified one.

Each outcome lands in the state file next to the dumps (what `cdb-ops status` and `validate` read), in
/health (degraded while the last backup or drill failed, or the newest verified backup is older than
the schedule allows) and in /metrics (`cdb_backup_last_success_timestamp_seconds`, failure counters:
what the alert rules use). The jobs run in a thread: /health answers while pg_dump works."""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cdb_common import backupfiles as bf
from cdb_common import cron
from cdb_common.backupjob import drill, take_backup
from cdb_common.config import ConfigError, Settings
from cdb_common.envrules import RULES, problem
from cdb_common.health import HealthReport
from cdb_common.runtime import BaseService
from prometheus_client import Counter, Gauge

from .tools import LocalTools

LAST_SUCCESS = Gauge("cdb_backup_last_success_timestamp_seconds", "When the newest verified backup was made")
LAST_FAILURE = Gauge("cdb_backup_last_failure_timestamp_seconds", "When a scheduled backup last failed for good")
FAILURES = Counter("cdb_backup_failures_total", "Scheduled backups that failed after every retry")
ATTEMPT_FAILURES = Counter("cdb_backup_attempt_failures_total", "Backup attempts that failed (each retry counts)")
LAST_SIZE = Gauge("cdb_backup_last_size_bytes", "Size of the newest backup")
LAST_SECONDS = Gauge("cdb_backup_last_duration_seconds", "How long the newest backup took")
PRUNED = Counter("cdb_backup_pruned_total", "Backups deleted by retention")
DAMAGED = Gauge("cdb_backup_damaged_files", "Dump files in backups/ that fail verification")
DRILL_LAST_SUCCESS = Gauge("cdb_restore_drill_last_success_timestamp_seconds", "When a restore drill last passed")
DRILL_FAILURES = Counter("cdb_restore_drill_failures_total", "Restore drills that failed")
DRILL_OK = Gauge("cdb_restore_drill_last_ok", "1 when the last restore drill passed, 0 when it failed")
DRILL_OK.set(math.nan)  # no drill yet: neither passed nor failed (0 would fire RestoreDrillFailed on a new stack)
REQUIRED_SINCE = Gauge(
    "cdb_backup_required_since_timestamp_seconds",
    "The newest verified backup must be at least this new: the last scheduled run that should have finished",
)
# The filesystems that fill up: the data volume's (mounted read-only at /pgdata only to measure it) and
# backups/ on the host. Sizes as df reports them: avail is what is left for anyone but root.
FS_SIZE = Gauge("cdb_filesystem_size_bytes", "Size of the filesystem holding the volume or folder", ["volume"])
FS_AVAIL = Gauge("cdb_filesystem_avail_bytes", "Bytes left on it for non-root writers", ["volume"])

RETRY_DELAYS_SECONDS = (15.0, 60.0, 240.0)  # then the failure stands until the next scheduled run
# a run that started on time may take this long before the backup it makes counts as missing
GRACE = timedelta(minutes=15)
RECHECK_SECONDS = 300  # how often the files are checked again between runs (a dump damaged on disk)


def _statvfs(path: Path) -> tuple[float, float]:
    """(size, available to non-root) in bytes; NaN while the filesystem cannot be read."""
    try:
        st = os.statvfs(path)
    except OSError:
        return math.nan, math.nan
    return float(st.f_blocks * st.f_frsize), float(st.f_bavail * st.f_frsize)


def _env_checked(settings: Settings, key: str) -> str:
    """The value the rules table allows (the service refuses to start on a bad one, exit 3)."""
    rule = RULES[key]
    value = (settings.env.get(key) or "").strip() or (rule.default or "")
    wrong = problem(rule, value) if value else None
    if wrong:
        raise ConfigError(f"{key}: {wrong} ({rule.help})")
    return value


class BackupService(BaseService):
    name = "backup"
    default_port = 8020
    uses_postgres = False  # its connections are its own, made per job (pg_dump needs none held open)
    uses_redis = False

    def __init__(self, settings: Settings, log: logging.Logger) -> None:
        super().__init__(settings, log)
        self.schedule = cron.parse(_env_checked(settings, "BACKUP_SCHEDULE"))
        self.drill_schedule = cron.parse(_env_checked(settings, "RESTORE_DRILL_SCHEDULE"))
        for key in ("BACKUP_KEEP_DAILY", "BACKUP_KEEP_WEEKLY", "BACKUP_KEEP_MONTHLY"):
            _env_checked(settings, key)
        self.retention = bf.Retention.from_env(settings.env)
        self.directory = Path(settings.get("BACKUP_DIR", "/backups"))
        second = Path(settings.get("BACKUP_SECOND_TARGET", "/backups2"))
        self.second = second if settings.get("BACKUP_SECOND_DIR") else None
        self.system = settings.get("CDB_SYSTEM", "claire_de_binare")
        self.dbname = settings.postgres.dbname
        self.prefix = f"{self.system}_{self.dbname}"
        self.tools = LocalTools(settings.postgres, self.directory)
        self.running: str | None = None
        self.failed_attempts = 0  # in a row; also in the state file, unless backups/ cannot be written
        self.last_error: str | None = None
        self.dumps: list[bf.DumpFile] = []  # checked by refresh() in a thread, never by /health itself
        REQUIRED_SINCE.set_function(lambda: self.schedule.previous_at_or_before(datetime.now(UTC) - GRACE).timestamp())
        filesystems = {
            "cdb_postgres_data": Path(settings.get("DATA_VOLUME_PATH", "/pgdata")),
            "backups": self.directory,
        }
        for volume, path in filesystems.items():
            if path.is_dir():  # a stack without the mount (an older playbook) exports no numbers, not wrong ones
                FS_SIZE.labels(volume).set_function(lambda p=path: _statvfs(p)[0])
                FS_AVAIL.labels(volume).set_function(lambda p=path: _statvfs(p)[1])

    def loops(self) -> list[Coroutine[Any, Any, None]]:
        return [self.scheduler()]

    async def open(self) -> None:
        await asyncio.to_thread(self.refresh)
        state = bf.read_state(self.directory, self.prefix)
        drill_state = state.get("drill") or {}
        if drill_state.get("last_success"):
            DRILL_LAST_SUCCESS.set(datetime.fromisoformat(drill_state["last_success"]).timestamp())
        if "ok" in drill_state:
            DRILL_OK.set(1 if drill_state["ok"] else 0)

    def refresh(self) -> None:
        """Check every dump again (a file damaged on disk stops counting) and set the gauges."""
        self.dumps = bf.inventory(self.directory, self.prefix)
        newest = self.newest()
        if newest is not None:  # a restart keeps the alert's clock: the files are the truth
            LAST_SUCCESS.set(newest.when.timestamp())
        DAMAGED.set(sum(1 for d in self.dumps if not d.verified))

    def newest(self) -> bf.DumpFile | None:
        return next((d for d in self.dumps if d.verified), None)

    def overdue(self, now: datetime) -> bool:
        """No verified backup since the last scheduled run that should have finished by now."""
        newest = self.newest()
        return newest is None or newest.when < self.schedule.previous_at_or_before(now - GRACE)

    async def scheduler(self) -> None:
        now = datetime.now(UTC)
        if self.overdue(now):  # the machine was off at the scheduled hour, or this is a new stack
            self.log.info("no backup since the last scheduled run: backing up now")
            await self.backup_with_retries()
        while not self.stop.is_set():
            now = datetime.now(UTC)
            next_backup, next_drill = self.schedule.next_after(now), self.drill_schedule.next_after(now)
            at = min(next_backup, next_drill)
            left = (at - datetime.now(UTC)).total_seconds()
            try:
                await asyncio.wait_for(self.stop.wait(), timeout=max(0.0, min(left, RECHECK_SECONDS)))
                return
            except TimeoutError:
                pass
            if left > RECHECK_SECONDS:  # between runs: look at the files again, then wait on
                await asyncio.to_thread(self.refresh)
                continue
            if next_backup == at:
                await self.backup_with_retries()
            if next_drill == at and not self.stop.is_set():  # after the backup of the same minute
                await self.run_drill()

    async def backup_with_retries(self) -> None:
        for attempt, delay in enumerate((*RETRY_DELAYS_SECONDS, None), start=1):
            self.running = "backup"
            try:
                made = await asyncio.to_thread(
                    take_backup, self.tools, self.directory, self.system, self.dbname, self.retention, self.second
                )
            except Exception as exc:  # noqa: BLE001 - every failure is retried, counted and recorded
                ATTEMPT_FAILURES.inc()
                message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
                self.failed_attempts, self.last_error = self.failed_attempts + 1, message[:500]
                self.note("backup", ok=False, last_error=message[:500], attempt=attempt)  # visible at once
                final = delay is None or self.stop.is_set()
                self.log.warning(
                    "backup attempt failed" + ("" if final else f", retrying in {delay:.0f} s"),
                    extra={"attempt": attempt, "error": message[:500]},
                )
                if final:
                    FAILURES.inc()
                    LAST_FAILURE.set(time.time())
                    self.running = None
                    await asyncio.to_thread(self.refresh)
                    return
                self.running = None
                try:
                    await asyncio.wait_for(self.stop.wait(), timeout=delay)
                    return
                except TimeoutError:
                    continue
            else:
                self.running = None
                self.failed_attempts, self.last_error = 0, None
                self.note("backup", ok=True, file=made.path.name, attempt=attempt)
                LAST_SIZE.set(made.size)
                LAST_SECONDS.set(made.seconds)
                PRUNED.inc(len(made.pruned))
                await asyncio.to_thread(self.refresh)
                self.log.info(
                    "backup verified",
                    extra={
                        "file": made.path.name,
                        "bytes": made.size,
                        "seconds": round(made.seconds, 2),
                        "rows": sum(made.rows.values()),
                        "pruned": [p.name for p in made.pruned],
                        "copies": [str(p) for p in made.copies],
                    },
                )
                return

    async def run_drill(self) -> None:
        self.running = "drill"
        started = time.monotonic()
        try:
            result = (await asyncio.to_thread(drill, self.tools, self.directory, self.system, self.dbname)).to_dict()
        except Exception as exc:  # noqa: BLE001 - a failed drill is recorded and shown, never fatal
            message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
            seconds = round(time.monotonic() - started, 3)
            result = {"ok": False, "file": None, "seconds": seconds, "error": message[:500]}
        finally:
            self.running = None
        self.note("drill", **result)
        DRILL_OK.set(1 if result["ok"] else 0)
        if result["ok"]:
            DRILL_LAST_SUCCESS.set(time.time())
            self.log.info("restore drill passed", extra=result)
        else:
            DRILL_FAILURES.inc()
            self.log.warning("restore drill failed", extra=result)

    def note(self, section: str, **facts: Any) -> None:
        """Into the state file; a folder that cannot be written is itself a failure, never a crash."""
        try:
            bf.record(self.directory, self.prefix, section, by="service", **facts)
        except OSError as exc:
            self.log.warning("cannot write the state file", extra={"error": str(exc)})

    def add_checks(self, report: HealthReport) -> None:
        now = datetime.now(UTC)
        state = bf.read_state(self.directory, self.prefix)
        dumps, newest = self.dumps, self.newest()
        report.checks["schedule"] = self.schedule.text
        report.checks["drill_schedule"] = self.drill_schedule.text
        report.checks["running"] = self.running
        report.checks["newest_verified"] = newest.to_dict(now) if newest else None
        report.checks["damaged_files"] = [d.path.name for d in dumps if not d.verified]
        backup, drill_state = state.get("backup") or {}, state.get("drill") or {}
        report.checks["backup_consecutive_failures"] = max(
            self.failed_attempts, int(backup.get("consecutive_failures") or 0)
        )
        report.checks["backup_last_error"] = self.last_error or backup.get("last_error")
        report.checks["drill"] = {k: drill_state.get(k) for k in ("ok", "file", "last_run", "last_success", "error")}
        if report.checks["backup_consecutive_failures"]:
            report.worsen("degraded")
        if drill_state and drill_state.get("ok") is False:
            report.worsen("degraded")
        if self.running is None and self.overdue(now):
            report.checks["overdue"] = True
            report.worsen("degraded")
