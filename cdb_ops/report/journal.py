"""The journal on the terminal (one line per row, the live versions under it) or as one JSON document."""

from __future__ import annotations

from typing import Any

from rich.markup import escape

from cdb_ops.db.journal import Entry
from cdb_ops.report.render import Renderer

STYLE = {"state": "yellow", "breaker": "red", "rebuild": "cyan", "rollback": "magenta", "restore": "magenta"}
# the services whose versions a row shows on the terminal (the JSON has every service)
TRADING_SERVICES = ("risk", "execution")


def live_line(live: dict[str, Any] | None) -> str:
    """`risk image 1a2b3c4d5e6f cfg 0a1b2c3d · execution …`, or why it is not known."""
    if live is None:
        return "live: not known (the engine could not be read)"
    parts = []
    for service in [s for s in TRADING_SERVICES if s in live] or sorted(live):
        v = live[service]
        image = str(v.get("image_id") or "?").removeprefix("sha256:")[:12]
        parts.append(f"{service} image {image} cfg {str(v.get('config_hash') or '?')[:8]}")
    return "live: " + (" · ".join(parts) or "no container running")


def show_journal(out: Renderer, entries: list[Entry], since_seconds: int, book: str | None) -> None:
    if out.json:
        out.document(
            "journal",
            {"since_seconds": since_seconds, "book": book, "entries": [e.to_dict() for e in entries]},
        )
        return
    con = out.console
    if not entries:
        con.print("the journal has no entry in this window (`--since` reaches further back)")
        return
    for e in entries:
        style = STYLE.get(e.kind, "")
        extra = ""
        cancelled = e.details.get("cancelled_orders")
        if cancelled:
            extra = f" ({cancelled} unfilled order(s) cancelled)"
        con.print(
            f"{e.at:%Y-%m-%d %H:%M:%S}Z [{style}]{e.kind:<8}[/{style}] [bold]{escape(e.title)}[/bold]"
            f" — by {escape(e.who)}: {escape(e.why)}{extra}",
            highlight=False,
        )
        con.print(f"  [dim]{escape(live_line(e.live))}[/dim]", highlight=False)
