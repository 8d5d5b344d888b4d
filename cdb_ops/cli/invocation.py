"""The running command as far as `run()`'s error handler needs to know it: its name, whether it
answers in JSON, and its redactor. Imported by the root before any command module, so it stays light
(the renderer, and with it rich, is imported only when an error is shown)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cdb_ops.redact import Redactor

if TYPE_CHECKING:
    from cdb_ops.report.render import Renderer


@dataclass
class Invocation:
    """Shared by `run()` and the running command through click's context object, so an error escaping
    the command is still shown the way the command would (JSON or not, redacted)."""

    command: str = "cdb-ops"
    json: bool = False
    redact: Redactor = field(default_factory=Redactor)

    def renderer(self) -> Renderer:
        from cdb_ops.report.render import Renderer

        return Renderer(self.json, self.redact)


def invocation(ctx: Any) -> Invocation:
    obj = ctx.find_root().obj
    if not isinstance(obj, Invocation):  # called without run() (e.g. typer's test runner)
        obj = ctx.find_root().obj = Invocation()
    return obj


def begin(ctx: Any, command: str, json_output: bool) -> Invocation:
    """Name the command before anything can fail, so its errors are rendered as it would render them."""
    inv = invocation(ctx)
    inv.command, inv.json = command, json_output
    return inv
