"""`cdb-ops portfolio`: one book's paper account now, read from the stack's Postgres (never the probe's rows)."""

from __future__ import annotations

import typer

from cdb_ops.cli.book import BookOpt
from cdb_ops.cli.options import JsonOpt, ProjectDir


def portfolio(
    ctx: typer.Context, project_dir: ProjectDir = None, feed: BookOpt = None, json_output: JsonOpt = False
) -> None:
    """Cash, equity, exposure (% of the cap), realized/unrealized PnL, today's drawdown and the breaker,
    headroom for the next entry, and the open positions with their marks (a stale mark is flagged)."""
    from cdb_ops.cli.book import book_of, limits_of
    from cdb_ops.cli.session import open_read
    from cdb_ops.load.endpoints import postgres_conninfo
    from cdb_ops.report.trading import show_portfolio
    from cdb_ops.views.book import connect
    from cdb_ops.views.portfolio import load_portfolio

    s = open_read(ctx, "portfolio", json_output, project_dir)
    choice = book_of(s, feed)
    with connect(postgres_conninfo(s.desired, s.settings)) as conn:
        view = load_portfolio(conn, choice.book, choice.chosen_by, limits_of(s))
    show_portfolio(s.out, view)
