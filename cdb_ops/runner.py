"""Run a phase playbook: preflight (conflicts refuse the run before anything changes), lock, phases
in order, and a result that says what every step did. Re-running finishes an interrupted run."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cdb_ops import JSON_SCHEMA_VERSION
from cdb_ops.desired import DesiredStack
from cdb_ops.engine import Engine
from cdb_ops.errors import CdbError, Conflict, ExitCode, UsageError
from cdb_ops.lock import run_lock
from cdb_ops.phases import PhaseContext, RunOptions, StepResult, registry
from cdb_ops.planner import plan_stack
from cdb_ops.playbook import PhaseSpec, RunbookSpec
from cdb_ops.progress import Progress
from cdb_ops.project import Project
from cdb_ops.readiness import HealthWait
from cdb_ops.settings import Redactor, Settings
from cdb_ops.validate import CheckResult


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
    not_recorded_because: str | None = "this run touched no service or schema"

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
        }


def select_phases(book: RunbookSpec, only: list[str] | None) -> list[PhaseSpec]:
    if not only:
        return list(book.phases)
    names = [p.name for p in book.phases]
    unknown = [o for o in only if o not in names]
    if unknown:
        raise UsageError(f"unknown phase {unknown[0]!r} in playbook {book.name}", f"use one of: {', '.join(names)}")
    return [p for p in book.phases if p.name in only]


def preflight(engine: Engine, desired: DesiredStack, phases: list[PhaseSpec], options: RunOptions) -> None:
    """Refuse the whole run, before any change, if a foreign resource or process is in the way."""
    kinds = {p.kind for p in phases}
    services: list[str] | None = None
    if "services" in kinds:
        svc_phases = [p for p in phases if p.kind == "services"]
        services = (
            None
            if any(p.services is None for p in svc_phases)
            else sorted({s for p in svc_phases for s in p.services or []})
        )
    plan = plan_stack(engine, desired, services=services, check_ports="services" in kinds)
    relevant = [
        c
        for c in plan.conflicts
        if (c.resource == "network" and "network" in kinds)
        or (c.resource == "volume" and "volumes" in kinds)
        or (c.resource == "container" and "services" in kinds)
    ]
    if relevant:
        raise Conflict(
            "refusing to run, nothing was changed:\n  " + "\n  ".join(c.reason for c in relevant),
            "cdb-ops only manages resources labelled "
            f"{desired.system_label}; free the name or port (see above) and run again",
            details={"conflicts": [c.to_dict() for c in relevant]},
        )


def execute(
    *,
    command: str,
    engine: Engine,
    desired: DesiredStack,
    settings: Settings,
    project: Project,
    book: RunbookSpec,
    progress: Progress,
    options: RunOptions,
    only: list[str] | None = None,
    arguments: dict[str, Any] | None = None,
) -> RunResult:
    phases = select_phases(book, only)
    redact = Redactor(settings.secret_values())
    result = RunResult(
        command=command,
        playbook=book.name,
        run_id=str(uuid.uuid4()),
        started_at=datetime.now(UTC),
        profiles=list(desired.profiles),
        feed=desired.feed,
        phases=[p.name for p in phases],
        arguments=arguments or {},
    )
    ctx = PhaseContext(
        engine=engine,
        desired=desired,
        settings=settings,
        project=project,
        progress=progress,
        redact=redact,
        options=options,
        waiter=HealthWait(engine, settings, redact),
        steps=result.steps,
    )
    fns = registry()
    project.ensure_state_dir()
    with run_lock(project.state_dir, f"{command} {book.name} since {result.started_at:%H:%M:%S}"):
        try:
            preflight(engine, desired, phases, options)
            for phase in phases:
                progress.phase(phase.name, phase.kind)
                fns[phase.kind](ctx, phase)
            result.result, result.exit_code = "ok", int(ExitCode.OK)
        except CdbError as exc:
            result.result, result.exit_code = "failed", int(exc.exit_code)
            result.error = json.loads(redact(json.dumps(exc.to_dict(), default=str)))
        except Exception as exc:  # a bug: still leave an honest record behind, then let main() report it
            result.result, result.exit_code = "failed", int(ExitCode.INTERNAL)
            result.error = {
                "kind": "internal",
                "message": redact(f"{type(exc).__name__}: {exc}"),
                "remedy": "this is a bug in cdb-ops; please report the traceback",
                "exit_code": 70,
                "details": {},
            }
            raise
        except KeyboardInterrupt:
            result.result, result.exit_code = "interrupted", int(ExitCode.INTERRUPTED)
            result.error = {
                "kind": "interrupted",
                "message": "interrupted; run the same command again to finish",
                "remedy": "",
                "exit_code": 130,
                "details": {},
            }
            raise
        finally:
            result.finished_at = datetime.now(UTC)
            result.checks = ctx.checks
            if any(p.kind in ("schema", "services", "validate") for p in phases):
                why_not = record_run(desired, settings, result)
                result.recorded, result.not_recorded_because = why_not is None, why_not
            save_last_run(project, result)
    return result


def record_run(desired: DesiredStack, settings: Settings, result: RunResult) -> str | None:
    from cdb_ops.opsruns import record

    failed = [c.name for c in result.checks if c.status == "fail"]
    return record(
        desired,
        settings,
        run_id=result.run_id,
        command=result.command,
        arguments=result.arguments
        | {"playbook": result.playbook, "phases": result.phases, "profiles": result.profiles, "feed": result.feed},
        started_at=result.started_at,
        finished_at=result.finished_at,
        result=result.result,
        exit_code=result.exit_code,
        summary={
            "changed": len(result.changed),
            "failed_checks": failed,
            "error": (result.error or {}).get("message", "")[:500],
        },
    )


def save_last_run(project: Project, result: RunResult) -> None:
    project.ensure_state_dir()
    tmp = project.last_run_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(result.to_dict(), indent=2))
    tmp.replace(project.last_run_file)


def load_last_run(project: Project) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(project.last_run_file.read_text())
        return data
    except (FileNotFoundError, json.JSONDecodeError):
        return None
