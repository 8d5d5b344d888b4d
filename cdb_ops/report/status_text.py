"""The status table without rich: what `Renderer.status` prints, byte for byte, for the quick `status`
path (rich's import is most of a short command's start-up). It lays out only what it can lay out exactly
as rich does — one box style, cells of plain single-width characters, a table and footer that fit the
width — and returns None otherwise, so the caller prints through rich. tests/unit/test_status_text.py
compares the two on many tables, in colour and without (the layout itself: report/plain.py)."""

from __future__ import annotations

import sys
from typing import Any

from cdb_ops.checks.backups import backup_lines
from cdb_ops.checks.notify import notify_lines
from cdb_ops.model.status import StatusRow
from cdb_ops.report.plain import Cell, paint, plain, stdout_shape, table_lines
from cdb_ops.report.units import human_bytes, human_duration
from cdb_ops.views.status import disk_lines, trading_lines

COLUMNS = ("service", "container", "state", "health", "uptime", "restarts", "ports", "cpu", "memory", "image")


def _cells(r: StatusRow) -> list[Cell]:
    health_style = {"healthy": "green", "unhealthy": "red", "starting": "yellow"}.get(r.health or "", "dim")
    return [
        (r.service, ""),
        (r.container, ""),
        (r.state, "green" if r.state == "running" else "red"),
        (r.health or "-", health_style),
        (human_duration(r.uptime_seconds), ""),
        (str(r.restarts), "yellow" if r.restarts else ""),
        ("\n".join(r.ports) or "-", ""),
        ("-" if r.cpu_percent is None else f"{r.cpu_percent:.1f}%", ""),
        (human_bytes(r.memory_bytes), ""),
        (r.image, ""),
    ]


def _footer(
    rows: list[StatusRow],
    last_run: dict[str, Any] | None,
    disk: dict[str, Any] | None,
    backups: dict[str, Any] | None = None,
    trading: dict[str, Any] | None = None,
    notifications: dict[str, Any] | None = None,
) -> list[list[Cell]]:
    total = sum(r.memory_bytes or 0 for r in rows)
    lines: list[list[Cell]] = [[(f"memory total: {human_bytes(total)}", "")]]
    disk_part: list[list[Cell]] = [[(line, "dim" if disk is None else "")] for line in disk_lines(disk)]
    disk_part += [[(line, "")] for line in backup_lines(backups)]
    disk_part += [[(line, "")] for line in notify_lines(notifications)]
    disk_part = [*trading_lines(trading), *disk_part]  # the books' states first, right under the last run
    if not last_run:
        return [*lines, [("no rebuild recorded yet", "dim")], *disk_part]
    style = "green" if last_run.get("result") == "ok" else "red"
    error = last_run.get("error") or {}
    message = error.get("message", "")
    tail = (
        f" at {last_run.get('finished_at') or last_run.get('started_at')} ({last_run.get('changed', 0)} change(s))"
        + (f" — {message.splitlines()[0]}" if message else "")
    )
    lines.append([(f"last {last_run.get('command')}: ", ""), (str(last_run.get("result")), style), (tail, "")])
    if last_run.get("command") in ("rebuild", "run") and last_run.get("feed"):
        feed = last_run["feed"]
        kind = "live paper" if feed == "live" else "replay"
        lines.append([(f"trading book: {feed} ({kind}; the feed of the last rebuild) — `cdb-ops portfolio`", "")])
    return [*lines, *disk_part]


def status_text(
    rows: list[StatusRow],
    last_run: dict[str, Any] | None,
    width: int,
    color: bool,
    disk: dict[str, Any] | None = None,
    backups: dict[str, Any] | None = None,
    trading: dict[str, Any] | None = None,
    notifications: dict[str, Any] | None = None,
) -> str | None:
    """The table and footer as rich prints them on a console `width` wide (with `color`: as on a terminal
    with standard colours); None when rich would print it otherwise (folded, wrapped, other characters)."""
    body = [_cells(r) for r in rows]
    footer = _footer(rows, last_run, disk, backups, trading, notifications)
    if not all(plain(t) for line in footer for t, _ in line):
        return None
    laid = table_lines("cdb-ops status", COLUMNS, body, width, color)
    if laid is None or any(sum(len(t) for t, _ in line) > width for line in footer):
        return None
    out, _ = laid
    for parts in footer:
        out.append("".join(paint(t, s, color) for t, s in parts))
    return "\n".join(out) + "\n"


def print_status(
    rows: list[StatusRow],
    last_run: dict[str, Any] | None,
    disk: dict[str, Any] | None = None,
    backups: dict[str, Any] | None = None,
    trading: dict[str, Any] | None = None,
    notifications: dict[str, Any] | None = None,
) -> bool:
    """Print the table on stdout when it can be printed without rich; False when the caller must."""
    shape = stdout_shape()
    if shape is None:
        return False
    width, terminal = shape
    text = status_text(
        rows, last_run, width, color=terminal, disk=disk, backups=backups, trading=trading, notifications=notifications
    )
    if text is None:
        return False
    sys.stdout.write(text)
    return True
