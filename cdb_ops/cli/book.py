"""What the paper-account commands (portfolio, trades, report) share: which book they read (--feed, else the
feed of the last rebuild, else the configured one) and the risk limits from `.env`."""

from __future__ import annotations

from typing import Annotated

import typer

from cdb_ops.cli.session import Session
from cdb_ops.load.lastrun import load_last_run
from cdb_ops.views.book import BookChoice, choose_book
from cdb_ops.views.portfolio import Limits

BookOpt = Annotated[
    str | None,
    typer.Option("--feed", help="Whose book: live or replay. Default: the feed of the last rebuild."),
]


def book_of(s: Session, feed: str | None) -> BookChoice:
    return choose_book(feed, load_last_run(s.project), s.desired.feed)


def limits_of(s: Session) -> Limits:
    return Limits.from_settings(s.settings.get)
