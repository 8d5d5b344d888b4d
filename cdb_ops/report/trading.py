"""The trader's views on the terminal (rich tables, a plotext equity chart) or as one JSON document each.

Every view opens with the book it shows and says that probe rows are not in it; the JSON carries the
same numbers as exact Decimal strings (json_schemas/portfolio|trades|report.schema.json)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from rich.markup import escape
from rich.table import Table
from rich.text import Text

from cdb_ops.db.journal import Version
from cdb_ops.report.render import Renderer, _human_duration
from cdb_ops.views.book import dec, money2, pct2
from cdb_ops.views.performance import Marker, Report, Tally, thin
from cdb_ops.views.portfolio import Portfolio
from cdb_ops.views.trades import Trades

PROBE_NOTE = "validate's probe rows are in book 'probe', not here"


def _book_line(out: Renderer, book: str, chosen_by: str) -> None:
    kind = "live paper" if book == "live" else "replay"
    out.console.print(f"[bold]book: {book}[/bold] ({kind} book, chosen by {chosen_by}) · [dim]{PROBE_NOTE}[/dim]")


def _qty(value: Decimal) -> str:
    return dec(value.quantize(Decimal("0.00000001"))) or "0"


def _price(value: Decimal) -> str:
    return f"{value:,.8f}".rstrip("0").rstrip(".") if value < 1 else f"{value:,.4f}".rstrip("0").rstrip(".")


def _signed(value: Decimal) -> str:
    style = "green" if value > 0 else "red" if value < 0 else "white"
    return f"[{style}]{value:+,.2f}[/{style}]"


def show_portfolio(out: Renderer, p: Portfolio) -> None:
    if out.json:
        out.document("portfolio", p.to_dict())
        return
    _book_line(out, p.book, p.chosen_by)
    summary = Table(show_header=False, box=None, padding=(0, 2))
    summary.add_column(style="bold")
    summary.add_column(justify="right")
    summary.add_column()
    breaker = "[red]TRIPPED: BUYs halted until 00:00 UTC[/red]" if p.breaker_tripped else "[green]armed[/green]"
    summary.add_row("cash", money2(p.cash), "USDT")
    summary.add_row("equity", money2(p.equity), f"USDT (initial {money2(p.limits.initial_capital)})")
    summary.add_row(
        "exposure",
        money2(p.exposure),
        f"USDT = {pct2(p.exposure_pct)} of equity (cap {pct2(p.limits.max_total_exposure_pct)})"
        + (f", pending BUYs {money2(p.pending_buys)}" if p.pending_buys else ""),
    )
    summary.add_row("realized PnL", _signed(p.realized_pnl), "USDT (net of fees)")
    summary.add_row("unrealized PnL", _signed(p.unrealized_pnl), "USDT")
    summary.add_row(
        "today's drawdown",
        pct2(p.daily_drawdown_pct),
        f"of {money2(p.day_start_equity)} start equity (breaker at {pct2(p.limits.max_daily_drawdown_pct)}): {breaker}",
    )
    summary.add_row("trading state", p.trading_state.summary if p.trading_state else "-", "`cdb-ops trading status`")
    summary.add_row("headroom", money2(p.headroom), f"USDT for the next entry (limited by {p.headroom_limited_by})")
    out.console.print(summary)
    if not p.positions:
        out.console.print("no open positions")
        return
    table = Table(title="open positions", title_justify="left")
    for col in ("symbol", "qty", "entry", "mark", "value", "unrealized", "age", "mark age"):
        table.add_column(col, justify="left" if col == "symbol" else "right")
    for pos in p.positions:
        age = _human_duration(pos.mark_age_seconds) if pos.mark_age_seconds is not None else "never"
        table.add_row(
            pos.symbol, _qty(pos.qty), _price(pos.entry), _price(pos.mark), money2(pos.value),
            _signed(pos.unrealized_pnl), _human_duration(pos.age_seconds),
            f"[red]{age} STALE[/red]" if pos.stale else age,
        )  # fmt: skip
    out.console.print(table)
    if p.stale_marks:
        out.console.print(
            f"[red]{p.stale_marks} mark(s) older than {p.to_dict()['stale_after_seconds']} s:[/red] the feed sends no "
            "price for them; equity and drawdown use the last known one (`cdb-ops status`, `cdb-ops logs screener`)"
        )


def _version_cell(service: str, v: Version | None) -> str:
    return f"{service}: {v.short if v else 'before the journal'}"


def show_trades(out: Renderer, t: Trades) -> None:
    if out.json:
        out.document("trades", t.to_dict())
        return
    _book_line(out, t.book, t.chosen_by)
    scope = f"last {_human_duration(t.since_seconds)}" + (f", {t.symbol}" if t.symbol else "")
    table = Table(title=f"fills ({scope})", title_justify="left")
    with_versions = any(f.versions is not None for f in t.fills)
    columns = ("time (UTC)", "symbol", "side", "qty", "price", "fee", "realized", "signal", "risk")
    for col in columns + (("versions (risk / execution)",) if with_versions else ()):
        table.add_column(col, justify="right" if col in ("qty", "price", "fee", "realized") else "left")
    for f in t.fills:
        cells = [
            f.executed_at.strftime("%m-%d %H:%M:%S"), f.symbol, f.side, _qty(f.qty), _price(f.price),
            f"{f.fee:,.4f}", _signed(f.realized_pnl) if f.side == "SELL" else "",
            f"{Decimal(f.signal['change_pct']):+.2f}% conf {f.signal['confidence']}",
            f"{f.risk['reason']} {f.risk['approved_qty']}/{f.risk['requested_qty']}",
        ]  # fmt: skip
        if with_versions:
            cells.append("\n".join(_version_cell(k, (f.versions or {}).get(k)) for k in ("risk", "execution")))
        table.add_row(*cells)
    out.console.print(table)
    out.console.print(f"{len(t.fills)} fill(s), fees {t.fees:,.4f} USDT, realized PnL {_signed(t.realized_pnl)} USDT")
    if t.rejected is None:
        return
    rej = Table(title="not traded", title_justify="left")
    for col in ("time (UTC)", "symbol", "side", "stopped by", "reason", "signal"):
        rej.add_column(col)
    for r in t.rejected:
        rej.add_row(
            r.at.strftime("%m-%d %H:%M:%S"), r.symbol, r.side, r.stage, escape(r.reason),
            f"{Decimal(r.signal['change_pct']):+.2f}% conf {r.signal['confidence']}",
        )  # fmt: skip
    out.console.print(rej if t.rejected else "nothing was rejected")


MARKER_COLOURS = {"state": "orange", "breaker": "red", "rebuild": "blue", "rollback": "magenta", "restore": "magenta"}


def equity_chart(
    curve: list[tuple[datetime, Decimal]], width: int, colour: bool, markers: list[Marker] | None = None
) -> str:
    """The equity curve drawn by plotext (braille line over UTC time), with a numbered vertical line at
    each journal marker inside the curve's time range (the list under the chart says what each is)."""
    import plotext as plt

    points = thin(curve, 400)
    plt.clear_figure()
    plt.date_form("Y-m-d H:M:S")
    plt.plot([at.strftime("%Y-%m-%d %H:%M:%S") for at, _ in points], [float(eq) for _, eq in points],
             marker="braille")  # fmt: skip
    top = max(float(eq) for _, eq in points)
    for n, m in enumerate(markers or [], 1):
        if points[0][0] <= m.at <= points[-1][0]:
            x = m.at.strftime("%Y-%m-%d %H:%M:%S")
            plt.vline(x, MARKER_COLOURS.get(m.kind, "gray"))
            plt.text(str(n), x=x, y=top)
    plt.plotsize(max(40, min(width, 120)), 16)
    plt.theme("clear")
    plt.title("equity (USDT, marked to market)")
    chart: str = plt.build()
    plt.clear_figure()
    return chart if colour else plt.uncolorize(chart)


