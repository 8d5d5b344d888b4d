"""`cdb-ops rebuild` and `cdb-ops run PLAYBOOK`: carry out a phase playbook's plan."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cdb_ops.cli.options import (
    FeedOpt,
    JsonOpt,
    PhaseOpt,
    ProfileOpt,
    ProgressMode,
    ProgressOpt,
    ProjectDir,
    VerboseOpt,
    YesOpt,
)

if TYPE_CHECKING:
    from cdb_ops.apply.context import RunOptions
    from cdb_ops.cli.session import Session


def run_playbook(
    ctx: typer.Context,
    command: str,
    playbook: str,
    project_dir: Path | None,
    profile: list[str] | None,
    feed: str | None,
    phase: list[str] | None,
    options: RunOptions,
    json_output: bool,
    progress: ProgressMode,
    verbose: bool,
    wipe_flag: str = "--wipe-data",
    outline_for: str | None = None,
) -> None:
    """`outline_for`: the playbook whose quick path (cli/down_plain.py: `down`) gets the stack's outline
    cached by this run, so its next run need not load the playbooks."""
    from cdb_ops.apply.runner import execute
    from cdb_ops.cli.session import open_run
    from cdb_ops.engine.docker import DockerEngine
    from cdb_ops.errors import CdbError
    from cdb_ops.plan.observe import observe
    from cdb_ops.plan.planner import plan_stack

    s = open_run(ctx, command, json_output, project_dir, playbook, profile, feed, phase)
    if outline_for is not None and not (profile or feed or s.settings.warnings):
        _cache_outline(s, playbook, outline_for)
    engine = DockerEngine()
    if options.wipe_data:
        # the planner names what --wipe-data would delete; the run plans again under its lock
        observed = observe(engine, s.desired, host_ports=False)
        planned = plan_stack(s.desired, observed, options.plan_options(s.project, check_ports=False))
        doomed = [c.name for c in planned.removals if c.resource == "volume" and c.action == "remove"]
        s.confirm(
            f"{wipe_flag} deletes the data volumes {', '.join(doomed) or '(none exist)'} after backing them up into "
            f"{s.project.root / 'backups'}. Continue?",
            options.yes,
            {"would_delete_volumes": doomed, "backup_dir": str(s.project.root / "backups")},
        )
    result = execute(
        command=command,
        engine=engine,
        desired=s.desired,
        settings=s.settings,
        project=s.project,
        book=s.book,
        progress=s.progress(progress, verbose),
        options=options,
        only=phase,
        redact=s.redact,
    )
    s.out.run(result)
    if result.error and not json_output:
        err = CdbError(result.error.get("message", ""), result.error.get("remedy", ""))
        s.out.error(err, command)
    raise typer.Exit(result.exit_code)


def _cache_outline(s: Session, playbook: str, target: str) -> None:
    """Cache the outline of `target`'s stack for its quick path — from this session when `target` is this
    run's playbook or resolves the same stack file (`rebuild` and `down` do, by default), with `target`'s
    phases. (The quick path shows no warnings, takes no profile or feed: it runs in full then.)"""
    from dataclasses import replace

    from cdb_ops.errors import CdbError
    from cdb_ops.load.outline import load_outline, save_outline
    from cdb_ops.load.playbook import load_runbook
    from cdb_ops.views.status import outline_of

    if load_outline(s.project, target, None) is not None:
        return  # cached from these very inputs: every later run (a no-op rebuild) neither parses nor writes
    book = s.book
    if target != playbook:
        try:
            book, _ = load_runbook(s.project.playbook(target))
        except CdbError:
            return  # no such playbook here, or a broken one: its own run reports it
        if book.stack != s.book.stack:
            return
    phases = tuple((p.name, p.kind) for p in book.phases)
    save_outline(s.project, target, None, replace(outline_of(s.desired, s.settings), playbook=book.name, phases=phases))


def rebuild(
    ctx: typer.Context,
    project_dir: ProjectDir = None,
    clean: Annotated[
        bool, typer.Option("--clean", help="Remove the stack's containers and network first (data volumes are kept).")
    ] = False,
    wipe_data: Annotated[
        bool,
        typer.Option(
            "--wipe-data",
            help="Also delete the data volumes — after an automatic backup (pg_dump and an "
            "archive of each volume into backups/) and a confirmation (--yes for scripts).",
        ),
    ] = False,
    profile: ProfileOpt = None,
    feed: FeedOpt = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Rebuild images without Docker's layer cache.")] = False,
    phase: PhaseOpt = None,
    remove_orphans: Annotated[
        bool, typer.Option("--remove-orphans", help="Remove stack containers the playbook no longer selects.")
    ] = False,
    json_output: JsonOpt = False,
    yes: YesOpt = False,
    progress: ProgressOpt = ProgressMode.auto,
    verbose: VerboseOpt = False,
) -> None:
    """Converge the whole stack: cleanup, network, volumes, postgres + schema, redis, builds, start.

    Idempotent: on a converged stack nothing is recreated or restarted. Re-run to finish an
    interrupted run."""
    from cdb_ops.apply.context import RunOptions

    run_playbook(
        ctx,
        "rebuild",
        "rebuild",
        project_dir,
        profile,
        feed,
        phase,
        RunOptions(
            clean=clean or wipe_data, wipe_data=wipe_data, remove_orphans=remove_orphans, no_cache=no_cache, yes=yes
        ),
        json_output,
        progress,
        verbose,
        outline_for="down",  # the usual next command after a rebuild, whenever it comes, starts at once
    )


def run(
    ctx: typer.Context,
    playbook: Annotated[str, typer.Argument(help="A playbook name in playbooks/ (e.g. rebuild) or a path.")],
    project_dir: ProjectDir = None,
    profile: ProfileOpt = None,
    feed: FeedOpt = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Rebuild images without the layer cache.")] = False,
    phase: PhaseOpt = None,
    json_output: JsonOpt = False,
    yes: YesOpt = False,
    progress: ProgressOpt = ProgressMode.auto,
    verbose: VerboseOpt = False,
) -> None:
    """Run any phase playbook (rebuild is one)."""
    from cdb_ops.apply.context import RunOptions

    run_playbook(
        ctx,
        "run",
        playbook,
        project_dir,
        profile,
        feed,
        phase,
        RunOptions(no_cache=no_cache, yes=yes),
        json_output,
        progress,
        verbose,
    )
