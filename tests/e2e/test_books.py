"""Books per feed (issue 11.2) and the trader's views (issue 16) on the real stack, with a replay made for
this test whose every number is computed by hand below.

The replay (frames every 10 s of exchange time, played at speed 50, so 100 s of exchange time = 2 s):
  XRPUSDT 0.5 → 0.475 at t=210 (−5 %)      SELL without a position → rejected `no_position`
  ETHUSDT 2000 → 2100 at t=310 (+5 %)      BUY;   2100 → 2016 at t=610 (−4 % vs 2100)  SELL (a loss)
  SOLUSDT 100 → 105 at t=410 (+5 %)        BUY;   → 112 at t=700; → 108 at t=1000 (−3.57 % vs 112) SELL (a win)
  BTCUSDT 40000 → 42000 at t=510 (+5 %)    BUY;   → 42400 at t=1100, stays open
Default limits: INITIAL_CAPITAL 1000, MAX_POSITION_SIZE 10 %, SLIPPAGE_BPS 5, FEE_PCT 0.1, 5-min window,
10-min cooldown (it holds back every repeat: each symbol makes exactly the signals above). The BUYs are
100 s (2 s wall) apart, so each is sized on the equity after the previous fill.

ETH BUY   equity 1000 → 100 USDT → qty floor8(100 / 2100) = 0.04761904; price 2100·1.0005 = 2101.05;
          notional 0.04761904·2101.05 = 100.049983992; fee 0.1 % = 0.100049983992;
          cash 1000 − 100.150033975992 = 899.849966024008; entry 100.150033975992 / 0.04761904 = 2103.15105
SOL BUY   equity 899.849966024008 + 0.04761904·2100 (99.999984) = 999.849950024008 → qty
          floor8(99.9849950024008 / 105) = 0.95223804; price 105.0525; notional 100.0349866971;
          fee 0.100034986697; cash 799.714944340211; entry 100.135021683797 / 0.95223804 = 105.1575525
BTC BUY   equity 799.714944340211 + 99.999984 + 0.95223804·105 (99.9849942) = 999.699922540211 → qty
          floor8(99.9699922540211 / 42000) = 0.00238023; price 42021; notional 100.01964483;
          fee 0.10001964483; cash 699.595279865381; entry 100.11966447483 / 0.00238023 = 42063.021
ETH SELL  price 2016·0.9995 = 2014.992; notional 0.04761904·2014.992 = 95.95198464768; fee 0.095951984648;
          realized 95.95198464768 − 0.095951984648 − 100.150033975992 = −4.29400131296;
          cash 795.451312528413; equity 795.451312528413 + 99.9849942 + 99.96966 = 995.405966728413
SOL SELL  price 108·0.9995 = 107.946; notional 0.95223804·107.946 = 102.79028746584; fee 0.102790287466;
          realized 102.79028746584 − 0.102790287466 − 100.135021683797 = 2.552475494577; cash 898.138809706787
BTC mark  42400: value 0.00238023·42400 = 100.921752; unrealized 100.921752 − 100.11966447483 = 0.80208752517;
          equity 898.138809706787 + 100.921752 = 999.060561706787
Totals    realized −4.29400131296 + 2.552475494577 = −1.741525818383; fees 0.100049983992 + 0.100034986697
          + 0.10001964483 + 0.095951984648 + 0.102790287466 = 0.498846887633; 1 win of 2 closes = 50 %
Drawdown  the curve starts at 1000 and falls to 995.405966728413 at the ETH SELL (every later low is
          above it): 4.594033271587 USDT = 0.4594033271587 % → 0.459403
Today     (1000 − 999.060561706787) / 1000 = 0.0939438293213 % → 0.093944; exposure 100.921752 / 999.060561706787
          = 10.101665 %; headroom = min(10 % of equity 99.906, cap room 398.6, cash 896.8) = 99.91 (position size)
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import subprocess
from decimal import Decimal as D
from pathlib import Path

import pytest
import yaml

from tests.helpers import STACKS, StackFixture, cdb, cdb_json, pg_connect, wait_until

pytestmark = pytest.mark.e2e

STACK = STACKS["books"]
SYSTEM, PREFIX = STACK.system, STACK.prefix
TABLES = ("signals", "risk_events", "orders", "trades", "positions", "portfolio_snapshots", "daily_pnl")
FINAL_EQUITY = D("999.060561706787")

# (symbol, start price, [(from t, new price)]), t in seconds of exchange time
PATHS = (
    ("XRPUSDT", "0.5", [(210, "0.475")]),
    ("ETHUSDT", "2000", [(310, "2100"), (610, "2016")]),
    ("SOLUSDT", "100", [(410, "105"), (700, "112"), (1000, "108")]),
    ("BTCUSDT", "40000", [(510, "42000"), (1100, "42400")]),
)


def frames(start_ms: int = 1_767_225_600_000) -> list[str]:
    lines = []
    for t in range(0, 1201, 10):
        items = []
        for symbol, start, moves in PATHS:
            price = start
            for at, new in moves:
                if t >= at:
                    price = new
            items.append(
                {
                    "e": "24hrMiniTicker",
                    "E": start_ms + t * 1000,
                    "s": symbol,
                    "c": price,
                    "o": start,
                    "h": price,
                    "l": price,
                    "v": "1000",
                    "q": "500000000",
                }  # fmt: skip
            )
        lines.append(json.dumps(items, separators=(",", ":")))
    return lines


_pg = functools.partial(pg_connect, port=STACK.pg_port)


def rows_per_book(project: Path) -> dict[str, dict[str, int]]:
    with _pg(project) as conn:
        return {
            t: dict(conn.execute(f"SELECT portfolio, count(*) FROM {t} GROUP BY 1").fetchall())  # noqa: S608
            for t in TABLES
        }


def keep_sample(name: str, text: str) -> None:
    """With CDB_SAMPLES_DIR set, keep a view's table output (the samples in docs/trading.md come from here)."""
    folder = os.environ.get("CDB_SAMPLES_DIR")
    if folder:
        Path(folder, f"{name}.txt").write_text(text)


