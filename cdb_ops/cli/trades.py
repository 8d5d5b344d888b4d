"""`cdb-ops trades`: one book's fills and the signal and risk decision behind each (with --rejected, what was
not traded and why)."""

from __future__ import annotations

from typing import Annotated

import typer

from cdb_ops.cli.book import BookOpt
from cdb_ops.cli.options import JsonOpt, ProjectDir


def trades(
    ctx: typer.Context,
    project_dir: ProjectDir = None,
    feed: BookOpt = None,
    since: Annotated[str, typer.Option("--since", help="How far back: 30m, 6h, 1d, 2w.")] = "1d",
    symbol: Annotated[str | None, typer.Option("--symbol", help="Only this pair, e.g. ETHUSDT.")] = None,
    rejected: Annotated[
        bool,
        typer.Option("--rejected", help="Also what was not traded (rejected, expired, cancelled by a halt), and why."),
    ] = False,
    versions: Annotated[
        bool,
        typer.Option(
            "--versions", help="Also the image id and config hash of the risk manager and execution behind each fill."
        ),
    ] = False,
    json_output: JsonOpt = False,
) -> None:
    """Fills with side, qty, price, fee and realized PnL, and the signal and risk decision behind each."""
    from cdb_ops.cli.book import book_of
    from cdb_ops.cli.session import open_read
    from cdb_ops.load.endpoints import postgres_conninfo
    from cdb_ops.report.trading import show_trades
    from cdb_ops.views.book import connect, parse_since
    from cdb_ops.views.trades import load_trades

    s = open_read(ctx, "trades", json_output, project_dir)
    window = parse_since(since)
    choice = book_of(s, feed)
    with connect(postgres_conninfo(s.desired, s.settings)) as conn:
        view = load_trades(
            conn, choice.book, choice.chosen_by, window, symbol.upper() if symbol else None, rejected, versions
        )
    show_trades(s.out, view)
