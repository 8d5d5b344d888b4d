"""`cdb-ops down`: the stack stopped and removed — its containers and network — with every volume kept
(unless --volumes: backed up and verified first, confirmed, then deleted). The `down` playbook is one
cleanup phase, so the plan, the ownership rule and the backups are the ones rebuild uses."""

from __future__ import annotations

from typing import Annotated

import typer

from cdb_ops.cli.options import JsonOpt, ProgressMode, ProgressOpt, ProjectDir, VerboseOpt, YesOpt
from cdb_ops.cli.rebuild import run_playbook


def down(
    ctx: typer.Context,
    project_dir: ProjectDir = None,
    volumes: Annotated[
        bool,
        typer.Option(
            "--volumes",
            help="Also delete the data volumes — after a verified backup into backups/ (pg_dump and an "
            "archive of each volume from stopped databases) and a confirmation (--yes for scripts).",
        ),
    ] = False,
    json_output: JsonOpt = False,
    yes: YesOpt = False,
    progress: ProgressOpt = ProgressMode.auto,
    verbose: VerboseOpt = False,
) -> None:
    """Stop the stack (reverse dependency order, graceful: each service gets SIGTERM and time to finish
    in-flight work) and remove its containers and network. Volumes stay; `rebuild` brings back the same
    data. Only resources labelled with the stack's system are touched."""
    from cdb_ops.apply.context import RunOptions

    run_playbook(
        ctx,
        "down",
        "down",
        project_dir,
        None,
        None,
        None,
        RunOptions(
            clean=True,
            wipe_data=volumes,
            remove_orphans=True,
            yes=yes,
            requested_by=("down", "down --volumes"),
        ),
        json_output,
        progress,
        verbose,
        wipe_flag="--volumes",
        outline_for=None if volumes else "down",
    )
