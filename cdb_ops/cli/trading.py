"""`cdb-ops portfolio`, `cdb-ops trades`, `cdb-ops report`: the paper account of one feed's book, read from
the stack's Postgres (never the probe's rows). The book is --feed, else the feed of the last rebuild,
else the configured one; every view says which it shows."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cdb_ops.cli.options import JsonOpt, ProjectDir
from cdb_ops.cli.session import Session, open_read
from cdb_ops.errors import UsageError
from cdb_ops.fsutil import atomic_write
from cdb_ops.load.endpoints import postgres_conninfo
from cdb_ops.load.lastrun import load_last_run
from cdb_ops.report.trading import show_portfolio, show_report, show_trades
from cdb_ops.views.book import BookChoice, choose_book, connect, parse_since
from cdb_ops.views.portfolio import Limits, load_portfolio
from cdb_ops.views.report import load_report
from cdb_ops.views.trades import load_trades

BookOpt = Annotated[
    str | None,
    typer.Option("--feed", help="Whose book: live or replay. Default: the feed of the last rebuild."),
]


def _book(s: Session, feed: str | None) -> BookChoice:
    return choose_book(feed, load_last_run(s.project), s.desired.feed)


def _limits(s: Session) -> Limits:
    return Limits.from_settings(s.settings.get)


def portfolio(
    ctx: typer.Context, project_dir: ProjectDir = None, feed: BookOpt = None, json_output: JsonOpt = False
) -> None:
    """Cash, equity, exposure (% of the cap), realized/unrealized PnL, today's drawdown and the breaker,
    headroom for the next entry, and the open positions with their marks (a stale mark is flagged)."""
    s = open_read(ctx, "portfolio", json_output, project_dir)
    choice = _book(s, feed)
    with connect(postgres_conninfo(s.desired, s.settings)) as conn:
        view = load_portfolio(conn, choice.book, choice.chosen_by, _limits(s))
    show_portfolio(s.out, view)


def trades(
    ctx: typer.Context,
    project_dir: ProjectDir = None,
    feed: BookOpt = None,
    since: Annotated[str, typer.Option("--since", help="How far back: 30m, 6h, 1d, 2w.")] = "1d",
    symbol: Annotated[str | None, typer.Option("--symbol", help="Only this pair, e.g. ETHUSDT.")] = None,
    rejected: Annotated[bool, typer.Option("--rejected", help="Also what was not traded, with the reason.")] = False,
    json_output: JsonOpt = False,
) -> None:
    """Fills with side, qty, price, fee and realized PnL, and the signal and risk decision behind each."""
    s = open_read(ctx, "trades", json_output, project_dir)
    window = parse_since(since)
    choice = _book(s, feed)
    with connect(postgres_conninfo(s.desired, s.settings)) as conn:
        view = load_trades(conn, choice.book, choice.chosen_by, window, symbol.upper() if symbol else None, rejected)
    show_trades(s.out, view)


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
    s = open_read(ctx, "report", json_output, project_dir)
    if not 1 <= days <= 3660:
        raise UsageError(f"--days {days} is out of range", "use 1 to 3660")
    if html is not None and html.is_dir():
        raise UsageError(f"--html {html} is a folder", "name a file, e.g. --html report.html")
    choice = _book(s, feed)
    with connect(postgres_conninfo(s.desired, s.settings)) as conn:
        view = load_report(conn, choice.book, choice.chosen_by, days, _limits(s).initial_capital)
    if html is not None:
        from cdb_ops.report.html import render_html

        atomic_write(html, render_html(view), mode=0o644)
    show_report(s.out, view, str(html) if html is not None else None)
