"""`cdb-ops init`: write .env from .env.example with freshly generated secrets."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Annotated

import typer

from cdb_ops.cli.options import JsonOpt, ProjectDir
from cdb_ops.cli.session import begin, stack_secrets
from cdb_ops.errors import Conflict
from cdb_ops.fsutil import atomic_write, read_bytes, read_text
from cdb_ops.load.playbook import load_stack
from cdb_ops.load.project import find_project
from cdb_ops.load.settings import check_settings, load_settings, parse_env_text, render_env_from_example
from cdb_ops.redact import Redactor

EXAMPLE_FIX = "restore it from git (`git checkout .env.example`): init fills its secrets with fresh values"


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
    secrets = stack_secrets(load_stack(project.stack_file))
    old: bytes | None = None
    if os.path.lexists(target):
        if if_missing and not force:
            inv.redact = Redactor(load_settings(target, secrets).secret_values())  # it must still be valid
            inv.renderer().message("init", f"{target} exists; kept it", path=str(target), backup=None)
            return
        if not force:
            raise Conflict(
                f"{target} already exists; not overwriting it",
                "keep it, or run `cdb-ops init --force` (the old file is backed up first)",
            )
        old = read_bytes(target, ".env file")  # a folder, FIFO or loop is refused here, before any write
    # everything is checked before anything is written: a refusal leaves .env (and its backup) untouched
    example = read_text(project.env_example, ".env.example file", missing_fix=EXAMPLE_FIX)
    text = render_env_from_example(example, secrets)
    # every secret is freshly generated, so what can still be wrong is a value to fix in .env.example
    settings = check_settings(parse_env_text(text, project.env_example), project.env_example, secrets)
    inv.redact = Redactor(settings.secret_values())
    backup = None
    if old is not None:
        backup = target.with_name(f".env.bak-{datetime.now(UTC):%Y%m%dT%H%M%SZ}")
        atomic_write(backup, old, mode=0o600)
    atomic_write(target, text, mode=0o600)
    inv.renderer().message(
        "init",
        f"wrote {target} (mode 0600) with generated secrets"
        + (f"; previous file backed up to {backup.name}" if backup else ""),
        path=str(target),
        backup=str(backup) if backup else None,
    )
