"""`cdb-ops export compose`: the stack as a Compose file."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from cdb_ops.apply.secretfiles import write_secret_files
from cdb_ops.cli.options import FeedOpt, ProfileOpt, ProjectDir
from cdb_ops.cli.session import open_session
from cdb_ops.errors import Conflict
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
    base = output.resolve().parent if output else Path.cwd()
    # secrets reach the file only as file references, never as values; redacting keeps it so
    text = s.redact(render(s.desired, base, offline))
    write_secret_files(s.desired)  # the file refers to them: they must exist for compose to start
    if output is None:
        sys.stdout.write(text)
        return
    if output.exists() and not force:
        raise Conflict(f"{output} exists; not overwriting it", "pass --force, or choose another --output")
    output.write_text(text)
    s.out.message("export compose", f"wrote {output} ({len(s.desired.services)} services)")


def register(app: typer.Typer) -> None:
    export_app = typer.Typer(help="Write the stack in other formats.", no_args_is_help=True)
    export_app.command("compose")(export_compose)
    app.add_typer(export_app, name="export")