def decisions(project: Path, book: str) -> list[tuple]:
    """What the risk manager decided in `book`, in exchange-time order (for failure messages)."""
    with _pg(project) as conn:
        return conn.execute(
            """SELECT s.symbol, s.side, s.change_pct, r.decision, r.reason, s.tick_time FROM signals s
               JOIN risk_events r ON r.signal_id = s.signal_id WHERE s.portfolio = %s ORDER BY s.tick_time""",
            (book,),
        ).fetchall()


def wait_until_traded(project: Path, book: str, timeout: float = 240) -> None:
    """Five fills and the final BTC mark in `book`'s last snapshot."""
    seen: dict[str, tuple] = {}

    def traded() -> bool:
        with _pg(project) as conn:
            trades = conn.execute("SELECT count(*) FROM trades WHERE portfolio = %s", (book,)).fetchone()[0]
            snap = conn.execute(
                "SELECT equity FROM portfolio_snapshots WHERE portfolio = %s ORDER BY id DESC LIMIT 1", (book,)
            ).fetchone()
        seen["last"] = (trades, snap)
        return bool(trades == 5 and snap and snap[0] == FINAL_EQUITY)

    with contextlib.suppress(AssertionError):  # on time out: the failure below names the state it reached
        wait_until(f"book {book} traded", traded, timeout, every=1)
        return
    pytest.fail(f"book {book} did not reach the hand-computed end state: (trades, last equity) = {seen.get('last')}")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("books") / "project"
    (root / "replays").mkdir(parents=True)
    (root / "replays" / "books.jsonl").write_text("\n".join(frames()) + "\n")
    # converged below, once the playbook has its second feed
    fixture = StackFixture(
        STACK, env={"REPLAY_FILE": "books.jsonl", "REPLAY_SPEED": "50", "REPLAY_LOOP": "0"}, converge=False
    )
    fixture.up(root)
    # No exchange here: the "live" feed of this project is a second stand-in exchange, the same replay
    # server under another source name, so switching feeds is exercised end to end offline.
    stack_file = root / "playbooks" / "stack.yaml"
    stack = yaml.safe_load(stack_file.read_text())
    replay = stack["services"]["market_replay"]["container"]
    stack["feeds"]["live"] = {
        "profiles": ["replay"],
        "env": {
            "screener": {"FEED_URL": f"ws://{replay}:8010/ws", "FEED_SOURCE": "test-exchange", "CDB_FEED": "live"},
            **{svc: {"CDB_FEED": "live"} for svc in ("signal", "risk", "execution")},
        },
        "depends_on": {"screener": {"market_replay": "healthy"}},
    }
    stack_file.write_text(yaml.safe_dump(stack, sort_keys=False))
    try:
        out = cdb_json("rebuild", "--feed", "replay", project=root)
        assert out["result"] == "ok", out["error"]
        wait_until_traded(root, "replay")
        yield root
    finally:
        fixture.down()


