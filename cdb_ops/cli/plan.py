"""`cdb-ops plan`: what `rebuild` would change — the very plan `rebuild` carries out. Changes nothing."""

from __future__ import annotations

from typing import Annotated

import typer

from cdb_ops.cli.options import FeedOpt, JsonOpt, ProfileOpt, ProjectDir


def plan(
    ctx: typer.Context,
    project_dir: ProjectDir = None,
    profile: ProfileOpt = None,
    feed: FeedOpt = None,
    remove_orphans: Annotated[bool, typer.Option("--remove-orphans", help="Plan to remove orphans.")] = False,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Plan rebuilding every built image.")] = False,
    json_output: JsonOpt = False,
) -> None:
    """Show what `rebuild` would change, resource by resource. Changes nothing."""
    from cdb_ops.apply.context import RunOptions
    from cdb_ops.cli.session import open_run
    from cdb_ops.engine.docker import DockerEngine
    from cdb_ops.errors import ExitCode
    from cdb_ops.plan.observe import observe
    from cdb_ops.plan.planner import plan_stack

    s = open_run(ctx, "plan", json_output, project_dir, "rebuild", profile, feed)
    observed = observe(DockerEngine(), s.desired)
    options = RunOptions(remove_orphans=remove_orphans, no_cache=no_cache).plan_options(s.project)
    result = plan_stack(s.desired, observed, options)
    s.out.plan(result, list(s.desired.profiles), s.desired.feed)
    if result.conflicts:
        raise typer.Exit(int(ExitCode.CONFLICT))
