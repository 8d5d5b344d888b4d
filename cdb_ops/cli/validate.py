"""`cdb-ops validate`: the memo's success criteria as named checks, ending with the end-to-end probe."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

import typer

from cdb_ops.cli.options import FeedOpt, JsonOpt, ProfileOpt, ProjectDir


def validate(
    ctx: typer.Context,
    project_dir: ProjectDir = None,
    profile: ProfileOpt = None,
    feed: FeedOpt = None,
    no_probe: Annotated[
        bool, typer.Option("--no-probe", help="Skip the end-to-end probes: the trading pipeline and the alert path.")
    ] = False,
    probe_timeout: Annotated[
        float, typer.Option("--probe-timeout", min=1, max=3600, help="Seconds the probe may take.")
    ] = 30.0,
    memory_budget: Annotated[
        float, typer.Option("--memory-budget", min=1, max=1 << 30, help="Core memory budget in MiB.")
    ] = 1536.0,
    json_output: JsonOpt = False,
) -> None:
    """Check the memo's success criteria: engine, network, volumes, containers, /health, Postgres
    (9 tables, migrations), Redis, logs, memory, and an end-to-end probe. Exit 0 only when nothing failed."""
    from cdb_ops.checks.context import ValidateOptions
    from cdb_ops.checks.validate import run_checks
    from cdb_ops.cli.session import open_run
    from cdb_ops.db.opsruns import record
    from cdb_ops.engine.docker import DockerEngine
    from cdb_ops.errors import CdbError, ExitCode
    from cdb_ops.model.results import CheckResult

    s = open_run(ctx, "validate", json_output, project_dir, "rebuild", profile, feed)
    started = datetime.now(UTC)
    try:
        engine = DockerEngine()
    except CdbError as exc:
        s.out.checks([CheckResult("engine", "fail", exc.message, exc.remedy)])
        raise typer.Exit(int(exc.exit_code)) from None
    options = ValidateOptions(
        memory_budget_mb=memory_budget, probe=not no_probe, probe_timeout=probe_timeout, alert_path=not no_probe
    )
    results = run_checks(engine, s.desired, s.settings, options, s.redact)
    failed = [r.name for r in results if r.status == "fail"]
    run_id = str(uuid.uuid4())
    why_not = record(
        s.desired,
        s.settings,
        s.redact,
        run_id=run_id,
        command="validate",
        arguments={"probe": not no_probe, "profiles": list(s.desired.profiles)},
        started_at=started,
        finished_at=datetime.now(UTC),
        result="failed" if failed else "ok",
        exit_code=int(ExitCode.CHECKS_FAILED) if failed else int(ExitCode.OK),
        summary={
            "failed_checks": failed,
            "counts": {k: sum(r.status == k for r in results) for k in ("pass", "warn", "fail", "skip")},
        },
    )
    s.out.checks(results, run_id, why_not is None)
    raise typer.Exit(int(ExitCode.CHECKS_FAILED) if failed else 0)
