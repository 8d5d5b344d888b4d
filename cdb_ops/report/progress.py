"""Progress events of a run (`model.progress.Progress`): phases, steps, builds, health waits. Rendered
on stderr (humans) or as JSON lines (assistants, `--progress json`), so stdout keeps only the result."""

from __future__ import annotations

import json
import sys
import time
from typing import TYPE_CHECKING, Any, TextIO

from cdb_ops.redact import Redactor
from cdb_ops.report.styles import ACTION_STYLE

if TYPE_CHECKING:
    from rich.console import Console


class ConsoleProgress:
    def __init__(self, redact: Redactor, console: Console | None = None, verbose: bool = False):
        from rich.console import Console  # (here: the JSON and quiet progress, and the quick `down`, need no rich)
        from rich.markup import escape

        self._escape = escape
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
        extra = f" [dim]— {self._escape(self.redact(detail))}[/dim]" if detail else ""
        self.console.print(f"  [{style}]{action:<8}[/{style}] {resource} {name}{extra}{took}")

    def line(self, source: str, text: str) -> None:
        if self.verbose:
            self.console.print(f"    [dim]{source}: {self.redact(text)}[/dim]", markup=False)

    def note(self, text: str) -> None:
        self.console.print(f"  [yellow]![/yellow] {self._escape(self.redact(text))}")


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
