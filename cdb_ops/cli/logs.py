"""`cdb-ops logs`: the stack's logs merged by time, one colour per service."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

from cdb_ops.cli.options import ProfileOpt, ProjectDir
from cdb_ops.errors import UsageError


def parse_since(value: str | None) -> datetime | None:
    """'10m', '2h', '30s' ago, or an ISO time."""
    from cdb_ops.load.specs import parse_duration

    if not value:
        return None
    try:
        return datetime.now(UTC) - timedelta(seconds=parse_duration(value))
    except OverflowError:
        raise UsageError(
            f"--since {value!r} reaches back before the year 1", "write e.g. --since 10m or --since 2h"
        ) from None
    except ValueError:
        pass
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(
            f"--since {value!r} is neither a duration nor a time",
            "write e.g. --since 10m, --since 2h or --since 2026-11-24T09:00:00",
        ) from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def every_profile(project_dir: Path | None) -> list[str]:
    """Every profile of the stack: logs shows whatever of the stack exists."""
    from cdb_ops.load.playbook import load_stack
    from cdb_ops.load.project import find_project

    return sorted(load_stack(find_project(project_dir).stack_file).profiles - {"core"})


def logs(
    ctx: typer.Context,
    services: Annotated[list[str] | None, typer.Argument(help="Services (e.g. signal risk); default: all.")] = None,
    project_dir: ProjectDir = None,
    errors: Annotated[
        bool, typer.Option("--errors", help="Only ERROR lines (and database-connection errors).")
    ] = False,
    since: Annotated[str | None, typer.Option("--since", help="Only lines since: 10m, 2h, or an ISO time.")] = None,
    tail: Annotated[int, typer.Option("--tail", min=1, help="Lines per service (without --since).")] = 200,
    follow_: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines until Ctrl-C.")] = False,
    profile: ProfileOpt = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="JSON: one document, or JSON lines with --follow.")
    ] = False,
) -> None:
    """The stack's logs merged by time, one colour per service."""
    from rich.markup import escape

    from cdb_ops.cli.session import open_read
    from cdb_ops.engine.docker import DockerEngine
    from cdb_ops.views import logs as logmod

    s = open_read(
        ctx, "logs", json_output, project_dir, "rebuild", profile or ["core", *every_profile(project_dir)], None
    )
    out, redact = s.out, s.redact
    since_t = parse_since(since)  # every argument is checked before the engine is asked
    chosen = logmod.select(s.desired, services or [])
    colour = {name: logmod.COLOURS[i % len(logmod.COLOURS)] for i, name in enumerate(s.desired.services)}
    width = max(len(name) for name in chosen)
    engine = DockerEngine()

    def show(line: logmod.LogLine) -> None:
        if json_output:
            sys.stdout.write(redact(logmod.as_json_line(line)) + "\n")
            sys.stdout.flush()
            return
        c = colour[line.service]
        out.console.print(f"[{c}]{line.service:<{width}}[/{c}] | {escape(redact(line.text))}", soft_wrap=True)

    if follow_:
        try:
            for line in logmod.follow(engine, chosen, since_t, errors):
                show(line)
        except KeyboardInterrupt:
            return
        return
    lines = logmod.merged(engine, chosen, since_t, tail if since_t is None else 1_000_000, errors)
    if json_output:
        out.document("logs", {"services": list(chosen), "errors_only": errors, "lines": [ln.to_dict() for ln in lines]})
        return
    for line in lines:
        show(line)
