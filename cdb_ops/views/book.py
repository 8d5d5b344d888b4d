"""What the trader's views share: which book they read, the database they read it from, and money as text.

A book is one feed's paper account ('live' or 'replay'); validate's probe trades in book 'probe', which
no view ever reads (every query says `portfolio = <book>`, and migration 006 keeps `portfolio = 'probe'`
⇔ `is_probe`). Money stays Decimal from Postgres to the JSON document (as exact strings).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from cdb_ops.errors import DatabaseUnavailable, UsageError

FEEDS = ("live", "replay")
ZERO = Decimal(0)
HUNDRED = Decimal(100)


@dataclass(frozen=True)
class BookChoice:
    """The book a view shows and why that one (so the output can say it)."""

    book: str
    chosen_by: str  # "--feed", "last rebuild", ".env / playbook default"

    @property
    def label(self) -> str:
        return f"{self.book} ({'live paper' if self.book == 'live' else 'replay'} book, chosen by {self.chosen_by})"


def choose_book(flag: str | None, last_run: dict[str, Any] | None, configured: str | None) -> BookChoice:
    """--feed wins; else the feed the last rebuild ran (the book the services trade in); else the configured one."""
    if flag is not None:
        if flag not in FEEDS:
            raise UsageError(f"unknown feed {flag!r}", f"use --feed {' or --feed '.join(FEEDS)}")
        return BookChoice(flag, "--feed")
    last = (last_run or {}).get("feed")
    if last in FEEDS and (last_run or {}).get("command") in ("rebuild", "run"):
        return BookChoice(str(last), "last rebuild")
    return BookChoice(configured if configured in FEEDS else "live", ".env / playbook default")


_SINCE = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(text: str) -> timedelta:
    """'90s', '30m', '6h', '1d', '2w' → a timedelta; anything else is a usage error naming the form."""
    found = _SINCE.match(text)
    if not found or int(found[1]) == 0:
        raise UsageError(f"--since {text!r} is not a duration", "write a number and a unit: 30m, 6h, 1d, 2w")
    return timedelta(**{_UNITS[found[2]]: int(found[1])})


def dec(value: Decimal | None) -> str | None:
    """Exact Decimal as plain text without trailing zeros ('899.84995', '1000'); None stays None."""
    if value is None:
        return None
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def money2(value: Decimal | None) -> str:
    """Money for a table: two decimals, thousands separated."""
    return "-" if value is None else f"{value:,.2f}"


def pct2(value: Decimal | None) -> str:
    return "-" if value is None else f"{value:.2f}%"


def open_connection(conninfo: dict[str, Any], problem: str) -> Any:
    """An autocommit connection to the stack's Postgres, or DatabaseUnavailable saying `problem` ("cannot
    read the paper account from") with the address and the fix (the paper-account views and the trading
    controls share it)."""
    import psycopg

    try:
        return psycopg.connect(**conninfo, connect_timeout=3, autocommit=True)
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DatabaseUnavailable(
            f"{problem} Postgres at {conninfo['host']}:{conninfo['port']}: {first}",
            "is the stack up? `cdb-ops status`; bring it up with `cdb-ops rebuild`",
        ) from None


@contextmanager
def connect(conninfo: dict[str, Any]) -> Iterator[Any]:
    """A read-only autocommit connection to the stack's Postgres, or a clear error with the fix."""
    conn = open_connection(conninfo, "cannot read the paper account from")
    try:
        conn.read_only = True
        has_books = conn.execute(
            "SELECT 1 FROM information_schema.columns WHERE table_name = 'signals' AND column_name = 'portfolio'"
        ).fetchone()
        if not has_books:
            raise DatabaseUnavailable(
                "the database has no books yet (migration 006_books_per_feed is not applied)",
                "run `cdb-ops schema migrate` (or `cdb-ops rebuild`)",
            )
        yield conn
    finally:
        conn.close()
