"""`cdb-ops trading status|halt|reduce|resume`: the trader's controls of a book (docs/trading-controls.md).

A state change is one row in book_states (who, when, why) that the risk manager reads with every decision:
no service is restarted, nothing but Postgres is touched — except `halt --flatten`, which also publishes
one SELL signal per open position on cdb:signals (the normal risk → execution path, filled at market with
the usual slippage and fee) while the book is REDUCING, waits for the fills, then halts the book.

Stopping is never held up by a prompt: `halt` and `reduce` act at once. What opens risk or sells needs a
confirmation (`--yes`, or y at a terminal; without either exit 7 and nothing changes): `resume`, and
`halt --flatten` (its JSON lists what would be sold)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cdb_ops.cli.book import book_of
from cdb_ops.cli.options import JsonOpt, ProjectDir, YesOpt
from cdb_ops.db import trading_state as ts
from cdb_ops.errors import DatabaseUnavailable, ExitCode, UsageError
from cdb_ops.load.endpoints import host_address, postgres_conninfo
from cdb_ops.views.book import FEEDS, choose_book, open_connection

if TYPE_CHECKING:  # the session (the desired stack: pydantic, yaml) is opened when a subcommand runs, not for --help
    from cdb_ops.cli.session import Session

FeedOpt = Annotated[
    str | None,
    typer.Option("--feed", help="Whose book: live or replay. Default: the feed of the last rebuild (status: both)."),
]
ReasonOpt = Annotated[
    str | None,
    typer.Option("--reason", help="Why (recorded with who and when; required to change a state, max 500 chars)."),
]
FlattenOpt = Annotated[
    bool,
    typer.Option("--flatten", help="Also close every open position of the book (SELL at market) before halting."),
]
TimeoutOpt = Annotated[float, typer.Option("--timeout", min=1, max=600, help="Seconds --flatten waits for the fills.")]


@contextmanager
def _connect(s: Session) -> Iterator[Any]:
    """A writable autocommit connection to the stack's Postgres with the trading states, or the fix."""
    conn = open_connection(postgres_conninfo(s.desired, s.settings), "cannot reach the trading states in")
    try:
        ts.require_states(conn)
        yield conn
    finally:
        conn.close()


def _reason(reason: str | None, verb: str) -> str:
    text = (reason or "").strip()
    if not text:
        raise UsageError(f"`trading {verb}` needs a reason", 'say why: --reason "…" (recorded with who and when)')
    if len(text) > 500:
        raise UsageError(f"--reason is {len(text)} characters long", "keep it to 500 characters")
    return text


def _print(s: Session, command: str, states: list[ts.BookState], changed: dict[str, Any] | None,
           flatten: dict[str, Any] | None, history: dict[str, list[dict[str, Any]]]) -> None:  # fmt: skip
    if s.json:
        s.out.document(
            command,
            {"books": [b.to_dict() for b in states], "changed": changed, "flatten": flatten, "history": history},
        )
        return
    con = s.out.console
    if changed is not None:
        con.print(
            f"book {changed['book']}: {changed['from']} → [bold]{changed['to']}[/bold] ({changed['reason']})"
            + (f"; {changed['cancelled_orders']} unfilled order(s) cancelled" if changed["cancelled_orders"] else "")
        )
    if flatten is not None:
        con.print(
            f"flatten: {len(flatten['sold'])} SELL signal(s) published, {flatten['closed']} position(s) closed in "
            f"{flatten['seconds']} s"
            + (f"; still open: {', '.join(flatten['still_open'])}" if flatten["still_open"] else "")
        )
    for b in states:
        style = {"ACTIVE": "green", "REDUCING": "yellow", "HALTED": "red"}[b.state]
        con.print(f"[bold]{b.book}[/bold]: [{style}]{b.summary}[/{style}]", highlight=False)
        for h in history.get(b.book, [])[1:4]:
            con.print(f"  [dim]before: {h['state']} at {h['changed_at']} by {h['changed_by']}: {h['reason']}[/dim]")


def trading_status(
    ctx: typer.Context,
    project_dir: ProjectDir = None,
    feed: FeedOpt = None,
    reason: ReasonOpt = None,
    yes: YesOpt = False,
    json_output: JsonOpt = False,
) -> None:
    """Each book's trading state (ACTIVE, REDUCING, HALTED), who set it, when and why, and its history.
    --reason and --yes are accepted (scripts pass them to every subcommand) and change nothing here."""
    from cdb_ops.cli.session import open_read

    s = open_read(ctx, "trading status", json_output, project_dir)
    books = [choose_book(feed, None, None).book] if feed is not None else list(FEEDS)
    with _connect(s) as conn:
        states = [ts.read_state(conn, b) for b in books]
        history = {b: ts.history(conn, b) for b in books}
    _print(s, "trading status", states, None, None, history)


def _change(s: Session, feed: str | None, state: str, reason: str, verb: str, yes: bool) -> None:
    choice = book_of(s, feed)
    if state == "ACTIVE":  # re-opens entries: asked first, before anything is read or changed
        s.confirm(
            f"resume book {choice.book}: new positions may be opened again",
            yes,
            {"book": choice.book, "to": state, "reason": reason},
        )
    with _connect(s) as conn:
        before = ts.read_state(conn, choice.book)
        cancelled = ts.change_state(conn, choice.book, state, reason, ts.who())
        after = ts.read_state(conn, choice.book)
        history = {choice.book: ts.history(conn, choice.book)}
    changed = {"book": choice.book, "chosen_by": choice.chosen_by, "from": before.stored, "to": state,
               "reason": reason, "changed_by": after.changed_by, "cancelled_orders": cancelled}  # fmt: skip
    _print(s, f"trading {verb}", [after], changed, None, history)