def _tally_table(title: str, key: str, rows: list[tuple[str, Tally]]) -> Table:
    table = Table(title=title, title_justify="left")
    for col in (key, "trades", "closed", "win rate", "realized PnL", "fees"):
        table.add_column(col, justify="left" if col == key else "right")
    for name, t in rows:
        table.add_row(
            name, str(t.trades), str(t.closed), pct2(t.win_rate_pct), _signed(t.realized_pnl), f"{t.fees:,.4f}"
        )
    return table


def show_report(out: Renderer, r: Report, html_file: str | None) -> None:
    if out.json:
        out.document("report", r.to_dict() | {"html_file": html_file})
        return
    _book_line(out, r.book, r.chosen_by)
    out.console.print(f"last {r.days} UTC day(s), since {r.since:%Y-%m-%d %H:%M} UTC")
    out.console.print(_tally_table("per day", "day (UTC)", [(d.isoformat(), t) for d, t in r.per_day.items()]))
    out.console.print(_tally_table("per pair", "symbol", list(r.per_pair.items())))
    out.console.print(
        f"total: {r.total.trades} trade(s), win rate {pct2(r.total.win_rate_pct)}, realized "
        f"{_signed(r.total.realized_pnl)} USDT, fees {r.total.fees:,.4f} USDT"
    )
    dd = r.drawdown
    where = f" ({dd.peak_at:%m-%d %H:%M:%S} → {dd.trough_at:%m-%d %H:%M:%S})" if dd.peak_at and dd.trough_at else ""
    out.console.print(
        f"equity {money2(r.start_equity)} → {money2(r.end_equity)} USDT ({r.return_pct:+.2f}%), "
        f"max drawdown {pct2(dd.pct)} = {money2(dd.usdt)} USDT{where}"
    )
    if len(r.curve) >= 2:
        chart = equity_chart(r.curve, out.console.width, out.console.is_terminal, r.markers)
        out.console.print(Text.from_ansi(chart))
    else:
        out.console.print("[dim]no equity curve yet: the book has no portfolio snapshots in this window[/dim]")
    for n, m in enumerate(r.markers, 1):
        out.console.print(
            f"  [{n}] {m.at:%m-%d %H:%M:%S} [bold]{escape(m.label)}[/bold] — by {escape(m.who)}: {escape(m.why)}",
            highlight=False,
        )
    if html_file:
        out.console.print(f"HTML report written to {html_file}")
