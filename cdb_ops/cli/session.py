"""The session: everything one invocation works with — project, settings, desired stack, the one
redactor and the one renderer — built once per command and handed down explicitly (no module globals).

`Invocation` is what `main()` shares with the running command through click's context object, so an
error escaping the command is still shown the way the command would (JSON or not, redacted)."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import typer

from cdb_ops.apply.runner import select_phases
from cdb_ops.cli.options import ProgressMode
from cdb_ops.db.migrations import discover
from cdb_ops.errors import NeedsConfirmation
from cdb_ops.load.desired import DesiredStack, resolve
from cdb_ops.load.playbook import load_runbook
from cdb_ops.load.project import Project, find_project
from cdb_ops.load.settings import Settings, load_settings
from cdb_ops.load.specs import RunbookSpec, StackSpec, needs_images
from cdb_ops.model.progress import Progress
from cdb_ops.redact import Redactor
from cdb_ops.report.progress import ConsoleProgress, JsonLinesProgress, QuietProgress
from cdb_ops.report.render import Renderer


@dataclass
class Invocation:
    """The running command as far as `main()`'s error handler needs to know it."""

    command: str = "cdb-ops"
    json: bool = False
    redact: Redactor = field(default_factory=Redactor)

    def renderer(self) -> Renderer:
        return Renderer(self.json, self.redact)


def invocation(ctx: typer.Context) -> Invocation:
    obj = ctx.find_root().obj
    if not isinstance(obj, Invocation):  # called without main() (e.g. typer's test runner)
        obj = ctx.find_root().obj = Invocation()
    return obj


def begin(ctx: typer.Context, command: str, json_output: bool) -> Invocation:
    """Name the command before anything can fail, so its errors are rendered as it would render them."""
    inv = invocation(ctx)
    inv.command, inv.json = command, json_output
    return inv


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
        if mode == ProgressMode.json:
            return JsonLinesProgress(self.redact)
        if mode == ProgressMode.none or (mode == ProgressMode.auto and self.json):
            return QuietProgress()
        return ConsoleProgress(self.redact, verbose=verbose)


def open_session(
    ctx: typer.Context,
    command: str,
    json_output: bool,
    project_dir: Path | None,
    playbook: str = "rebuild",
    profiles: list[str] | None = None,
    feed: str | None = None,
    phases: list[str] | None = None,
) -> Session:
    """Everything the user wrote — playbooks, .env, schema/ and the command's own arguments — validated
    before the engine is even contacted."""
    inv = begin(ctx, command, json_output)
    project = find_project(project_dir)
    book, stack = load_runbook(project.playbook(playbook))
    chosen = select_phases(book, phases)  # `--phase nosuch` is a usage error, not something the engine finds out
    settings = load_settings(project.env_file, stack_secrets(stack))
    inv.redact = Redactor(settings.secret_values())
    out = inv.renderer()
    for warning in settings.warnings:
        out.warn(warning)
    desired = resolve(stack, settings, project, profiles, feed)
    if needs_images(chosen):
        desired.hash_builds()  # an unreadable build context is refused now too
    if os.path.lexists(project.schema_dir):  # (a project without one is told so by the schema phase)
        discover(project.schema_dir)  # a bad migration is refused now, not after four phases ran
    return Session(command, json_output, project, book, stack, settings, desired, inv.redact, out)


def stack_secrets(stack: StackSpec) -> list[str]:
    """Every key a service lists under `secrets:` — each is treated as a secret (redacted, checked)."""
    return [k for svc in stack.services.values() for k in svc.secrets]