def test_replay_trades_land_in_the_replay_book_only_and_probe_rows_in_neither(project):
    counts = rows_per_book(project)
    for table in TABLES:
        assert "live" not in counts[table], (table, counts[table])  # the live paper account is untouched
    replay = {t: counts[t].get("replay", 0) for t in TABLES}
    # 6 signals (XRP SELL, 3 BUYs, 2 SELLs) → 6 decisions → 5 orders → 5 trades; 3 position rows (ETH and SOL
    # kept at qty 0); one day row. Snapshots: one per fill plus marks (how many depends on timing).
    assert {t: replay[t] for t in TABLES if t != "portfolio_snapshots"} == {
        "signals": 6, "risk_events": 6, "orders": 5, "trades": 5, "positions": 3, "daily_pnl": 1,
    }, decisions(project, "replay")  # fmt: skip
    assert replay["portfolio_snapshots"] >= 5
    assert counts["signals"].get("probe", 0) >= 1  # rebuild's validate probe ran, in book 'probe'
    with _pg(project) as conn:
        mixed = conn.execute("SELECT count(*) FROM trades WHERE (portfolio = 'probe') <> is_probe").fetchone()[0]
    assert mixed == 0


def test_portfolio_shows_the_hand_computed_account(project):
    doc = cdb_json("portfolio", "--feed", "replay", project=project)
    assert (doc["command"], doc["book"], doc["chosen_by"]) == ("portfolio", "replay", "--feed")
    expect = {
        "cash": "898.138809706787", "equity": "999.060561706787", "exposure": "100.921752",
        "exposure_pct": "10.101665", "exposure_cap_pct": "50", "pending_buys": "0",
        "realized_pnl": "-1.741525818383", "unrealized_pnl": "0.80208752517", "initial_capital": "1000",
    }  # fmt: skip
    assert {k: doc[k] for k in expect} == expect
    assert doc["today"] == {
        "start_equity": "1000", "drawdown_pct": "0.093944", "max_daily_drawdown_pct": "5", "breaker_tripped": False,
    }  # fmt: skip
    assert doc["headroom"] == {"next_entry_usdt": "99.91", "limited_by": "position size"}
    [btc] = doc["positions"]
    assert {k: btc[k] for k in ("symbol", "qty", "entry", "mark", "value", "unrealized_pnl", "stale")} == {
        "symbol": "BTCUSDT", "qty": "0.00238023", "entry": "42063.021", "mark": "42400", "value": "100.921752",
        "unrealized_pnl": "0.80208752517", "stale": False,
    }  # fmt: skip
    table = cdb("portfolio", "--feed", "replay", project=project)
    keep_sample("portfolio", table.stdout)
    assert table.returncode == 0, table.stderr
    expected = ["book: replay", "898.14", "999.06", "10.10% of equity (cap 50.00%)", "-1.74", "+0.80", "0.09%"]
    expected += ["armed", "99.91", "position size", "BTCUSDT", "0.00238023", "42,063.021", "42,400"]
    for text in expected:
        assert text in table.stdout, (text, table.stdout)


