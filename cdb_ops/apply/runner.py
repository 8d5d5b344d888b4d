"""Run a phase playbook: observe and plan once, refuse the run on the plan's conflicts before anything
changes (preflight), lock, carry out the plan phase by phase — planning again only after a phase changed
the engine — and a result that says what every step did. Re-running finishes an interrupted run."""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from cdb_ops.apply.context import PhaseContext, RunOptions
from cdb_ops.apply.lock import run_lock
from cdb_ops.apply.phases import registry
from cdb_ops.apply.readiness import HealthWait
from cdb_ops.apply.rotate import VOLUME_MISMATCH
from cdb_ops.engine.api import Engine
from cdb_ops.errors import CdbError, Conflict, ExitCode, Interrupted
from cdb_ops.load.desired import DesiredStack
from cdb_ops.load.lastrun import save_last_run
from cdb_ops.load.phases import select_phases
from cdb_ops.load.project import Project
from cdb_ops.load.settings import Settings
from cdb_ops.load.specs import PhaseSpec, RunbookSpec, needs_images
from cdb_ops.model.plan import Plan
from cdb_ops.model.progress import Progress
from cdb_ops.model.results import RunResult
from cdb_ops.plan.observe import observe
from cdb_ops.plan.planner import plan_stack
from cdb_ops.redact import Redactor

# a step on one of these changed the engine, so the plan the next phase carries out is made anew
ENGINE_RESOURCES = frozenset({"network", "volume", "image", "container"})


def preflight(plan: Plan, desired: DesiredStack, phases: list[PhaseSpec]) -> None:
    """Refuse the whole run, before any change, if the plan found a foreign resource or process in the way
    of a phase that will run."""
    kinds = {p.kind for p in phases}
    svc_phases = [p for p in phases if p.kind == "services"]
    scope: set[str] | None = None  # the services the run's services phases touch (None: all)
    if svc_phases and all(p.services is not None for p in svc_phases):
        scope = {s for p in svc_phases for s in p.services or []}
    relevant = [
        c
        for c in plan.conflicts
        if (c.resource == "network" and "network" in kinds)
        or (c.resource == "volume" and "volumes" in kinds)
        or (c.resource == "container" and "services" in kinds and (scope is None or c.service in scope))
    ]
    if relevant:
        raise Conflict(
            "refusing to run, nothing was changed:\n  " + "\n  ".join(c.reason for c in relevant),
            "cdb-ops only manages resources labelled "
            f"{desired.system_label}; free the name or port (see above) and run again",
            details={"conflicts": [c.to_dict() for c in relevant]},
        )


