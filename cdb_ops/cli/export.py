"""`cdb-ops export compose`: the stack as a Compose file (Compose v2) or a stack file (`docker stack deploy`)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cdb_ops.apply.secretfiles import write_secret_files
from cdb_ops.cli.options import FeedOpt, ProfileOpt, ProjectDir
from cdb_ops.errors import Conflict, UsageError
from cdb_ops.fsutil import atomic_write
from cdb_ops.model.labels import LABEL_IMAGE_SERVICE, LABEL_IMAGE_SYSTEM
from cdb_ops.views.export import TARGETS, build_jobs
from cdb_ops.views.export_file import render

if TYPE_CHECKING:  # the session (the desired stack: pydantic, yaml) is opened when the command runs, not for --help
    from cdb_ops.cli.session import Session


def export_compose(
    ctx: typer.Context,
    project_dir: ProjectDir = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write (default: stdout).")] = None,
    target: Annotated[
        str,
        typer.Option(
            "--target",
            help="compose: for `docker compose up -d --wait` (Compose v2); "
            "swarm: for `docker stack deploy --resolve-image never`.",
        ),
    ] = "compose",
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
    build: Annotated[
        bool,
        typer.Option(
            "--build",
            help="Build and tag the images the file refers to (the services', the migrate image and, with "
            "--offline, the fallbacks) on this engine first; a swarm never builds.",
        ),
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing output file.")] = False,
) -> None:
    """The stack as a Compose file: health checks, migrations as a one-shot service, secrets as files.
    What the target cannot express is listed on stderr with what was done instead."""
    if target not in TARGETS:
        raise UsageError(f"--target {target!r} is not a target", f"use one of: {', '.join(TARGETS)}")
    from cdb_ops.cli.session import open_read

    s = open_read(ctx, "export compose", False, project_dir, "rebuild", profile, feed)
    out_file = Path(os.path.abspath(output)) if output else None
    if out_file is not None:
        check_output(out_file, force)  # before anything is written: a refusal leaves no .cdb/secrets behind
    base = out_file.parent if out_file else Path.cwd()
    text, notes = render(s.desired, base, offline, target)
    # secrets reach the file only as file references, never as values; redacting keeps it so
    text = s.redact(text)
    if build:
        build_images(s, offline)
    write_secret_files(s.desired)  # the file refers to them: they must exist for compose to start
    for note in notes:
        sys.stderr.write(f"export compose ({target}): {s.redact(note)}\n")
    if out_file is None:
        sys.stdout.write(text)
        return
    atomic_write(out_file, text, mode=0o644)  # no secret in it (see above): readable like any Compose file
    s.out.message("export compose", f"wrote {out_file} ({target}, {len(s.desired.services)} services)")


def build_images(s: Session, offline: bool) -> None:
    from cdb_ops.engine.docker import DockerEngine

    engine = DockerEngine()
    for job in build_jobs(s.desired, offline):
        sys.stderr.write(f"export compose: building {job.tag} from {job.context / job.dockerfile}\n")
        labels = {LABEL_IMAGE_SYSTEM: s.desired.system, LABEL_IMAGE_SERVICE: job.service}
        engine.build(job.context, job.dockerfile, job.tag, labels, {}, False)


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
