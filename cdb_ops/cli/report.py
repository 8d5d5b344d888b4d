"""`cdb-ops report`: one book's results per UTC day and per pair, and its equity curve (terminal or HTML)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cdb_ops.cli.book import BookOpt
from cdb_ops.cli.options import JsonOpt, ProjectDir


def report(
    ctx: typer.Context,
    project_dir: ProjectDir = None,
    feed: BookOpt = None,
    days: Annotated[int, typer.Option("--days", help="UTC days to cover, today included.")] = 7,
    html: Annotated[Path | None, typer.Option("--html", help="Also write a self-contained HTML report here.")] = None,
    json_output: JsonOpt = False,
) -> None:
    """Per day and per pair: trades, win rate, realized PnL, fees; the equity curve (drawn in the
    terminal) with its max drawdown; with --html FILE the same as one self-contained HTML file."""
    from cdb_ops.cli.book import book_of, limits_of
    from cdb_ops.cli.session import open_read
    from cdb_ops.errors import UsageError
    from cdb_ops.fsutil import atomic_write
    from cdb_ops.load.endpoints import postgres_conninfo
    from cdb_ops.report.trading import show_report
    from cdb_ops.views.book import connect
    from cdb_ops.views.performance import load_report

    s = open_read(ctx, "report", json_output, project_dir)
    if not 1 <= days <= 3660:
        raise UsageError(f"--days {days} is out of range", "use 1 to 3660")
    if html is not None and html.is_dir():
        raise UsageError(f"--html {html} is a folder", "name a file, e.g. --html report.html")
    choice = book_of(s, feed)
    with connect(postgres_conninfo(s.desired, s.settings)) as conn:
        view = load_report(conn, choice.book, choice.chosen_by, days, limits_of(s).initial_capital)
    if html is not None:
        from cdb_ops.report.html import render_html

        atomic_write(html, render_html(view), mode=0o644)
    show_report(s.out, view, str(html) if html is not None else None)
