"""Scheduled backups and restore drills on the real engine (docs/backups.md): with BACKUP_SCHEDULE and
RESTORE_DRILL_SCHEDULE at every minute, the stack's backup service makes a verified backup and a
passing drill on its own; `cdb-ops backup --drill` drills on request; a dump damaged on disk stops
counting at once (status, validate, the drill) and retention never deletes it."""

from __future__ import annotations

import json
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.helpers import STACKS, StackFixture, cdb, cdb_json, pg_connect, wait_until

pytestmark = pytest.mark.integration

STACK = STACKS["backups_scheduled"]
FIXTURE = StackFixture(
    STACK,
    env={
        "BACKUP_SCHEDULE": "* * * * *",
        "RESTORE_DRILL_SCHEDULE": "* * * * *",
        # one of each: every scheduled run prunes the one before it, so pruning is seen within minutes
        "BACKUP_KEEP_DAILY": "1",
        "BACKUP_KEEP_WEEKLY": "1",
        "BACKUP_KEEP_MONTHLY": "1",
    },
)
BACKUP_PORT = 8020 + STACK.offset
PG_PORT = 5432 + STACK.offset


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory):
    yield from FIXTURE.around(tmp_path_factory.mktemp("backup_schedule"))


def _backups(project: Path) -> dict[str, Any]:
    return cdb_json("status", project=project)["backups"]


def _metrics() -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{BACKUP_PORT}/metrics", timeout=5) as r:  # noqa: S310 - loopback
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("cdb_") and " " in line:
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def _dumps(project: Path) -> list[str]:
    return sorted(p.name for p in (project / "backups").glob("*.dump"))


def test_the_schedule_makes_a_verified_backup_and_a_passing_drill(project):
    with pg_connect(project, PG_PORT) as conn:  # rows the drill must find again
        for i in range(5):
            conn.execute(
                "INSERT INTO ops_runs (run_id, command, started_at, result, tool_version) "
                "VALUES (gen_random_uuid(), %s, now(), 'ok', 'test')",
                (f"scheduled-{i}",),
            )
    inserted = datetime.now(UTC)

    def drilled_since_the_inserts() -> dict[str, Any] | None:
        """A backup begun after the inserts (its name's stamp is taken before its snapshot; one made while
        the fixture's rebuild ran has no ops_runs row yet), verified, and a passing drill of that very file."""
        b = _backups(project)
        newest = b["newest_verified"]
        if not newest or datetime.fromisoformat(newest["created"]) <= inserted:
            return None
        return b if b["drill"]["ok"] and b["drill"]["file"] == newest["file"] else None

    # the backup and the drill both run each minute: the drill of the backup after the inserts may come a
    # minute after it
    summary = wait_until("a backup after the inserts and its drill", drilled_since_the_inserts, timeout=210, every=3)
    assert summary["level"] == "drilled" and not summary["overdue"] and summary["drill"]["mismatches"] == {}
    newest = project / "backups" / summary["newest_verified"]["file"]
    manifest = json.loads((newest.parent / (newest.name + ".json")).read_text())
    assert manifest["rows"]["ops_runs"] >= 1 and "pg_restore --list reads" in manifest["listed"]
    assert (newest.parent / (newest.name + ".sha256")).read_text().split()[0] == manifest["sha256"]
    assert oct(newest.stat().st_mode & 0o777) == "0o600"
    assert oct(newest.parent.stat().st_mode & 0o777) == "0o700"
    # the service's files belong to the folder's owner, who is not root (docs/backups.md, Hardening)
    assert newest.stat().st_uid == newest.parent.stat().st_uid != 0
    m = _metrics()
    assert m["cdb_backup_last_success_timestamp_seconds"] > 0 and m["cdb_backup_failures_total"] == 0
    assert m["cdb_restore_drill_last_ok"] == 1
    state = json.loads(next((project / "backups").glob("*.state.json")).read_text())
    assert state["drill"]["by"] == "service" and state["backup"]["by"] == "service"
    checks = {c["name"]: c for c in cdb_json("validate", project=project, expect=None)["checks"]}
    assert checks["backups"]["status"] == "pass", checks["backups"]


