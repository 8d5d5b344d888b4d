"""A run's progress and result without rich, for the quick `down`: what `ConsoleProgress` prints on stderr
and `Renderer.run` on stdout, byte for byte (report/plain.py lays them out). A line or table it cannot
print exactly as rich would is printed through rich after all — imported only then — so the output is
the same either way; tests/unit/test_run_text.py compares the two."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from cdb_ops.model.results import RunResult
from cdb_ops.redact import Redactor
from cdb_ops.report.plain import Cell, console_shape, stdout_shape, styled_line, table_lines
from cdb_ops.report.styles import ACTION_STYLE

if TYPE_CHECKING:
    from cdb_ops.report.progress import ConsoleProgress

RUN_COLUMNS = ("phase", "resource", "name", "action", "detail", "time")


def _markup_free(*texts: str) -> bool:
    """rich reads these as markup (ConsoleProgress and Renderer.run do not escape them): "[" could be a tag."""
    return not any("[" in t for t in texts)


class PlainProgress:
    """`Progress` on stderr as `ConsoleProgress` prints it."""

    def __init__(self, redact: Redactor) -> None:
        self.redact = redact
        self._shape = console_shape(sys.stderr, None)
        self._rich: ConsoleProgress | None = None

    def _through_rich(self) -> ConsoleProgress:
        if self._rich is None:
            from cdb_ops.report.progress import ConsoleProgress

            self._rich = ConsoleProgress(self.redact)
        return self._rich

    def _print(self, parts: list[Cell], markup_free: bool) -> bool:
        if self._shape is None or not markup_free:
            return False
        width, color = self._shape
        text = styled_line(parts, width, color)
        if text is None:
            return False
        sys.stderr.write(text + "\n")
        sys.stderr.flush()
        return True

    def phase(self, name: str, kind: str) -> None:
        if not self._print([(f"▶ {name}", "bold"), (" ", ""), (f"({kind})", "dim")], _markup_free(name, kind)):
            self._through_rich().phase(name, kind)

    def step(
        self, phase: str, resource: str, name: str, action: str, detail: str = "", seconds: float | None = None
    ) -> None:
        style = ACTION_STYLE.get(action, "white")
        parts: list[Cell] = [("  ", ""), (f"{action:<8}", style), (f" {resource} {name}", "")]
        if detail:
            parts += [(" ", ""), (f"— {self.redact(detail)}", "dim")]
        if seconds is not None and seconds >= 0.05:
            parts += [(" ", ""), (f"{seconds:.1f}s", "dim")]
        if not self._print(parts, _markup_free(action, resource, name)):
            self._through_rich().step(phase, resource, name, action, detail, seconds)

    def line(self, source: str, text: str) -> None:
        pass  # (verbose output only: the quick path does not run with --verbose)

    def note(self, text: str) -> None:
        if not self._print([("  ", ""), ("!", "yellow"), (f" {self.redact(text)}", "")], True):
            self._through_rich().note(text)


def run_text(result: RunResult, width: int, color: bool) -> str | None:
    """`Renderer.run`'s table and closing line for a run without checks; None where rich would print them
    otherwise."""
    if result.checks or result.finished_at is None:
        return None
    body: list[list[Cell]] = []
    for s in result.steps:
        time_ = f"{s.seconds:.1f}s" if s.seconds >= 0.05 else ""
        cells = [s.phase, s.resource, s.name, s.action, s.detail, time_]
        if not _markup_free(*cells):
            return None
        body.append([(c, ACTION_STYLE.get(s.action, "white") if i == 3 else "") for i, c in enumerate(cells)])
    laid = table_lines(f"{result.command}: {result.playbook}", RUN_COLUMNS, body, width, color, markup=True)
    if laid is None or not _markup_free(result.playbook):
        return None
    lines, _ = laid
    took = (result.finished_at - result.started_at).total_seconds()
    if result.result == "ok":
        n = len(result.changed)
        what = f"{n} change(s)" if n else "nothing changed (already converged)"
        last = styled_line([(f"✓ {result.playbook} ok", "green"), (f" in {took:.1f}s — {what}", "")], width, color)
    else:
        last = styled_line([(f"✗ {result.playbook} {result.result}", "red"), (f" after {took:.1f}s", "")], width, color)
    if last is None:
        return None
    return "\n".join([*lines, last]) + "\n"


def print_run(result: RunResult, redact: Redactor) -> None:
    """The run's table on stdout, without rich when it can be."""
    shape = stdout_shape()
    text = run_text(result, *shape) if shape is not None else None
    if text is None:
        from cdb_ops.report.render import Renderer

        Renderer(False, redact).run(result)
        return
    sys.stdout.write(text)
