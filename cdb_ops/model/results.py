"""What commands produce, as plain data: run steps and results, check verdicts, doctor findings,
migration states, backups (a status row is model/status.py). The report layer renders these without
importing their makers."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from cdb_ops import JSON_SCHEMA_VERSION

# what a step did to the engine or the database; everything else (ok, wait, orphan, check verdicts) is a report
CHANGING_ACTIONS = frozenset(
    {
        "create",
        "recreate",
        "start",
        "remove",
        "build",
        "pull",
        "migrate",
        "backup",
        "rotate",
        "drain",
        "restore",
        "rollback",
    }
)

Status = Literal["pass", "warn", "fail", "skip"]
Verdict = Literal["ok", "problem", "skip"]


@dataclass
class StepResult:
    phase: str
    resource: str
    name: str
    action: str  # create | recreate | start | remove | build | pull | ok | orphan | migrate | wait
    detail: str = ""
    seconds: float = 0.0
    service: str | None = None

    @property
    def changed(self) -> bool:
        return self.action in CHANGING_ACTIONS

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["seconds"] = round(self.seconds, 3)
        return d


@dataclass
class CheckResult:
    name: str
    status: Status
    detail: str
    remedy: str = ""
    facts: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "detail": self.detail,
            "remedy": self.remedy,
            "facts": self.facts,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class RunResult:
    command: str
    playbook: str
    run_id: str
    started_at: datetime
    profiles: list[str]
    feed: str | None
    phases: list[str]
    finished_at: datetime | None = None
    result: str = "running"  # ok | failed | interrupted
    exit_code: int = 0
    steps: list[StepResult] = field(default_factory=list)
    checks: list[CheckResult] = field(default_factory=list)
    error: dict[str, Any] | None = None
    arguments: dict[str, Any] = field(default_factory=dict)
    recorded: bool = False  # whether the run is in ops_runs
    # the drain, the swaps and what was kept or rolled back (model/upgrade.py); None: the run swapped nothing
    upgrade: dict[str, Any] | None = None
    not_recorded_because: str | None = "this run touched no service or schema"
    journaled: bool = False  # whether the journal has the run with what it left live (db/journal.py)
    not_journaled_because: str | None = "this run started no service"

    @property
    def changed(self) -> list[StepResult]:
        return [s for s in self.steps if s.changed]

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": JSON_SCHEMA_VERSION,
            "command": self.command,
            "playbook": self.playbook,
            "run_id": self.run_id,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "duration_seconds": round((self.finished_at - self.started_at).total_seconds(), 3)
            if self.finished_at
            else None,
            "result": self.result,
            "exit_code": self.exit_code,
            "profiles": self.profiles,
            "feed": self.feed,
            "phases": self.phases,
            "changed": len(self.changed),
            "steps": [s.to_dict() for s in self.steps],
            "checks": [c.to_dict() for c in self.checks],
            "error": self.error,
            "recorded_in_ops_runs": self.recorded,
            "not_recorded_because": None if self.recorded else self.not_recorded_because,
            "journaled": self.journaled,
            "not_journaled_because": None if self.journaled else self.not_journaled_because,
            "upgrade": self.upgrade,
        }


@dataclass
class Finding:
    name: str
    verdict: Verdict
    diagnosis: str
    fix: str = ""
    facts: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "verdict": self.verdict,
            "diagnosis": self.diagnosis,
            "fix": self.fix,
            "facts": self.facts,
        }


@dataclass(frozen=True)
class MigrationState:
    version: int
    name: str
    state: Literal["applied", "pending", "changed", "missing"]
    applied_at: datetime | None = None
    checksum: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "name": self.name,
            "state": self.state,
            "applied_at": self.applied_at.isoformat() if self.applied_at else None,
            "checksum": self.checksum[:12],
        }


@dataclass(frozen=True)
class Backup:
    path: Path
    kind: str  # "pg_dump" | "volume"
    source: str  # database or volume name
    size: int
    sha256: str
    seconds: float
    verified: str = ""  # how it was checked before anything relied on it

    def describe(self) -> str:
        """One line for a run's step: what it is, and that (and how) it was verified."""
        what = f"pg_dump of {self.source}" if self.kind == "pg_dump" else f"archive of volume {self.source}"
        return f"{what}, {self.size} bytes, {self.verified}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "kind": self.kind,
            "source": self.source,
            "size": self.size,
            "sha256": self.sha256,
            "seconds": round(self.seconds, 3),
            "verified": self.verified,
        }
