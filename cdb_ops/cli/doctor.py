"""`cdb-ops doctor`: diagnose the known risks, each finding with its fix."""

from __future__ import annotations

import typer

from cdb_ops.cli.options import JsonOpt, ProfileOpt, ProjectDir


def doctor(
    ctx: typer.Context, project_dir: ProjectDir = None, profile: ProfileOpt = None, json_output: JsonOpt = False
) -> None:
    """Diagnose the known risks: Docker down, failed builds, Postgres not starting, services that cannot
    reach Postgres, ports held by other processes. Each finding comes with its fix."""
    from cdb_ops.checks import doctor as doc
    from cdb_ops.cli.session import open_read
    from cdb_ops.engine.docker import DockerEngine
    from cdb_ops.errors import CdbError, ExitCode

    s = open_read(ctx, "doctor", json_output, project_dir, "rebuild", profile, None)
    try:
        engine = DockerEngine()
    except CdbError as exc:
        s.out.findings(doc.engine_down(exc.message, exc.remedy))
        raise typer.Exit(int(exc.exit_code)) from None
    findings = doc.diagnose(engine, s.desired, s.project, s.redact)
    s.out.findings(findings)
    raise typer.Exit(int(ExitCode.CHECKS_FAILED) if any(f.verdict == "problem" for f in findings) else 0)
