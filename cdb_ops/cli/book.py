"""What the paper-account commands (portfolio, trades, report) share: which book they read (--feed, else the
feed of the last rebuild, else the configured one) and the risk limits from `.env`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:  # BookOpt is read by every book command's --help: nothing else is imported for it
    from cdb_ops.cli.session import Session
    from cdb_ops.views.book import BookChoice
    from cdb_ops.views.portfolio import Limits

BookOpt = Annotated[
    str | None,
    typer.Option("--feed", help="Whose book: live or replay. Default: the feed of the last rebuild."),
]


def book_of(s: Session, feed: str | None) -> BookChoice:
    from cdb_ops.load.lastrun import load_last_run
    from cdb_ops.views.book import choose_book

    return choose_book(feed, load_last_run(s.project), s.desired.feed)


def limits_of(s: Session) -> Limits:
    from cdb_ops.views.portfolio import Limits

    return Limits.from_settings(s.settings.get)
