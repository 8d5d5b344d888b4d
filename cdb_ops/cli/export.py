"""`cdb-ops export compose`: the stack as a Compose file."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from cdb_ops.apply.secretfiles import write_secret_files
from cdb_ops.cli.options import FeedOpt, ProfileOpt, ProjectDir
from cdb_ops.cli.session import open_session
from cdb_ops.errors import Conflict, UsageError
from cdb_ops.fsutil import atomic_write
from cdb_ops.views.export import render


def export_compose(
    ctx: typer.Context,
    project_dir: ProjectDir = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write (default: stdout).")] = None,
    profile: ProfileOpt = None,
    feed: FeedOpt = None,
    offline: Annotated[
        bool,
        typer.Option(
            "--offline",
            help="Use the local fallback builds instead of pulling "
            "postgres/redis/prometheus (for machines without a registry).",
        ),
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing output file.")] = False,
) -> None:
    """The stack as a Compose file (health checks, depends_on conditions, secrets as files)."""
    s = open_session(ctx, "export compose", False, project_dir, "rebuild", profile, feed)
    target = Path(os.path.abspath(output)) if output else None
    if target is not None:
        check_output(target, force)  # before anything is written: a refusal leaves no .cdb/secrets behind
    base = target.parent if target else Path.cwd()
    # secrets reach the file only as file references, never as values; redacting keeps it so
    text = s.redact(render(s.desired, base, offline))
    write_secret_files(s.desired)  # the file refers to them: they must exist for compose to start
    if target is None:
        sys.stdout.write(text)
        return
    atomic_write(target, text, mode=0o644)  # no secret in it (see above): readable like any Compose file
    s.out.message("export compose", f"wrote {target} ({len(s.desired.services)} services)")


def check_output(target: Path, force: bool) -> None:
    """--output names a file we may write: its folder exists, it is not a folder, --force to replace it."""
    if not target.parent.is_dir():
        raise UsageError(
            f"--output {target}: the folder {target.parent} does not exist",
            f"create it first (mkdir -p {target.parent}) or choose another --output",
        )
    if os.path.isdir(target):
        raise UsageError(f"--output {target} is a folder", f"name a file, e.g. --output {target / 'compose.yaml'}")
    if os.path.lexists(target) and not force:
        raise Conflict(f"{target} exists; not overwriting it", "pass --force, or choose another --output")
    if os.path.lexists(target) and not os.path.isfile(target):
        raise UsageError(f"--output {target} is not a regular file", "choose another --output")


def register(app: typer.Typer) -> None:
    export_app = typer.Typer(help="Write the stack in other formats.", no_args_is_help=True)
    export_app.command("compose")(export_compose)
    app.add_typer(export_app, name="export")
