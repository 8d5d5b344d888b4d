"""`cdb-ops journal`: what was live when — every trading-state change, breaker trip, rebuild, rollback and
restore with who, when, why and the image id and config hash of each service (table journal)."""

from __future__ import annotations

from typing import Annotated

import typer

from cdb_ops.cli.options import JsonOpt, ProjectDir
from cdb_ops.db.journal import KINDS  # the --kind help lists them (a light module)


def journal(
    ctx: typer.Context,
    project_dir: ProjectDir = None,
    since: Annotated[str, typer.Option("--since", help="How far back: 30m, 6h, 1d, 2w.")] = "7d",
    kind: Annotated[
        list[str] | None,
        typer.Option("--kind", help=f"Only these kinds (repeatable): {', '.join(KINDS)}."),
    ] = None,
    feed: Annotated[
        str | None, typer.Option("--feed", help="Only this book's state changes (and the stack-wide rows).")
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """What was live when: trading-state changes, breaker trips, rebuilds, rollbacks and restores, each with
    who, when, why and the image id and config hash of every service then live."""
    from cdb_ops.cli.session import open_read
    from cdb_ops.db.journal import entries
    from cdb_ops.errors import DatabaseUnavailable, UsageError
    from cdb_ops.load.endpoints import postgres_conninfo
    from cdb_ops.report.journal import show_journal
    from cdb_ops.views.book import FEEDS, open_connection, parse_since

    s = open_read(ctx, "journal", json_output, project_dir)
    window = parse_since(since)
    for k in kind or []:
        if k not in KINDS:
            raise UsageError(f"unknown journal kind {k!r}", f"use one of: {', '.join(KINDS)}")
    if feed is not None and feed not in FEEDS:
        raise UsageError(f"unknown feed {feed!r}", f"use --feed {' or --feed '.join(FEEDS)}")
    conn = open_connection(postgres_conninfo(s.desired, s.settings), "cannot read the journal from")
    try:
        from cdb_ops.db.journal import has_journal

        if not has_journal(conn):
            raise DatabaseUnavailable(
                "the database has no journal yet (migration 009_journal is not applied)",
                "run `cdb-ops schema migrate` (or `cdb-ops rebuild`)",
            )
        from datetime import UTC, datetime

        rows = entries(conn, datetime.now(UTC) - window, kind or None, feed)
    finally:
        conn.close()
    show_journal(s.out, rows, int(window.total_seconds()), feed)