def feed_preflight(engine: Engine, desired: DesiredStack, phases: list[PhaseSpec]) -> None:
    """On the live feed, refuse the run within seconds when the exchange's stream does not answer —
    instead of after the screener's health wait. Never switches to replay on its own: that is the user's
    choice (CDB_FEED in .env, or --feed)."""
    if desired.feed != "live" or not any(p.kind in ("services", "validate") for p in phases):
        return
    from cdb_ops.checks.feed import check_feed

    reach = check_feed(desired.stack, desired.project, engine)
    if reach is None or reach.ok:
        return
    raise Conflict(
        f"the live feed cannot work here, nothing was changed: {reach.url} — {reach.stage}: {reach.detail} "
        f"(checked from the {reach.where} in {reach.seconds:.1f} s)",
        f"{reach.remedy}. Use the recorded market instead: `cdb-ops rebuild --feed replay` for this run, "
        "or set CDB_FEED=replay in .env (`cdb-ops init --if-missing --feed replay` on a new .env)",
        details={"feed_check": reach.to_dict()},
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
    redact: Redactor,
    arguments: dict[str, Any] | None = None,
) -> RunResult:
    phases = select_phases(book, only)
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
    fns = registry(p.kind for p in phases)
    project.ensure_state_dir()
    ctx: PhaseContext | None = None
    current = phases[0].name if phases else ""  # the phase running: the run's end records its steps under it
    with run_lock(project.state_dir, f"{command} {book.name} since {result.started_at:%H:%M:%S}"):
        try:
            plan_options = options.plan_options(project, check_ports=any(p.kind == "services" for p in phases))
            # images matter to runs that build, start or check containers; `down` (one cleanup phase)
            # needs neither their inspects nor the build contexts' hashes
            with_images = needs_images(phases)
            if with_images:
                desired.hash_builds()
            observed = observe(engine, desired, host_ports=plan_options.check_ports, images=with_images)
            plan = plan_stack(desired, observed, plan_options)
            ctx = PhaseContext(
                engine=engine,
                desired=desired,
                settings=settings,
                project=project,
                progress=progress,
                redact=redact,
                options=options,
                waiter=HealthWait(engine, settings, redact),
                observed=observed,
                plan=plan,
                plan_options=plan_options,
                steps=result.steps,
                command=command,
                run_id=result.run_id,
            )
            preflight(plan, desired, phases)
            feed_preflight(engine, desired, phases)
            for phase in phases:
                current = phase.name
                progress.phase(phase.name, phase.kind)
                before = len(ctx.steps)
                fns[phase.kind](ctx, phase)
                last = phase is phases[-1]  # (nothing is planned after the last phase: no need to look again)
                if not last and any(s.changed and s.resource in ENGINE_RESOURCES for s in ctx.steps[before:]):
                    ctx.replan()
            finish_upgrade(ctx, current, None)
            result.result, result.exit_code = "ok", int(ExitCode.OK)
        except CdbError as exc:
            result.result, result.exit_code = "failed", int(exc.exit_code)
            result.error = json.loads(redact(json.dumps(exc.to_dict(), default=str)))
            if ctx is not None and not ctx.upgrade.empty:  # put the replaced containers back, give the books back
                note = finish_upgrade(ctx, current, exc)
                if note:
                    result.error["message"] = redact(f"{result.error['message']}\n{note}")
                result.error["details"]["rolled_back"] = list(ctx.upgrade.rolled_back)
        except Exception as exc:  # a bug: still leave an honest record behind, then let main() report it
            result.result, result.exit_code = "failed", int(ExitCode.INTERNAL)
            result.error = {
                "kind": "internal",
                "message": redact(f"{type(exc).__name__}: {exc}"),
                "remedy": "this is a bug in cdb-ops; please report the traceback",
                "exit_code": int(ExitCode.INTERNAL),
                "details": {},
            }
            raise
        except KeyboardInterrupt:
            if ctx is not None and ctx.upgrade.drain is not None:  # never leave a book REDUCING behind
                from cdb_ops.apply.upgrade import give_books_back

                give_books_back(ctx, current)
            stop = Interrupted()
            result.result, result.exit_code, result.error = "interrupted", int(stop.exit_code), stop.to_dict()
            raise
        finally:
            result.finished_at = datetime.now(UTC)
            result.checks = ctx.checks if ctx is not None else []
            result.upgrade = ctx.upgrade.to_dict() if ctx is not None and not ctx.upgrade.empty else None
            mismatch = (result.error or {}).get("details", {}).get("cause") == VOLUME_MISMATCH
            if mismatch:  # logging in as .env says would only be one more failed login in the database's log
                result.recorded, result.not_recorded_because = False, "the data volume does not hold .env's role"
            elif any(p.kind in ("schema", "services", "validate") for p in phases):
                # the two rows go alongside, each on its own connection (libpq lets go of the GIL)
                with ThreadPoolExecutor(max_workers=1, thread_name_prefix="cdb-journal") as pool:
                    journaled = (
                        pool.submit(journal_run, engine, desired, settings, result, redact)
                        if command in ("rebuild", "run") and any(p.kind == "services" for p in phases)
                        else None
                    )
                    why_not = record_run(desired, settings, result, redact)
                    result.recorded, result.not_recorded_because = why_not is None, why_not
                    if journaled is not None:
                        journaled.result()
                if result.upgrade and result.upgrade.get("rolled_back"):  # what came back, and why
                    journal_rollback(engine, desired, settings, result, redact)
            save_last_run(project, result.to_dict())
    return result


def finish_upgrade(ctx: PhaseContext, phase: str, failure: CdbError | None) -> str:
    """The upgrade's end (apply/upgrade.py): on success the replaced containers are kept for `cdb-ops
    rollback`; after a failure they come back. The books a drain set REDUCING get their states back."""
    if ctx.upgrade.empty:
        return ""
    from cdb_ops.apply.upgrade import finish

    try:
        return finish(ctx, phase, failure)
    except CdbError as exc:
        if failure is None:
            raise
        return f"the rollback itself failed: {exc.message}"


def record_run(desired: DesiredStack, settings: Settings, result: RunResult, redact: Redactor) -> str | None:
    from cdb_ops.db.opsruns import record

    failed = [c.name for c in result.checks if c.status == "fail"]
    return record(
        desired,
        settings,
        redact,
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


def journal_run(engine: Engine, desired: DesiredStack, settings: Settings, result: RunResult, redact: Redactor) -> None:
    """The run's journal row: what is live now that it ended (db/journal.py); best effort like ops_runs."""
    from cdb_ops.db.journal import record_event

    error = (result.error or {}).get("message", "")
    what = result.command if result.playbook == result.command else f"{result.command} {result.playbook}"
    why = f"{what}: {result.result}" + (f" — {error.splitlines()[0]}" if error else "")
    details = {
        "run_id": result.run_id,
        "result": result.result,
        "exit_code": result.exit_code,
        "feed": result.feed,
        "recreated": sorted({s.service for s in result.changed if s.resource == "container" and s.service}),
    }
    why_not = record_event(engine, desired, settings, "rebuild", why, details, redact=redact)
    result.journaled, result.not_journaled_because = why_not is None, why_not


def journal_rollback(
    engine: Engine, desired: DesiredStack, settings: Settings, result: RunResult, redact: Redactor
) -> None:
    """A failed run put the previous containers back: its own journal row (kind rollback) with the live set
    that is running again, beside the run's row, so `trades --versions` and `report` see the versions."""
    from cdb_ops.db.journal import record_event

    error = (result.error or {}).get("message", "").splitlines()
    upgrade = result.upgrade or {}
    why = f"{result.command} failed and rolled back" + (f": {error[0]}" if error else "")
    details = {"run_id": result.run_id, "rolled_back": upgrade.get("rolled_back"), "automatic": True}
    record_event(engine, desired, settings, "rollback", why, details, redact=redact)
