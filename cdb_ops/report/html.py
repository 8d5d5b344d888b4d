"""`cdb-ops report --html FILE`: the report as one self-contained HTML file — the same numbers as the
terminal and --json, and the equity curve as inline SVG. Nothing is fetched when it is opened (no
scripts, fonts or images from anywhere), so it works offline and can be mailed or archived as it is."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from html import escape

from cdb_ops.views.book import dec, money2, pct2
from cdb_ops.views.performance import Marker, Report, Tally, thin

W, H, PAD_L, PAD_R, PAD_T, PAD_B = 900, 320, 80, 20, 20, 40

CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;background:#fff}
table{border-collapse:collapse;margin:1em 0}th,td{padding:.3em .8em;border-bottom:1px solid #ddd;text-align:right}
th:first-child,td:first-child{text-align:left}.pos{color:#080}.neg{color:#b00}.note{color:#666}
svg{background:#fafafa;border:1px solid #ddd}
"""


def _signed(value: Decimal) -> str:
    cls = "pos" if value > 0 else "neg" if value < 0 else ""
    return f'<span class="{cls}">{value:+,.2f}</span>'


MARKER_COLOURS = {
    "state": "#d97706",
    "breaker": "#b00",
    "rebuild": "#059669",
    "rollback": "#a21caf",
    "restore": "#a21caf",
}


def _marker_lines(markers: list[Marker], t0: float, span_t: float) -> str:
    """A numbered dashed vertical line per journal marker inside the curve's range (its title says what)."""
    out = []
    for n, m in enumerate(markers, 1):
        t = m.at.timestamp()
        if not t0 <= t <= t0 + span_t:
            continue
        x = PAD_L + (t - t0) / span_t * (W - PAD_L - PAD_R)
        colour = MARKER_COLOURS.get(m.kind, "#666")
        title = escape(f"{m.at:%Y-%m-%d %H:%M:%S} UTC {m.label}: {m.why}")
        out.append(
            f'<g class="marker marker-{escape(m.kind)}"><title>{title}</title>'
            f'<line x1="{x:.1f}" y1="{PAD_T}" x2="{x:.1f}" y2="{H - PAD_B}" stroke="{colour}" stroke-dasharray="4 3"/>'
            f'<text x="{x + 3:.1f}" y="{PAD_T + 12}" font-size="12" fill="{colour}">{n}</text></g>'
        )
    return "".join(out)


def markers_list(markers: list[Marker]) -> str:
    if not markers:
        return '<p class="note" id="markers">no state change or upgrade in this window (journal)</p>'
    items = "".join(
        f'<li class="marker-{escape(m.kind)}">{m.at:%Y-%m-%d %H:%M:%S} UTC <b>{escape(m.label)}</b> — by '
        f"{escape(m.who)}: {escape(m.why)}</li>"
        for m in markers
    )
    return f'<ol id="markers">{items}</ol>'


def equity_svg(curve: list[tuple[datetime, Decimal]], markers: list[Marker] | None = None) -> str:
    """The curve as an SVG polyline with its value and time range on the axes, and the journal's markers."""
    points = thin(curve)
    if len(points) < 2:
        return '<p class="note">no equity curve yet: the book has no portfolio snapshots in this window</p>'
    t0, t1 = points[0][0].timestamp(), points[-1][0].timestamp()
    lo, hi = min(eq for _, eq in points), max(eq for _, eq in points)
    span_t, span_v = (t1 - t0) or 1.0, float(hi - lo) or 1.0

    def xy(at: datetime, eq: Decimal) -> str:
        x = PAD_L + (at.timestamp() - t0) / span_t * (W - PAD_L - PAD_R)
        y = PAD_T + (1 - float(eq - lo) / span_v) * (H - PAD_T - PAD_B)
        return f"{x:.1f},{y:.1f}"

    line = " ".join(xy(at, eq) for at, eq in points)
    bottom, right = H - PAD_B, W - PAD_R
    return (
        f'<svg id="equity-chart" xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
        f'viewBox="0 0 {W} {H}" role="img" aria-label="equity curve">'
        f'<line x1="{PAD_L}" y1="{PAD_T}" x2="{PAD_L}" y2="{bottom}" stroke="#888"/>'
        f'<line x1="{PAD_L}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="#888"/>'
        f'<text x="{PAD_L - 6}" y="{PAD_T + 4}" text-anchor="end" font-size="12">{hi:,.2f}</text>'
        f'<text x="{PAD_L - 6}" y="{bottom}" text-anchor="end" font-size="12">{lo:,.2f}</text>'
        f'<text x="{PAD_L}" y="{H - 14}" font-size="12">{points[0][0]:%Y-%m-%d %H:%M:%S} UTC</text>'
        f'<text x="{right}" y="{H - 14}" text-anchor="end" font-size="12">{points[-1][0]:%Y-%m-%d %H:%M:%S} UTC</text>'
        f'<polyline fill="none" stroke="#1f6feb" stroke-width="2.5" points="{line}"/>'
        f"{_marker_lines(markers or [], t0, span_t)}</svg>"
    )


def _tally_rows(rows: list[tuple[str, Tally]]) -> str:
    return "".join(
        f"<tr><td>{escape(name)}</td><td>{t.trades}</td><td>{t.closed}</td><td>{pct2(t.win_rate_pct)}</td>"
        f"<td>{_signed(t.realized_pnl)}</td><td>{t.fees:,.4f}</td></tr>"
        for name, t in rows
    )


def render_html(r: Report) -> str:
    head = "<tr><th>{}</th><th>trades</th><th>closed</th><th>win rate</th><th>realized PnL</th><th>fees</th></tr>"
    dd = r.drawdown
    kind = "live paper" if r.book == "live" else "replay"
    days = _tally_rows([(d.isoformat(), t) for d, t in r.per_day.items()])
    pairs = _tally_rows(list(r.per_pair.items()))
    realized, fees = dec(r.total.realized_pnl), dec(r.total.fees)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>cdb-ops report: {escape(r.book)} book</title><style>{CSS}</style></head><body>
<h1>Paper trading report: {escape(r.book)} book</h1>
<p id="book">book: <b>{escape(r.book)}</b> ({kind} book, chosen by {escape(r.chosen_by)}) ·
<span class="note">validate's probe rows are in book 'probe', not here</span></p>
<p>last {r.days} UTC day(s), since {r.since:%Y-%m-%d %H:%M} UTC · as of {r.as_of:%Y-%m-%d %H:%M:%S} UTC</p>
<h2>Equity</h2>
<p id="equity">equity {money2(r.start_equity)} → {money2(r.end_equity)} USDT ({r.return_pct:+.2f}%),
max drawdown <b id="max-drawdown">{pct2(dd.pct)}</b> = {money2(dd.usdt)} USDT</p>
{equity_svg(r.curve, r.markers)}
<h2>State changes and upgrades</h2>
{markers_list(r.markers)}
<h2>Per day</h2><table id="per-day">{head.format("day (UTC)")}{days}</table>
<h2>Per pair</h2><table id="per-pair">{head.format("symbol")}{pairs}</table>
<p id="total">total: {r.total.trades} trade(s), win rate {pct2(r.total.win_rate_pct)}, realized
{_signed(r.total.realized_pnl)} USDT ({realized}), fees {r.total.fees:,.4f} USDT ({fees})</p>
</body></html>
"""
