"""Printing what rich prints, byte for byte, without importing rich (its import is most of a short
command's start-up): a table in rich's default box style, and lines of styled text. Only what can be laid
out exactly as rich does — cells of plain single-width characters that fit the width, rich's standard
colours — is printed here; everything else returns None or False, and the caller prints through rich.
tests/unit/test_status_text.py and tests/unit/test_run_text.py compare the two, in colour and without."""

from __future__ import annotations

import os
import sys
from typing import TextIO

PIPE_WIDTH = 160  # Renderer's width when stdout is not a terminal
RICH_DEFAULT_WIDTH = 80  # rich's width for a console that is not a terminal and was given none (stderr)
# rich's standard-colour SGR codes for the styles these tables and lines use
_SGR = {
    "green": "32",
    "red": "31",
    "yellow": "33",
    "blue": "34",
    "magenta": "35",
    "cyan": "36",
    "white": "37",
    "dim": "2",
    "bold": "1",
    "italic": "3",
    "bold red": "1;31",
    "bold yellow": "1;33",
    "": "",
}
# characters rich measures as one cell and prints as they are (no wide, combining or control characters)
_PLAIN = frozenset(chr(c) for c in range(0x20, 0x7F)) | {"—", "…", "→", "✓", "✗", "▶", "!"}

Cell = tuple[str, str]  # text, style


def plain(text: str) -> bool:
    """Whether rich would print `text` as it is, one cell per character."""
    return _PLAIN.issuperset(text.replace("\n", ""))


def paint(text: str, style: str, color: bool) -> str:
    return f"\x1b[{_SGR[style]}m{text}\x1b[0m" if color and style and text else text


def console_shape(stream: TextIO, pipe_width: int | None) -> tuple[int, bool] | None:
    """(width, colour) of a rich Console on `stream`; None where only rich knows (its own environment
    settings, a dumb terminal). `pipe_width`: the width the caller gives rich when the stream is not a
    terminal (None: rich's own, below)."""
    env = os.environ
    if any(env.get(k) for k in ("NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "COLUMNS", "LINES")):
        return None  # rich's own settings: only rich honours them exactly
    try:
        terminal = stream.isatty()
    except (AttributeError, ValueError):
        return None
    if terminal and env.get("TERM", "").strip().lower() in ("dumb", "unknown"):
        return None  # rich prints no colours there
    if not terminal and pipe_width:
        return pipe_width, False
    return _rich_width(), terminal


def _rich_width() -> int:
    """rich's width for a console given none: the first of stdin, stdout and stderr that is a terminal
    says it (even for a stream that is not one), else 80."""
    for fd in (0, 1, 2):
        try:
            width = os.get_terminal_size(fd).columns
        except (AttributeError, ValueError, OSError):
            continue
        return width or RICH_DEFAULT_WIDTH
    return RICH_DEFAULT_WIDTH


def stdout_shape() -> tuple[int, bool] | None:
    return console_shape(sys.stdout, PIPE_WIDTH)


def table_lines(
    title: str,
    columns: tuple[str, ...],
    body: list[list[Cell]],
    width: int,
    color: bool,
    markup: bool = False,
) -> tuple[list[str], int] | None:
    """A rich `Table(title=…, title_justify="left")` of these columns and rows, as rich prints it on a
    console `width` wide, and its width; None when rich would lay it out otherwise (folded, wrapped).
    A cell's style covers its padding to the column's width (rich `Text` cells with a style), or with
    `markup` only its text (cells given as markup, "[red]remove[/red]")."""
    texts = [title, *columns, *(t for row in body for t, _ in row)]
    if not all(plain(t) for t in texts):
        return None
    widths = [len(c) for c in columns]
    for row in body:
        for i, (text, _) in enumerate(row):
            widths[i] = max(widths[i], *(len(x) for x in text.split("\n")))
    table_width = sum(widths) + 3 * len(widths) + 1
    if table_width > width or len(title) > table_width:
        return None

    def rule(left: str, fill: str, mid: str, right: str) -> str:
        return left + mid.join(fill * (w + 2) for w in widths) + right

    def line(cells: list[Cell], bar: str, header: bool = False) -> list[str]:
        """One table row (as many lines as its tallest cell). rich styles a cell's text padded to the
        column's width; a header's style covers its padding too, painted apart."""
        parts = [(text.split("\n"), style) for text, style in cells]
        out = []
        for k in range(max(len(p) for p, _ in parts)):
            segs = []
            for (lines_, style), w in zip(parts, widths, strict=True):
                text = lines_[k] if k < len(lines_) else ""
                pad = paint(" ", style, color) if header else " "
                shown = style if k < len(lines_) else ""
                if markup and not header:
                    segs.append(pad + paint(text, shown, color) + " " * (w - len(text)) + pad)
                else:
                    segs.append(pad + paint(text.ljust(w), shown, color) + pad)
            out.append(bar + bar.join(segs) + bar)
        return out

    out = [paint(title.ljust(table_width), "italic", color)]
    out.append(rule("┏", "━", "┳", "┓"))
    out += line([(c, "bold") for c in columns], "┃", header=True)
    out.append(rule("┡", "━", "╇", "┩"))
    for row in body:
        out += line(row, "│")
    out.append(rule("└", "─", "┴", "┘"))
    return out, table_width


def styled_line(parts: list[Cell], width: int, color: bool) -> str | None:
    """One line of styled text as rich prints it (`console.print` of markup), None when rich would wrap
    it or print a character otherwise."""
    text = "".join(t for t, _ in parts)
    if "\n" in text or len(text) > width or not plain(text):
        return None
    return "".join(paint(t, s, color) for t, s in parts if t)