def test_a_drill_on_request_restores_and_matches(project):
    out = cdb_json("backup", "--drill", project=project)
    manifest = json.loads((project / "backups" / (out["file"] + ".json")).read_text())
    assert out["ok"] is True and out["mismatches"] == {}
    assert out["tables"] == len(manifest["rows"]) >= 9 and out["rows"] == sum(manifest["rows"].values()) > 0
    with pg_connect(project, PG_PORT) as conn:  # the throwaway database is gone
        assert conn.execute("SELECT count(*) FROM pg_database WHERE datname LIKE 'cdb_drill_%'").fetchone()[0] == 0


def test_a_damaged_newest_dump_does_not_count_and_is_never_pruned(project):
    service = docker.from_env().containers.get(f"{STACK.prefix}backup")
    service.stop(timeout=5)  # no scheduled run between the steps below
    try:
        older = Path(cdb_json("backup", "--keep", "5", project=project)["path"])
        newest = Path(cdb_json("backup", "--keep", "5", project=project)["path"])
        data = bytearray(newest.read_bytes())
        data[len(data) // 2] ^= 0xFF  # one flipped byte: the sidecar no longer matches
        newest.write_bytes(bytes(data))
        summary = _backups(project)
        assert summary["newest_verified"]["file"] == older.name
        assert [d["file"] for d in summary["damaged"]] == [newest.name]
        checks = {c["name"]: c for c in cdb_json("validate", project=project, expect=None)["checks"]}
        assert checks["backups"]["status"] == "warn" and "fail verification" in checks["backups"]["detail"]
        assert cdb_json("backup", "--drill", project=project)["file"] == older.name  # never the damaged one
        r = cdb("restore", str(newest), "--yes", "--json", project=project)
        assert r.returncode == 3 and "checksum mismatch" in json.loads(r.stdout)["error"]["message"]
    finally:
        service.start()
    # the next scheduled backup is the newest verified; keep-1 retention prunes the older verified
    # ones but never the damaged dump
    wait_until(
        "a scheduled backup after the damaged one, and retention done",
        lambda: (
            _backups(project)["newest_verified"]["file"] not in (older.name, newest.name)
            and older.name not in _dumps(project)
        ),
        timeout=150,
        every=3,
    )
    assert newest.name in _dumps(project)
    assert wait_until("the damaged-files gauge", lambda: _metrics()["cdb_backup_damaged_files"] == 1, timeout=30)


def _health() -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{BACKUP_PORT}/health", timeout=5) as r:  # noqa: S310 - loopback
        return json.loads(r.read())


def test_a_failed_backup_is_visible_deletes_nothing_and_is_retried(project):
    before = _backups(project)["newest_verified"]["file"]
    failures = _metrics()["cdb_backup_attempt_failures_total"]
    # an exclusive lock held longer than the backup waits (backupjob.LOCK_WAIT_SECONDS): the run fails
    with pg_connect(project, PG_PORT, autocommit=False) as blocker:
        blocker.execute("LOCK TABLE ops_runs IN ACCESS EXCLUSIVE MODE")
        health = wait_until(
            "a failed backup attempt on /health",
            lambda: (h := _health())["checks"]["backup_consecutive_failures"] >= 1 and h,
            timeout=120,
            every=2,
        )
        assert health["status"] == "degraded" and "lock" in health["checks"]["backup_last_error"]
        assert _metrics()["cdb_backup_attempt_failures_total"] > failures
        assert before in _dumps(project)  # a failed backup deletes nothing
        blocker.rollback()
    # the retry (15 s later, not the next scheduled minute's run) succeeds and clears the failure
    wait_until(
        "the retried backup",
        lambda: (
            _health()["checks"]["backup_consecutive_failures"] == 0 and _backups(project)["consecutive_failures"] == 0
        ),
        timeout=60,
        every=2,
    )
    assert _metrics()["cdb_backup_failures_total"] == 0  # retried in time: no run failed for good
