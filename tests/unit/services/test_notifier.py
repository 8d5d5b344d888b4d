"""The notifier's pure parts: event modes, the silent form of a destination, URL checks that never echo,
the rate limiter and its held summary, the messages (with their PnL numbers), alert formatting, the
breaker's change detection and secret-file reading."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from cdb_common.config import ConfigError, read_secret
from cdb_common.events import Fill
from cdb_common.notifyrules import (
    DEFAULT_MODES,
    ModeError,
    clean,
    delivery_for,
    parse_modes,
    quiet_url,
    split_urls,
    urls_problem,
)
from notifier.formatting import exit_pnl_pct, format_alerts, format_breaker, format_fill, format_state, money
from notifier.ratelimit import Held, RateLimiter
from notifier.watch import Breaker, breaker_change, summary_books

TOKEN = "123456789:AAE-secret-bot-token-xyz"


def _fill(side: str, qty: str, price: str, fee: str, pnl: str, book: str = "replay") -> Fill:
    notional = Decimal(qty) * Decimal(price)
    return Fill(
        "t-1", "o-1", "BTCUSDT", side, Decimal(qty), Decimal(price), Decimal(fee), notional, Decimal(pnl), book, 1, 1, 1
    )


# -- modes ---------------------------------------------------------------------------------------------


def test_modes_default_and_overrides():
    assert parse_modes("") == DEFAULT_MODES
    modes = parse_modes("fill:off, exit:SILENT")
    assert modes["fill"] == "off" and modes["exit"] == "silent" and modes["alert"] == "on"
    assert set(parse_modes("all:off,alert:on").values()) == {"off", "on"}
    assert parse_modes("all:off,alert:on")["alert"] == "on" and parse_modes("all:off")["summary"] == "off"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("fill", "not type:mode"),
        ("fill:loud", "mode 'loud'"),
        ("fills:on", "event type 'fills'"),
        ("exit:on,x:y", "item 2"),
    ],
)
def test_bad_modes_name_the_item(text, says):
    with pytest.raises(ModeError, match=says):
        parse_modes(text)


def test_silent_is_quiet_where_the_destination_can_be_else_recorded_only():
    assert quiet_url(f"tgram://{TOKEN}/42") == f"tgram://{TOKEN}/42?silent=yes"
    assert quiet_url("ntfys://ntfy.sh/topic?tags=x") == "ntfys://ntfy.sh/topic?tags=x&priority=min"
    assert quiet_url("json://rx:9000/ok") == "json://rx:9000/ok"  # a webhook makes no sound anyway
    assert quiet_url("discord://id/token") is None
    assert delivery_for("silent", "discord://id/token").send is False
    assert delivery_for("silent", f"tgram://{TOKEN}/42").quiet is True
    assert delivery_for("on", "discord://id/token").send and not delivery_for("off", "json://a/b").send


# -- URLs are secrets ------------------------------------------------------------------------------------


def test_url_problems_name_the_position_never_the_value():
    assert split_urls(" json://a:1/x ,\n tgram://t/1 ,, ") == ["json://a:1/x", "tgram://t/1"]
    assert urls_problem("json://a:1/x,tgram://t/1") is None
    wrong = urls_problem(f"json://a:1/x,{TOKEN}")
    assert wrong is not None and "item 2" in wrong and TOKEN not in wrong and "secret" not in wrong
    quoted = urls_problem(f"tgram://{TOKEN} /1")
    assert quoted is not None and TOKEN not in quoted


def test_an_error_is_cleaned_of_every_part_of_its_url():
    url = f"tgram://{TOKEN}/-100987654"
    text = f"Failed to send Telegram notification to -100987654 via {url}: bot {TOKEN.split(':')[1]} refused"
    cleaned = clean(text, url)
    assert "100987654" not in cleaned and "secret-bot-token" not in cleaned and url not in cleaned
    assert cleaned.startswith("Failed to send Telegram notification")


def test_secret_file_wins_and_a_missing_file_names_the_path_not_a_value(tmp_path: Path):
    f = tmp_path / "notify_urls"
    f.write_text(f"tgram://{TOKEN}/1\n")
    env = {"NOTIFY_URLS_FILE": str(f), "NOTIFY_URLS": "json://plain/ignored"}
    assert read_secret(env, "NOTIFY_URLS") == f"tgram://{TOKEN}/1"
    f.write_text("")
    assert read_secret(env, "NOTIFY_URLS") == ""  # an empty file: no destination
    with pytest.raises(ConfigError) as err:
        read_secret({"NOTIFY_URLS_FILE": str(tmp_path / "gone"), "NOTIFY_URLS": TOKEN}, "NOTIFY_URLS")
    assert "gone" in str(err.value) and TOKEN not in str(err.value)


# -- rate limit ------------------------------------------------------------------------------------------


def test_rate_limiter_slides_over_a_minute():
    limiter = RateLimiter(3)
    assert [limiter.admit(t) for t in (0.0, 1.0, 2.0, 3.0)] == [True, True, True, False]
    assert limiter.wait(30.0) == pytest.approx(30.0)  # the first slot frees at 60 s
    assert not limiter.admit(59.9) and limiter.admit(60.0) and not limiter.admit(60.5) and limiter.admit(61.0)
    with pytest.raises(ValueError):
        RateLimiter(0)


def test_held_messages_are_summed_up_once_with_the_exits_pnl():
    held = Held()
    held.add(format_fill(_fill("BUY", "0.01", "40000", "0.4", "0")))
    held.add(format_fill(_fill("SELL", "0.01", "42000", "0.42", "19.18")))
    held.add(format_fill(_fill("SELL", "0.01", "39000", "0.39", "-10.79")))
    summary = held.take(20)
    assert "3 message(s) held back" in summary.body and "2 exit" in summary.body and "1 fill" in summary.body
    assert "+8.39 USDT" in summary.body and "NOTIFY_RATE_PER_MINUTE=20" in summary.body
    assert not held


# -- messages --------------------------------------------------------------------------------------------


def test_an_exit_carries_its_pnl_in_usdt_and_percent_of_cost():
    # bought 0.01 BTC for 400 + 0.4 fee (basis 400.4), sold for 420 - 0.42 fee: realized 19.18
    fill = _fill("SELL", "0.01", "42000", "0.42", "19.18")
    assert exit_pnl_pct(fill) == Decimal("19.18") / Decimal("400.40") * 100
    m = format_fill(fill)
    assert m.kind == "exit" and m.pnl == Decimal("19.18") and m.level == "success"
    assert m.title == "[replay] exit BTCUSDT: +19.18 USDT (+4.79 %)"
    assert "SELL 0.01 BTCUSDT @ 42000 = 420.00 USDT, fee 0.42" in m.body
    loss = format_fill(_fill("SELL", "0.5", "1.2", "0.0006", "-0.1236"))
    assert loss.level == "warning" and "-0.12 USDT" in loss.title


def test_an_entry_is_a_fill_without_pnl():
    m = format_fill(_fill("BUY", "0.00150000", "43250.50", "0.0649", "0", book="live"))
    assert m.kind == "fill" and m.pnl is None
    assert m.body == "BUY 0.0015 BTCUSDT @ 43250.5 = 64.88 USDT, fee 0.06" and m.title == "[live] bought BTCUSDT"


def test_money_rounds_half_up_to_the_cent():
    assert money(Decimal("2.345")) == "2.35" and money(Decimal("-0.005"), sign=True) == "-0.01"
    assert money(Decimal("0"), sign=True) == "+0.00"


def test_breaker_trip_and_reset_messages_have_the_numbers():
    m = format_breaker(
        "replay", True, Decimal("1000"), Decimal("940"), Decimal("6.0"), Decimal("5.0"), "2026-12-07", "the SELL X"
    )
    assert m.level == "failure" and m.title == "[replay] circuit breaker TRIPPED: -6.00 % today"
    assert "from 1000.00 to 940.00 USDT today (2026-12-07), 6.00 % down (at the SELL X)" in m.body
    assert "MAX_DAILY_DRAWDOWN is 5.00 %" in m.body and "exits" in m.body
    r = format_breaker("replay", False, Decimal("948.5"), Decimal("948.5"), Decimal(0), Decimal(5), "2026-12-08")
    assert r.level == "success" and "reset" in r.title and "948.50" in r.body


def test_breaker_change_learns_first_then_reports_trips_and_resets():
    calm = Breaker("2026-12-07", False, Decimal(1000), Decimal(990), Decimal(985))
    tripped = Breaker("2026-12-07", True, Decimal(1000), Decimal(940), Decimal(940))
    next_day = Breaker("2026-12-08", False, Decimal(940), Decimal(940), Decimal(940))
    assert breaker_change(None, tripped) is None  # a restarted notifier never repeats an old trip
    assert breaker_change(calm, tripped) == "tripped"
    assert breaker_change(tripped, tripped) is None
    assert breaker_change(tripped, next_day) == "reset"
    assert breaker_change(calm, next_day) is None
    assert breaker_change(tripped, Breaker("2026-12-08", True, Decimal(940), Decimal(890), Decimal(890))) == "tripped"


def test_state_change_message():
    m = format_state("live", "ACTIVE", "HALTED", "going to sleep", "cli", 2)
    assert m.title == "[live] trading state ACTIVE → HALTED" and "2 unfilled order(s) cancelled" in m.body
    assert format_state("live", "HALTED", "ACTIVE", "morning", "cli", 0).level == "success"


def test_alertmanager_groups_firing_and_resolved():
    firing = {
        "version": "4",
        "status": "firing",
        "commonLabels": {"alertname": "ServiceDown", "severity": "critical"},
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "ServiceDown", "severity": "critical", "service": "risk"},
                "annotations": {"summary": "risk is down", "description": "no scrape for 1 min"},
                "startsAt": "2026-12-07T12:00:00.123Z",
            },
            {
                "status": "firing",
                "labels": {"alertname": "ServiceDown", "severity": "critical", "service": "execution"},
                "annotations": {"summary": "execution is down"},
                "startsAt": "2026-12-07T12:01:00Z",
            },
        ],
    }
    m = format_alerts(firing)
    assert m.kind == "alert" and m.level == "failure" and m.title == "[FIRING:2] ServiceDown (critical)"
    assert "• risk is down (service=risk) since 2026-12-07 12:00 UTC" in m.body and "no scrape for 1 min" in m.body
    resolved = {**firing, "status": "resolved", "alerts": [{**firing["alerts"][0], "status": "resolved",
                                                             "endsAt": "2026-12-07T12:05:00Z"}]}  # fmt: skip
    r = format_alerts(resolved)
    assert r.level == "success" and r.title.startswith("[RESOLVED:1] ServiceDown")
    assert "✓ resolved: risk is down (service=risk) at 2026-12-07 12:05 UTC" in r.body


def test_summary_lists_only_books_that_traded():
    rows = [
        ("live", 0, Decimal(0), Decimal(0), None, False, None, False),
        ("replay", 4, Decimal("12.5"), Decimal("1.6"), Decimal("1012.5"), True, "REDUCING", True),
    ]
    books = summary_books(rows)
    assert [b["book"] for b in books] == ["replay"] and books[0]["state"] == "REDUCING"


def test_a_malformed_alert_is_formatted_not_crashed_on():
    m = format_alerts({"status": "firing", "alerts": [{"labels": {"alertname": "X"}, "annotations": "oops"}]})
    assert m.title == "[FIRING:1] X" and "X" in m.body
