"""The session: everything one invocation works with — project, settings, desired stack, the one
redactor and the one renderer — built once per command and handed down explicitly (no module globals).

Two kinds, by what the command does:
- `open_read` (status, logs, portfolio, trades, report, doctor, schema status, export): the project, the
  playbook and stack, the settings and the redactor, and the desired stack resolved from them. Nothing
  only a run needs: a build context that cannot be read does not stop `cdb-ops portfolio`.
- `open_run` (rebuild, run, down, plan, validate, backup, restore, schema migrate): the same, then the
  run's phases chosen, then what those phases will read checked — every build context hashed when they
  build or start images, every migration file read when they apply or validate the schema — so bad
  input is refused before the engine is contacted, not after four phases ran."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import typer

from cdb_ops.cli.invocation import Invocation, begin, invocation
from cdb_ops.cli.options import ProgressMode
from cdb_ops.errors import NeedsConfirmation
from cdb_ops.load.desired import DesiredStack, resolve
from cdb_ops.load.phases import needs_migrations, select_phases
from cdb_ops.load.playbook import load_runbook
from cdb_ops.load.project import Project, find_project
from cdb_ops.load.settings import Settings, load_settings
from cdb_ops.load.specs import RunbookSpec, StackSpec, needs_images
from cdb_ops.model.progress import Progress
from cdb_ops.redact import Redactor
from cdb_ops.report.render import Renderer


@dataclass(frozen=True)
class Session:
    command: str
    json: bool
    project: Project
    book: RunbookSpec
    stack: StackSpec
    settings: Settings
    desired: DesiredStack
    redact: Redactor
    out: Renderer

    def confirm(self, question: str, yes: bool, details: dict[str, object]) -> None:
        """Destructive steps need --yes or a person at a terminal; without either nothing happens (exit 7)."""
        if yes:
            return
        if sys.stdin.isatty() and not self.json:
            if typer.confirm(question, default=False):
                return
            raise NeedsConfirmation("not confirmed; nothing was changed", "answer y, or pass --yes", details=details)
        raise NeedsConfirmation(
            f"{question} — refusing without --yes (no terminal to ask); nothing was changed",
            "run it again with --yes once the details are what you want",
            details=details,
        )

    def progress(self, mode: ProgressMode, verbose: bool) -> Progress:
        from cdb_ops.report.progress import ConsoleProgress, JsonLinesProgress, QuietProgress

        if mode == ProgressMode.json:
            return JsonLinesProgress(self.redact)
        if mode == ProgressMode.none or (mode == ProgressMode.auto and self.json):
            return QuietProgress()
        return ConsoleProgress(self.redact, verbose=verbose)


def open_read(
    ctx: typer.Context,
    command: str,
    json_output: bool,
    project_dir: Path | None,
    playbook: str = "rebuild",
    profiles: list[str] | None = None,
    feed: str | None = None,
) -> Session:
    """What a command that only reads needs: everything the user wrote that it reads, validated."""
    inv = begin(ctx, command, json_output)
    project = find_project(project_dir)
    book, stack = load_runbook(project.playbook(playbook))
    settings = load_settings(project.env_file, stack_secrets(stack))
    inv.redact = Redactor(settings.secret_values())
    out = inv.renderer()
    for warning in settings.warnings:
        out.warn(warning)
    desired = resolve(stack, settings, project, profiles, feed)
    return Session(command, json_output, project, book, stack, settings, desired, inv.redact, out)


def open_run(
    ctx: typer.Context,
    command: str,
    json_output: bool,
    project_dir: Path | None,
    playbook: str = "rebuild",
    profiles: list[str] | None = None,
    feed: str | None = None,
    phases: list[str] | None = None,
) -> Session:
    """What a command that changes or checks the stack needs: the read session, then everything the run
    will read — its phases (`--phase nosuch` is a usage error), the build contexts it builds from and the
    migrations it applies — refused now, before the engine is even contacted."""
    s = open_read(ctx, command, json_output, project_dir, playbook, profiles, feed)
    chosen = select_phases(s.book, phases)
    if needs_images(chosen):
        s.desired.hash_builds()  # an unreadable build context is refused now too
    # (a project without schema/ is told so by the schema phase)
    if needs_migrations(chosen) and os.path.lexists(s.project.schema_dir):
        from cdb_ops.db.migrations import discover

        discover(s.project.schema_dir)  # a bad migration is refused now, not after four phases ran
    return s


def stack_secrets(stack: StackSpec) -> list[str]:
    """Every key a service lists under `secrets:` — each is treated as a secret (redacted, checked)."""
    return [k for svc in stack.services.values() for k in svc.secrets]


__all__ = ["Invocation", "Session", "begin", "invocation", "open_read", "open_run", "stack_secrets"]
