"""`cdb-ops status`: one table of the stack's containers, once or refreshed (--watch)."""

from __future__ import annotations

import sys
import time
from typing import Annotated, Any

import typer

from cdb_ops.cli.options import JsonOpt, ProfileOpt, ProjectDir


def status(
    ctx: typer.Context,
    project_dir: ProjectDir = None,
    profile: ProfileOpt = None,
    json_output: JsonOpt = False,
    watch: Annotated[bool, typer.Option("--watch", help="Refresh every --interval seconds until Ctrl-C.")] = False,
    interval: Annotated[float, typer.Option("--interval", min=0.5, help="Seconds between refreshes.")] = 2.0,
    disk: Annotated[
        bool, typer.Option("--disk", help="Measure the disk use now (volumes, logs, tables) and keep the sample.")
    ] = False,
) -> None:
    """One table of the stack's containers: state, health, uptime, restarts, ports, CPU, memory, image;
    under it the last rebuild, each book's trading state, the disk and the backups."""
    from cdb_ops.checks.backups import backup_summary
    from cdb_ops.checks.notify import notify_summary
    from cdb_ops.cli.session import open_read
    from cdb_ops.engine.docker import DockerEngine
    from cdb_ops.load.diskhistory import load_history
    from cdb_ops.load.lastrun import load_last_run
    from cdb_ops.load.outline import save_outline
    from cdb_ops.views.status import books_conninfo, disk_summary, gather, outline_of, trading_in_background

    s = open_read(ctx, "status", json_output, project_dir, "rebuild", profile, None)
    out = s.out
    outline = outline_of(s.desired, s.settings)
    if not s.settings.warnings:  # (the quick path shows no warnings: with one, status always runs in full)
        save_outline(s.project, "rebuild", profile, outline)
    engine = DockerEngine()
    if disk:  # /system/df walks every volume: only when asked (validate and rebuild sample too)
        from cdb_ops.checks.disk import engine_api, take_sample
        from cdb_ops.load.diskhistory import append_sample

        sample = take_sample(engine_api(engine), engine.info().local, s.desired, s.settings)
        append_sample(s.project.state_dir, sample.to_dict())

    def disk_now() -> dict[str, Any] | None:
        return disk_summary(load_history(s.project.state_dir))

    def backups_now() -> dict[str, Any]:
        return backup_summary(s.project.root, s.desired.system, s.settings.values)

    def trading_now() -> dict[str, Any]:
        return trading_in_background(books_conninfo(outline, s.settings.values))()

    if not watch or json_output:
        trading = trading_in_background(books_conninfo(outline, s.settings.values))  # alongside the engine calls
        rows = gather(engine, outline)
        out.status(rows, load_last_run(s.project), disk_now(), backups_now(), trading(), notify_summary(rows))
        return
    from rich.live import Live

    def view() -> object:
        rows = gather(engine, outline)
        return out.status_view(
            rows, load_last_run(s.project), disk_now(), backups_now(), trading_now(), notify_summary(rows)
        )

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
