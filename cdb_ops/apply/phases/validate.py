"""Phase `validate`: the end of a rebuild is proof, not hope — run every check of `cdb-ops validate`."""

from __future__ import annotations

from cdb_ops.apply.context import PhaseContext
from cdb_ops.checks.validate import run_checks
from cdb_ops.errors import StepFailed
from cdb_ops.load.specs import PhaseSpec
from cdb_ops.model.results import CheckResult


def run(ctx: PhaseContext, phase: PhaseSpec) -> None:
    def report(r: CheckResult) -> None:
        if r.status != "pass":
            ctx.progress.step(phase.name, "check", r.name, r.status, r.detail)

    # observed afresh after any change (a container Docker restarted since the last plan is attached again
    # by now); a run that changed nothing checks against its own observation of a moment ago. The
    # containers' states are listed afresh by the checks either way.
    unchanged = not any(s.changed for s in ctx.steps)
    results = run_checks(
        ctx.engine,
        ctx.desired,
        ctx.settings,
        ctx.options.validate,
        ctx.redact,
        on_result=report,
        observed=ctx.observed if unchanged else None,
    )
    ctx.checks = results
    failed = [r for r in results if r.status == "fail"]
    passed = sum(r.status == "pass" for r in results)
    warned = [r for r in results if r.status == "warn"]
    ctx.record(
        phase.name,
        "checks",
        ctx.desired.system,
        "ok" if not failed else "fail",
        f"{passed} passed, {len(warned)} warning(s), {len(failed)} failed",
        sum(r.seconds for r in results),
    )
    if failed:
        raise StepFailed(
            "validate: " + "; ".join(f"{r.name}: {r.detail}" for r in failed),
            "; ".join(dict.fromkeys(r.remedy for r in failed if r.remedy)) or "see the checks above",
            details={"failed": [r.to_dict() for r in failed]},
        )
