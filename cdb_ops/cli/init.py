"""`cdb-ops init`: write .env from .env.example with freshly generated secrets."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Annotated

import typer

from cdb_ops.cli.options import JsonOpt, ProjectDir
from cdb_ops.cli.session import begin
from cdb_ops.errors import CdbError, Conflict
from cdb_ops.fsutil import atomic_write
from cdb_ops.load.project import find_project
from cdb_ops.load.settings import load_settings, render_env_from_example
from cdb_ops.redact import Redactor


def init(
    ctx: typer.Context,
    project_dir: ProjectDir = None,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite an existing .env (the old one is backed up).")
    ] = False,
    if_missing: Annotated[bool, typer.Option("--if-missing", help="Do nothing (exit 0) when .env exists.")] = False,
    json_output: JsonOpt = False,
) -> None:
    """Write .env from .env.example with freshly generated secrets (mode 0600)."""
    inv = begin(ctx, "init", json_output)
    project = find_project(project_dir)
    target = project.env_file
    backup = None
    if target.exists():
        if if_missing and not force:
            inv.redact = Redactor(load_settings(target).secret_values())  # an existing file must still be valid
            inv.renderer().message("init", f"{target} exists; kept it", path=str(target), backup=None)
            return
        if not force:
            raise Conflict(
                f"{target} already exists; not overwriting it",
                "keep it, or run `cdb-ops init --force` (the old file is backed up first)",
            )
        backup = target.with_name(f".env.bak-{datetime.now(UTC):%Y%m%dT%H%M%SZ}")
        backup.write_bytes(target.read_bytes())
        os.chmod(backup, 0o600)
    if not project.env_example.is_file():
        raise CdbError(f"{project.env_example} is missing", "restore it from git (`git checkout .env.example`)")
    atomic_write(target, render_env_from_example(project.env_example.read_text()), mode=0o600)
    inv.redact = Redactor(load_settings(target).secret_values())  # what we wrote must pass our own validation
    inv.renderer().message(
        "init",
        f"wrote {target} (mode 0600) with generated secrets"
        + (f"; previous file backed up to {backup.name}" if backup else ""),
        path=str(target),
        backup=str(backup) if backup else None,
    )
