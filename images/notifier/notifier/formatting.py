"""What the trader reads: one message per fill, exit, breaker change, trading-state change, alert group and
daily summary. Pure (no I/O): numbers in, text out, money as Decimal to the end."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from cdb_common.events import Fill

# Apprise's notify types (apprise.NotifyType values), spelled here so this module needs no Apprise
INFO, SUCCESS, WARNING, FAILURE = "info", "success", "warning", "failure"
CENT = Decimal("0.01")


@dataclass(frozen=True)
class Message:
    kind: str  # an event type of cdb_common.notifyrules.EVENT_TYPES
    title: str
    body: str
    level: str = INFO
    pnl: Decimal | None = None  # an exit's realized PnL, for the rate limiter's summary
    test_id: str | None = None  # validate's synthetic alert: its receipt is recorded
    facts: dict[str, Any] = field(default_factory=dict, compare=False)


def money(value: Decimal, sign: bool = False) -> str:
    """USDT to the cent, half up ("+3.21", "-0.50", "1234.00")."""
    q = value.quantize(CENT, rounding=ROUND_HALF_UP)
    return f"{q:+f}" if sign else f"{q:f}"


def number(value: Decimal) -> str:
    """A price or quantity as written, without exponent or trailing zeros ("0.0015", "43250.5", "100")."""
    text = f"{value:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def percent(value: Decimal, sign: bool = False) -> str:
    q = value.quantize(CENT, rounding=ROUND_HALF_UP)
    return f"{q:+f} %" if sign else f"{q:f} %"


def exit_pnl_pct(fill: Fill) -> Decimal | None:
    """Realized PnL in % of what the coins cost: execution books realized = notional - fee - cost basis
    (the basis includes the buying fee), so the basis is notional - fee - realized."""
    basis = fill.notional - fill.fee - fill.realized_pnl
    return fill.realized_pnl / basis * 100 if basis > 0 else None


def format_fill(fill: Fill) -> Message:
    """A BUY is an entry (`fill`); a SELL an exit (`exit`) with its realized PnL."""
    trade = f"{number(fill.qty)} {fill.symbol} @ {number(fill.price)} = {money(fill.notional)} USDT"
    trade += f", fee {money(fill.fee)}"
    facts = {"trade_id": fill.event_id, "book": fill.portfolio, "symbol": fill.symbol, "side": fill.side}
    if fill.side.upper() == "SELL":
        pct = exit_pnl_pct(fill)
        pct_text = f" ({percent(pct, sign=True)})" if pct is not None else ""
        level = SUCCESS if fill.realized_pnl >= 0 else WARNING
        return Message(
            "exit",
            f"[{fill.portfolio}] exit {fill.symbol}: {money(fill.realized_pnl, sign=True)} USDT{pct_text}",
            f"SELL {trade}\nrealized PnL {money(fill.realized_pnl, sign=True)} USDT{pct_text}",
            level,
            pnl=fill.realized_pnl,
            facts=facts,
        )
    return Message("fill", f"[{fill.portfolio}] bought {fill.symbol}", f"BUY {trade}", INFO, facts=facts)


def format_breaker(
    book: str,
    tripped: bool,
    start: Decimal,
    equity: Decimal,
    down_pct: Decimal,
    limit_pct: Decimal,
    day: str,
    at: str = "",
) -> Message:
    """The daily-drawdown breaker: tripped (entries wait for the next UTC day, exits pass) or reset. The
    numbers are the tripping decision's: equity, its drawdown from the day's start, the limit."""
    if not tripped:
        return Message(
            "breaker",
            f"[{book}] breaker reset: new UTC day {day}",
            f"The daily-drawdown breaker re-opened for {day}: entries are allowed again (day starts at "
            f"{money(start)} USDT).",
            SUCCESS,
        )
    return Message(
        "breaker",
        f"[{book}] circuit breaker TRIPPED: -{percent(down_pct)} today",
        f"Equity fell from {money(start)} to {money(equity)} USDT today ({day}), {percent(down_pct)} down"
        + (f" (at {at})" if at else "")
        + f" — the limit MAX_DAILY_DRAWDOWN is {percent(limit_pct)}. New entries are blocked until 00:00 UTC; "
        "exits and stop-outs still pass.",
        FAILURE,
    )


def format_state(book: str, before: str | None, after: str, reason: str, by: str, cancelled: int) -> Message:
    what = {
        "ACTIVE": "trading normally",
        "REDUCING": "exits only, no new entries",
        "HALTED": "nothing new: no orders at all",
    }.get(after, after)
    arrow = f"{before} → {after}" if before else after
    tail = f"; {cancelled} unfilled order(s) cancelled" if cancelled else ""
    return Message(
        "state",
        f"[{book}] trading state {arrow}",
        f"{after}: {what}. Reason: {reason} (by {by}){tail}. `cdb-ops trading status` shows it.",
        SUCCESS if after == "ACTIVE" else WARNING,
    )


def _when(text: Any) -> str:
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00")).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        return str(text)


def format_alerts(payload: dict[str, Any], test_id: str | None = None) -> Message:
    """One message per Alertmanager notification (webhook version 4): a group, firing or resolved."""
    alerts = [a for a in payload.get("alerts") or [] if isinstance(a, dict)]
    status = str(payload.get("status") or "firing")
    common = payload.get("commonLabels") or {}
    firing = [a for a in alerts if a.get("status") != "resolved"]
    resolved = [a for a in alerts if a.get("status") == "resolved"]
    name = common.get("alertname") or ", ".join(sorted({str((a.get("labels") or {}).get("alertname")) for a in alerts}))
    severity = str(common.get("severity") or "")
    head = f"[{status.upper()}:{len(firing) if status == 'firing' else len(resolved)}] {name}"
    lines = []
    for a in firing + resolved:
        labels, notes = a.get("labels") or {}, a.get("annotations") or {}
        labels, notes = (x if isinstance(x, dict) else {} for x in (labels, notes))  # a sender's bug: no crash
        text = notes.get("summary") or notes.get("description") or labels.get("alertname") or "alert"
        where = ", ".join(f"{k}={v}" for k, v in sorted(labels.items()) if k not in ("alertname", "severity"))
        if a.get("status") == "resolved":
            lines.append(f"✓ resolved: {text}" + (f" ({where})" if where else "") + f" at {_when(a.get('endsAt'))}")
        else:
            lines.append(f"• {text}" + (f" ({where})" if where else "") + f" since {_when(a.get('startsAt'))}")
            if notes.get("description") and notes.get("summary"):
                lines.append(f"  {notes['description']}")
    level = SUCCESS if status == "resolved" else (FAILURE if severity in ("critical", "page") else WARNING)
    return Message(
        "alert",
        head + (f" ({severity})" if severity else ""),
        "\n".join(lines) or "(no alerts in the notification)",
        level,
        test_id=test_id,
        facts={"status": status, "alerts": len(alerts)},
    )


def format_summary(since: str, books: list[dict[str, Any]]) -> Message:
    """The daily summary: per book the last 24 hours' trades, realized PnL and fees, the equity now, whether
    the breaker tripped, and the trading state."""
    lines = []
    for b in books:
        equity = f"equity {money(b['equity'])} USDT" if b.get("equity") is not None else "no equity recorded yet"
        lines.append(
            f"[{b['book']}] {b['trades']} trade(s), realized PnL {money(b['realized_pnl'], sign=True)} USDT, "
            f"fees {money(b['fees'])} USDT, {equity}"
            + (", breaker tripped" if b.get("breaker_tripped") else "")
            + f"; state {b['state']}"
        )
    return Message("summary", f"Daily summary since {since}", "\n".join(lines) or "No trades in any book yet.", INFO)


def format_held(counts: dict[str, int], pnl: Decimal, titles: list[str], per_minute: int) -> Message:
    """What the rate limit held back, in one message once a slot is free again."""
    total = sum(counts.values())
    parts = [f"{n} {kind}" for kind, n in sorted(counts.items())]
    body = f"{total} message(s) held back by the rate limit (NOTIFY_RATE_PER_MINUTE={per_minute}): " + ", ".join(parts)
    if counts.get("exit"):
        body += f"; exits' realized PnL together {money(pnl, sign=True)} USDT"
    if titles:
        body += "\n" + "\n".join(f"• {t}" for t in titles)
    return Message("summary", f"{total} more event(s)", body, INFO)