def test_trades_lists_the_fills_with_signal_and_decision_and_the_rejection(project):
    doc = cdb_json("trades", "--feed", "replay", "--rejected", project=project)
    fills = [(f["symbol"], f["side"], f["qty"], f["price"], f["fee"], f["realized_pnl"]) for f in doc["fills"]]
    assert fills == [
        ("ETHUSDT", "BUY", "0.04761904", "2101.05", "0.100049983992", "0"),
        ("SOLUSDT", "BUY", "0.95223804", "105.0525", "0.100034986697", "0"),
        ("BTCUSDT", "BUY", "0.00238023", "42021", "0.10001964483", "0"),
        ("ETHUSDT", "SELL", "0.04761904", "2014.992", "0.095951984648", "-4.29400131296"),
        ("SOLUSDT", "SELL", "0.95223804", "107.946", "0.102790287466", "2.552475494577"),
    ]
    assert doc["totals"] == {"fills": 5, "fees": "0.498846887633", "realized_pnl": "-1.741525818383"}
    eth_buy = doc["fills"][0]
    # the signal behind it: +5 % over the window (2100 / 2000), confidence min(1, 5 / (2·3)) = 0.83333
    assert (eth_buy["signal"]["change_pct"], eth_buy["signal"]["confidence"], eth_buy["signal"]["price"]) == (
        "5", "0.83333", "2100",
    )  # fmt: skip
    assert eth_buy["risk"] == {
        "decision": "APPROVED", "reason": "approved", "requested_qty": "0.04761904", "approved_qty": "0.04761904",
    }  # fmt: skip
    assert [(r["symbol"], r["side"], r["stage"], r["reason"]) for r in doc["rejected"]] == [
        ("XRPUSDT", "SELL", "risk", "no_position")
    ]
    only_sol = cdb_json("trades", "--feed", "replay", "--symbol", "solusdt", "--since", "2h", project=project)
    assert [f["side"] for f in only_sol["fills"]] == ["BUY", "SELL"] and only_sol["rejected"] is None
    table = cdb("trades", "--feed", "replay", "--rejected", project=project)
    keep_sample("trades", table.stdout)
    assert table.returncode == 0, table.stderr
    for text in ("book: replay", "2,101.05", "2,014.992", "-4.29", "+2.55", "+5.00% conf 0.83333", "no_position",
                 "5 fill(s), fees 0.4988 USDT"):  # fmt: skip
        assert text in table.stdout, (text, table.stdout)


