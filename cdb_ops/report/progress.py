"""Progress events of a run (`model.progress.Progress`): phases, steps, builds, health waits. Rendered
on stderr (humans) or as JSON lines (assistants, `--progress json`), so stdout keeps only the result."""

from __future__ import annotations

import json
import sys
import time
from typing import Any, TextIO

from rich.console import Console
from rich.markup import escape

from cdb_ops.redact import Redactor

ACTION_STYLE = {
    "create": "green",
    "recreate": "yellow",
    "rotate": "yellow",
    "start": "green",
    "remove": "red",
    "build": "cyan",
    "pull": "cyan",
    "ok": "dim",
    "orphan": "magenta",
    "conflict": "bold red",
    "wait": "blue",
    "migrate": "cyan",
    "pass": "green",
    "warn": "yellow",
    "fail": "bold red",
    "skip": "dim",
    "drain": "yellow",
    "restore": "green",
    "keep": "dim",
    "rollback": "bold yellow",
}


class ConsoleProgress:
    def __init__(self, redact: Redactor, console: Console | None = None, verbose: bool = False):
        self.console = console or Console(stderr=True, highlight=False, emoji=False)
        self.redact = redact
        self.verbose = verbose

    def phase(self, name: str, kind: str) -> None:
        self.console.print(f"[bold]▶ {name}[/bold] [dim]({kind})[/dim]")

    def step(
        self, phase: str, resource: str, name: str, action: str, detail: str = "", seconds: float | None = None
    ) -> None:
        style = ACTION_STYLE.get(action, "white")
        took = f" [dim]{seconds:.1f}s[/dim]" if seconds is not None and seconds >= 0.05 else ""
        extra = f" [dim]— {escape(self.redact(detail))}[/dim]" if detail else ""
        self.console.print(f"  [{style}]{action:<8}[/{style}] {resource} {name}{extra}{took}")

    def line(self, source: str, text: str) -> None:
        if self.verbose:
            self.console.print(f"    [dim]{source}: {self.redact(text)}[/dim]", markup=False)

    def note(self, text: str) -> None:
        self.console.print(f"  [yellow]![/yellow] {escape(self.redact(text))}")


class JsonLinesProgress:
    """One JSON object per line on stderr: {"ts", "event", ...}."""

    def __init__(self, redact: Redactor, stream: TextIO | None = None):
        self.redact = redact
        self.stream = stream or sys.stderr

    def _emit(self, event: str, **fields: Any) -> None:
        payload = {"ts": round(time.time(), 3), "event": event, **fields}
        self.stream.write(self.redact(json.dumps(payload)) + "\n")
        self.stream.flush()

    def phase(self, name: str, kind: str) -> None:
        self._emit("phase", phase=name, kind=kind)

    def step(
        self, phase: str, resource: str, name: str, action: str, detail: str = "", seconds: float | None = None
    ) -> None:
        self._emit(
            "step",
            phase=phase,
            resource=resource,
            name=name,
            action=action,
            detail=detail,
            seconds=None if seconds is None else round(seconds, 3),
        )

    def line(self, source: str, text: str) -> None:
        self._emit("line", source=source, text=text)

    def note(self, text: str) -> None:
        self._emit("note", text=text)


class QuietProgress:
    def phase(self, name: str, kind: str) -> None:
        pass

    def step(
        self, phase: str, resource: str, name: str, action: str, detail: str = "", seconds: float | None = None
    ) -> None:
        pass

    def line(self, source: str, text: str) -> None:
        pass

    def note(self, text: str) -> None:
        pass