def trading_halt(
    ctx: typer.Context,
    project_dir: ProjectDir = None,
    feed: FeedOpt = None,
    reason: ReasonOpt = None,
    flatten: FlattenOpt = False,
    timeout: TimeoutOpt = 60.0,
    yes: YesOpt = False,
    json_output: JsonOpt = False,
) -> None:
    """HALTED: the risk manager rejects every new signal of the book (`halted`) and its unfilled orders are
    cancelled. With --flatten (after confirmation) every open position is sold at market first."""
    from cdb_ops.cli.session import open_read

    s = open_read(ctx, "trading halt", json_output, project_dir)
    why = _reason(reason, "halt")
    if not flatten:
        _change(s, feed, "HALTED", why, "halt", yes)
        return
    choice = book_of(s, feed)
    with _connect(s) as conn:
        positions = ts.open_longs(conn, choice.book)
        s.confirm(
            f"sell {len(positions)} open position(s) of book {choice.book} at market, then halt it",
            yes,
            {"book": choice.book, "would_sell": [p.to_dict() for p in positions]},
        )
        before = ts.read_state(conn, choice.book)
        result = _flatten(s, conn, choice.book, positions, why, timeout)
        cancelled = ts.change_state(conn, choice.book, "HALTED", why, ts.who())
        after = ts.read_state(conn, choice.book)
        history = {choice.book: ts.history(conn, choice.book)}
    changed = {"book": choice.book, "chosen_by": choice.chosen_by, "from": before.stored, "to": "HALTED",
               "reason": why, "changed_by": after.changed_by, "cancelled_orders": cancelled}  # fmt: skip
    _print(s, "trading halt", [after], changed, result, history)
    if result["still_open"]:
        if not s.json:
            s.out.warn(
                "not every position closed in time; the book is halted anyway — see `cdb-ops portfolio` and "
                "`cdb-ops logs risk`"
            )
        raise typer.Exit(int(ExitCode.CHECKS_FAILED))


def _flatten(
    s: Session, conn: Any, book: str, positions: list[ts.OpenLong], why: str, timeout: float
) -> dict[str, Any]:
    """REDUCING (exits pass), one SELL signal per position, then wait until the book holds nothing and no
    order of it is unfilled."""
    import redis

    started = time.monotonic()
    ts.change_state(conn, book, "REDUCING", f"flattening before a halt: {why}", ts.who())
    svc = next((v for v in s.desired.services.values() if v.spec.ready and v.spec.ready.probe == "redis"), None)
    if svc is None:
        raise UsageError("the playbook has no redis service to publish on", "mark it `ready: {probe: redis}`")
    host, port = host_address(svc, None)
    client = redis.Redis(host=host, port=port, password=s.settings.get("REDIS_PASSWORD"), socket_timeout=5)
    try:
        ids = ts.publish_flatten(conn, client, book, positions, int(time.time() * 1000))
    except redis.RedisError as exc:
        raise DatabaseUnavailable(
            f"cannot publish the exit signals on Redis at {host}:{port}: {exc}",
            "is the stack up? `cdb-ops status`; the book was left REDUCING",
        ) from None
    finally:
        client.close()
    deadline = started + timeout
    while time.monotonic() < deadline and (ts.count_open(conn, book) or _unfilled(conn, book)):
        time.sleep(0.2)
    still = [p.symbol for p in ts.open_longs(conn, book)]
    return {
        "sold": [p.to_dict() | {"signal_id": i} for p, i in zip(positions, ids, strict=True)],
        "closed": len(positions) - len([p for p in positions if p.symbol in still]),
        "still_open": still,
        "seconds": round(time.monotonic() - started, 3),
    }


def _unfilled(conn: Any, book: str) -> int:
    row = conn.execute("SELECT count(*) FROM orders WHERE portfolio = %s AND status = 'NEW'", (book,)).fetchone()
    return int(row[0])


def trading_reduce(
    ctx: typer.Context,
    project_dir: ProjectDir = None,
    feed: FeedOpt = None,
    reason: ReasonOpt = None,
    yes: YesOpt = False,
    json_output: JsonOpt = False,
) -> None:
    """REDUCING: exits only — SELLs that close a held position pass, BUYs are rejected (`reducing`)."""
    from cdb_ops.cli.session import open_read

    s = open_read(ctx, "trading reduce", json_output, project_dir)
    _change(s, feed, "REDUCING", _reason(reason, "reduce"), "reduce", yes)


def trading_resume(
    ctx: typer.Context,
    project_dir: ProjectDir = None,
    feed: FeedOpt = None,
    reason: ReasonOpt = None,
    yes: YesOpt = False,
    json_output: JsonOpt = False,
) -> None:
    """ACTIVE: entries are approved again (after confirmation; a tripped daily breaker still holds the book
    REDUCING until the next UTC day)."""
    from cdb_ops.cli.session import open_read

    s = open_read(ctx, "trading resume", json_output, project_dir)
    _change(s, feed, "ACTIVE", _reason(reason, "resume"), "resume", yes)


SUMMARY = "A book's trading state: status, halt (--flatten), reduce (exits only), resume; persisted, enforced by risk."


def register(app: typer.Typer) -> None:
    group = typer.Typer(help=SUMMARY, no_args_is_help=True)
    group.command("status")(trading_status)
    group.command("halt")(trading_halt)
    group.command("reduce")(trading_reduce)
    group.command("resume")(trading_resume)
    app.add_typer(group, name="trading")
