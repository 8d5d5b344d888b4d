"""`cdb-ops status`: one table of the stack's containers, once or refreshed (--watch)."""

from __future__ import annotations

import sys
import time
from typing import Annotated

import typer

from cdb_ops.cli.options import JsonOpt, ProfileOpt, ProjectDir
from cdb_ops.cli.session import open_read
from cdb_ops.engine.docker import DockerEngine
from cdb_ops.load.lastrun import load_last_run
from cdb_ops.load.outline import outline_key, save_outline
from cdb_ops.views.status import gather, outline_of


def status(
    ctx: typer.Context,
    project_dir: ProjectDir = None,
    profile: ProfileOpt = None,
    json_output: JsonOpt = False,
    watch: Annotated[bool, typer.Option("--watch", help="Refresh every --interval seconds until Ctrl-C.")] = False,
    interval: Annotated[float, typer.Option("--interval", min=0.5, help="Seconds between refreshes.")] = 2.0,
) -> None:
    """One table of the stack's containers: state, health, uptime, restarts, ports, CPU, memory, image."""
    s = open_read(ctx, "status", json_output, project_dir, "rebuild", profile, None)
    out = s.out
    outline = outline_of(s.desired, s.settings)
    if not s.settings.warnings:  # (the quick path shows no warnings: with one, status always runs in full)
        save_outline(s.project, outline_key(s.project, "rebuild", profile), outline)
    engine = DockerEngine()
    if not watch or json_output:
        out.status(gather(engine, outline), load_last_run(s.project))
        return
    from rich.live import Live

    def view() -> object:
        return out.status_view(gather(engine, outline), load_last_run(s.project))

    try:
        if not out.console.is_terminal:  # a pipe or a log: one table per refresh, nothing redrawn
            while True:
                out.console.print(view())
                sys.stdout.flush()
                time.sleep(interval)
        with Live(view(), console=out.console, auto_refresh=False) as live:  # type: ignore[arg-type]
            while True:
                time.sleep(interval)
                live.update(view(), refresh=True)  # type: ignore[arg-type]
    except KeyboardInterrupt:  # the way to leave --watch: not an error
        return