def test_report_per_day_and_pair_drawdown_chart_and_html(project, tmp_path):
    html = tmp_path / "report.html"
    doc = cdb_json("report", "--feed", "replay", "--days", "1", "--html", str(html), project=project)
    pairs = {p["symbol"]: (p["trades"], p["closed"], p["wins"], p["win_rate_pct"], p["realized_pnl"], p["fees"])
             for p in doc["per_pair"]}  # fmt: skip
    assert pairs == {
        "BTCUSDT": (1, 0, 0, None, "0", "0.10001964483"),
        "ETHUSDT": (2, 1, 0, "0", "-4.29400131296", "0.19600196864"),  # 0.100049983992 + 0.095951984648
        "SOLUSDT": (2, 1, 1, "100", "2.552475494577", "0.202825274163"),  # 0.100034986697 + 0.102790287466
    }
    total = {"trades": 5, "closed": 2, "wins": 1, "win_rate_pct": "50", "realized_pnl": "-1.741525818383",
             "fees": "0.498846887633"}  # fmt: skip
    assert doc["total"] == total and [d["trades"] for d in doc["per_day"]] == [5]
    assert doc["max_drawdown"]["pct"] == "0.459403" and doc["max_drawdown"]["usdt"] == "4.594033271587"
    assert (doc["equity"]["start"], doc["equity"]["end"]) == ("1000", "999.060561706787")
    assert doc["html_file"] == str(html)
    table = cdb("report", "--feed", "replay", "--days", "1", project=project)
    keep_sample("report", table.stdout)
    assert table.returncode == 0, table.stderr
    for text in ("book: replay", "SOLUSDT", "100.00%", "50.00%", "max drawdown 0.46% = 4.59 USDT",
                 "equity (USDT, marked to market)", "999.06"):  # fmt: skip
        assert text in table.stdout, (text, table.stdout)
    assert any(ch in table.stdout for ch in "⠁⠂⠄⡀⢀⣀"), "plotext draws the curve in braille"

    page = html.read_text()
    assert "0.46%" in page and "4.59" in page and "-1.741525818383" in page and "0.498846887633" in page
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "") and "https://" not in page
    shot = tmp_path / "report.png"
    if shutil.which("chromium") is None:
        # .ci/run installs Debian's chromium; on a developer machine without it the page is checked
        # as text above and the rendering check is skipped with the reason
        if os.environ.get("CI"):
            pytest.fail("CI=true but no chromium on PATH; .ci/run must install it")
        pytest.skip("no chromium on PATH (apt-get install chromium) to render the HTML report")
    subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'chrome'}",
         "--window-size=1000,900", f"--screenshot={shot}", html.as_uri()],
        capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    assert shot.exists(), "chromium wrote no screenshot"
    from PIL import Image, ImageStat

    image = Image.open(shot).convert("RGB")
    raw = image.tobytes()
    assert max(ImageStat.Stat(image).var) > 100, "the screenshot is blank"
    # the curve's own colour (#1f6feb) is on screen: the SVG chart rendered
    blue = sum(
        1
        for r, g, b in zip(raw[0::3], raw[1::3], raw[2::3], strict=True)
        if abs(r - 31) < 40 and abs(g - 111) < 40 and abs(b - 235) < 40
    )
    assert blue > 300, f"only {blue} pixels of the equity line"


def test_switching_feeds_keeps_the_replay_book_and_starts_the_live_book_from_initial_capital(project):
    before = rows_per_book(project)
    out = cdb_json("rebuild", "--feed", "live", project=project)
    assert out["result"] == "ok", out["error"]
    recreated = {s["name"] for s in out["steps"] if s["action"] == "recreate"}
    assert {f"{PREFIX}signal", f"{PREFIX}risk", f"{PREFIX}execution"} <= recreated, recreated
    wait_until_traded(project, "live")  # the stand-in exchange plays the same moves for the live book
    after = rows_per_book(project)
    live_decisions = decisions(project, "live")
    for table in TABLES:  # not one replay row changed, none was wiped
        assert after[table].get("replay") == before[table].get("replay"), (table, before[table], after[table])
    assert {t: after[t].get("live", 0) for t in TABLES if t != "portfolio_snapshots"} == {
        "signals": 6, "risk_events": 6, "orders": 5, "trades": 5, "positions": 3, "daily_pnl": 1,
    }, live_decisions  # fmt: skip
    live = cdb_json("portfolio", project=project)  # the default book is now the last rebuild's feed
    assert (live["book"], live["chosen_by"]) == ("live", "last rebuild")
    assert (live["cash"], live["equity"], live["realized_pnl"]) == (
        "898.138809706787",
        "999.060561706787",
        "-1.741525818383",
    )  # a fresh book from INITIAL_CAPITAL, trading the same moves, ends where the replay book did
    replay = cdb_json("portfolio", "--feed", "replay", project=project)
    assert (replay["cash"], replay["equity"]) == ("898.138809706787", "999.060561706787")
