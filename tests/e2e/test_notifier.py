"""The notifier on the real engine: a receiver container on the stack's network stands in for the trader's
destinations (json:// Apprise URLs) — one that accepts (/ok), one that refuses (/refuse, HTTP 500) and
one that hangs (/hang). The shipped momentum replay then trades; its fills and its exit (with the PnL)
arrive at the receiver with the numbers of the trades table, an Alertmanager webhook is delivered, the
failing destinations are counted and shown by `status` — and trading is exactly what the scenario makes
(the same trades and positions, fills as fast) while two of three destinations fail. Finally the stack
without NOTIFY_URLS rebuilds green and validate says there is no destination."""

from __future__ import annotations

import contextlib
import functools
import json
import shutil
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

from tests.helpers import REPO, STACKS, StackFixture, cdb, cdb_json, pg_connect, wait_until

pytestmark = pytest.mark.e2e

STACK = STACKS["notifier"]
RECEIVER = STACK.container("receiver")
URLS = ",".join(f"json://{RECEIVER}:9000/{kind}/{n}" for n, kind in enumerate(("ok", "refuse", "hang"), start=1))
NOTIFIER = f"http://127.0.0.1:{STACK.port(8030)}"
_pg = functools.partial(pg_connect, port=STACK.pg_port)


def _start_receiver(project: Path) -> None:
    client = docker.from_env()
    image = client.containers.get(STACK.container("notifier")).image  # python3 is in it
    client.containers.run(
        image.id,
        ["python3", "/receiver.py", "9000"],
        name=RECEIVER,
        detach=True,
        user="10001",
        network=f"{STACK.prefix}network",
        labels={"cdb.test": STACK.system},  # not the stack's: status lists only the stack's own containers
        healthcheck={"test": ["NONE"]},  # the image's own check asks for the notifier's port
        volumes={str(REPO / "tests" / "e2e" / "receiver.py"): {"bind": "/receiver.py", "mode": "ro"}},
    )
    wait_until("the receiver answers", lambda: _receiver("/attempts") is not None, 30)


def _receiver(path: str) -> Any:
    client = docker.from_env()
    code, out = client.containers.get(RECEIVER).exec_run(
        [
            "python3",
            "-c",
            f"import urllib.request;print(urllib.request.urlopen('http://127.0.0.1:9000{path}').read().decode())",
        ]
    )
    return json.loads(out) if code == 0 else None


def _set_env(project: Path, **values: str) -> None:
    env = project / ".env"
    kept = [ln for ln in env.read_text().splitlines() if ln.split("=", 1)[0].strip() not in values]
    env.write_text("\n".join([*kept, *(f"{k}={v}" for k, v in values.items())]) + "\n")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("notify") / "p"
    # the project's own replays/: a one-frame file keeps the market quiet until the receiver is up
    (root / "replays").mkdir(parents=True)
    shutil.copy(REPO / "replays" / "momentum_demo.jsonl", root / "replays")
    first = (REPO / "replays" / "momentum_demo.jsonl").read_text().splitlines()[0]
    (root / "replays" / "quiet.jsonl").write_text(first + "\n")
    (root / "replays" / "crash.jsonl").write_text("".join(json.dumps(f) + "\n" for f in _crash_frames()))
    env = {
        "REPLAY_SPEED": "0",
        "REPLAY_FILE": "quiet.jsonl",
        "NOTIFY_URLS": URLS,
        "NOTIFY_EVENTS": "all:on",
        "NOTIFY_TIMEOUT_SECONDS": "2",
        "NOTIFY_RATE_PER_MINUTE": "600",
        "NOTIFY_HEARTBEAT_URL": f"http://{RECEIVER}:9000/beat/cdb",
        "NOTIFY_HEARTBEAT_SECONDS": "30",
    }
    fixture = StackFixture(STACK, env=env, rebuild_args=("--feed", "replay"))
    try:
        project = fixture.up(root)
        _start_receiver(project)
        _set_env(project, REPLAY_FILE="momentum_demo.jsonl")  # now the market moves: recreates the replay
        r = cdb("rebuild", "--feed", "replay", "--json", project=project)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        yield project
    finally:
        with contextlib.suppress(docker.errors.NotFound):  # first: it holds on to the stack's network
            docker.from_env().containers.get(RECEIVER).remove(force=True)
        fixture.down()


CRASH_START_MS = 1_736_553_600_000 + 3_600_000  # an hour of event time after the momentum scenario


def _crash_frames() -> list[list[dict[str, str | int]]]:
    """CRASHUSDT: flat at 10, +6 % (a BUY), flat, then one tick at 7 (-34 %: the exit, at a loss of ~3.4 %
    of equity, which trips a 1 % daily breaker at the very decision that lets the exit through)."""
    frames = []
    for t in range(0, 444, 4):
        if t <= 100:
            price = Decimal("10")
        elif t <= 160:
            price = Decimal("10") + Decimal("0.6") * (t - 100) / 60
        elif t < 404:
            price = Decimal("10.6")
        else:
            price = Decimal("7")
        price = price.quantize(Decimal("0.0001"))
        quote = Decimal(5_000_000)
        frames.append(
            [
                {
                    "e": "24hrMiniTicker",
                    "E": CRASH_START_MS + t * 1000,
                    "s": "CRASHUSDT",
                    "c": f"{price:f}",
                    "o": "10.0000",
                    "h": "10.6000",
                    "l": f"{min(price, Decimal(10)):f}",
                    "v": f"{(quote / price).quantize(Decimal('0.0001')):f}",
                    "q": f"{quote:f}",
                }
            ]
        )
    return frames


def _trades(project: Path) -> list[tuple]:
    with _pg(project) as conn:
        return conn.execute(
            """SELECT t.trade_id::text, t.symbol, t.side, t.qty, t.price, t.fee, t.notional, t.realized_pnl,
                      extract(epoch FROM t.executed_at - s.created_at)
                 FROM trades t JOIN orders o USING (order_id) JOIN risk_events r USING (risk_event_id)
                 JOIN signals s ON s.signal_id = r.signal_id
                WHERE t.portfolio = 'replay' AND NOT t.is_probe ORDER BY t.executed_at"""
        ).fetchall()


def _scenario_done(project: Path) -> list[tuple]:
    trades = _trades(project)
    return trades if any(t[1] == "ETHUSDT" and t[2] == "SELL" for t in trades) else []


def _cent(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.01'), rounding=ROUND_HALF_UP):+f}"


def _num(value: Decimal) -> str:
    text = f"{value:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _delivered(title_part: str) -> list[dict]:
    return [m for m in _receiver("/received") or [] if title_part in m["body"].get("title", "")]


def test_replay_fills_and_the_exit_arrive_with_their_numbers(project):
    trades = wait_until("the scenario's exit (ETHUSDT SELL)", lambda: _scenario_done(project), 240, every=1)
    for _id, symbol, side, qty, price, fee, notional, pnl, _ in trades:
        if side == "BUY":
            title = f"[replay] bought {symbol}"
        else:
            basis = notional - fee - pnl
            pct = pnl / basis * 100
            title = f"[replay] exit {symbol}: {_cent(pnl)} USDT ({_cent(pct)} %)"
        got = wait_until(f"the notification of {side} {symbol}", lambda t=title: _delivered(t), 30)
        body = got[0]["body"]["message"]
        assert f"{side} {_num(qty)} {symbol} @ {_num(price)} = " in body, body
        assert f"fee {abs(Decimal(_cent(fee))):f}" in body, body
        assert f"{notional.quantize(Decimal('0.01'), rounding=ROUND_HALF_UP):f} USDT" in body, body
        if side == "SELL":
            assert f"realized PnL {_cent(pnl)} USDT" in body, body


def test_an_alertmanager_webhook_is_delivered_firing_and_resolved(project):
    alert = {
        "status": "firing",
        "labels": {"alertname": "ServiceDown", "severity": "critical", "service": "risk"},
        "annotations": {"summary": "risk is not running", "description": "cdb_risk is down for 1 min"},
        "startsAt": "2026-12-07T10:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
    }
    webhook = {
        "version": "4",
        "groupKey": '{}:{alertname="ServiceDown"}',
        "status": "firing",
        "receiver": "trader",
        "groupLabels": {"alertname": "ServiceDown"},
        "commonLabels": alert["labels"],
        "commonAnnotations": alert["annotations"],
        "externalURL": "http://alertmanager:9093",
        "alerts": [alert],
    }
    assert httpx.post(f"{NOTIFIER}/alerts", json=webhook, timeout=5).status_code == 200
    fired = wait_until("the firing alert", lambda: _delivered("[FIRING:1] ServiceDown (critical)"), 30)
    assert "risk is not running (service=risk) since 2026-12-07 10:00 UTC" in fired[0]["body"]["message"]
    assert fired[0]["body"]["type"] == "failure"
    done = {**alert, "status": "resolved", "endsAt": "2026-12-07T10:03:00Z"}
    resolved = {**webhook, "status": "resolved", "alerts": [done]}
    assert httpx.post(f"{NOTIFIER}/alerts", json=resolved, timeout=5).status_code == 200
    back = wait_until("the resolution", lambda: _delivered("[RESOLVED:1] ServiceDown"), 30)
    assert "✓ resolved: risk is not running" in back[0]["body"]["message"] and back[0]["body"]["type"] == "success"
    assert httpx.post(f"{NOTIFIER}/alerts", content=b"not json", timeout=5).status_code == 400


def test_failing_destinations_change_no_trading_number(project):
    trades = wait_until("the scenario's exit", lambda: _scenario_done(project), 240, every=1)
    # the momentum scenario (images/market_replay/market_replay/scenario.py): ETH and SOL bought, the ETH
    # position closed with its realized PnL, SOL still open — exactly, with two of three destinations down
    assert [(t[1], t[2]) for t in trades] == [("ETHUSDT", "BUY"), ("SOLUSDT", "BUY"), ("ETHUSDT", "SELL")]
    eth_buy, eth_sell = trades[0], trades[2]
    assert eth_sell[3] == eth_buy[3]  # the whole position sold
    # realized = what the sale brought (after its fee) - what the coins cost (with the buying fee)
    cost = eth_buy[6] + eth_buy[5]
    assert abs(eth_sell[7] - (eth_sell[6] - eth_sell[5] - cost)) < Decimal("0.000001"), (eth_buy, eth_sell)
    with _pg(project) as conn:
        positions = dict(conn.execute("SELECT symbol, qty FROM positions WHERE portfolio = 'replay'").fetchall())
        rejected = conn.execute(
            "SELECT count(*) FROM risk_events WHERE decision = 'REJECTED' AND NOT is_probe AND portfolio = 'replay'"
        ).fetchone()[0]
    assert positions["ETHUSDT"] == 0 and positions["SOLUSDT"] == trades[1][3]
    assert rejected >= 2  # XRP without a position, ETH while held
    assert max(t[8] for t in trades) < 5, trades  # signal -> fill: never waiting on a destination
    # the failures are counted, per destination, and `status` shows them
    health = wait_until(
        "the hanging destination's failure",
        lambda: (
            (h := httpx.get(f"{NOTIFIER}/health", timeout=5).json())["checks"]["destinations"]["json#3"]["failed"] and h
        ),
        60,
    )
    dests = health["checks"]["destinations"]
    assert dests["json#1"]["failed"] == 0 and dests["json#1"]["sent"] >= 3
    assert dests["json#2"]["failed"] >= 3 and "500" in dests["json#2"]["last_error"]
    assert RECEIVER not in json.dumps(health)  # the URLs' parts never appear
    assert health["status"] == "ok" and "json#2" in health["checks"]["failing"]  # facts, never unready
    metrics = httpx.get(f"{NOTIFIER}/metrics", timeout=5).text
    assert 'cdb_notify_failures_total{destination="json#2"}' in metrics
    status = cdb_json("status", project=project)
    notes = status["notifications"]
    assert notes["destinations"] == 3 and notes["failed"] >= 4 and "json#2" in notes["failing"]
    text = cdb("status", project=project).stdout
    assert "json#2 FAILING" in text
    assert "/refuse/" not in text and RECEIVER not in text, text


def _notifications_check(project: Path) -> tuple[dict[str, Any], str]:
    r = cdb("validate", "--json", project=project)
    doc = json.loads(r.stdout)
    return next(c for c in doc["checks"] if c["name"] == "notifications"), r.stdout


def test_validate_proves_the_hops_it_can_and_names_the_failing_destination(project):
    # the default stack runs Prometheus and Alertmanager: the whole path, rule -> Alertmanager -> notifier
    check, stdout = _notifications_check(project)
    facts = check["facts"]
    assert facts["hops"] == ["rule", "alertmanager", "notifier", "destination"], check
    assert facts["accepted"] == ["json#1"] and set(facts["refused"]) == {"json#2", "json#3"}
    # without Alertmanager, validate posts the alert to the notifier itself and says which hops that proved
    alertmanager = docker.from_env().containers.get(STACK.container("alertmanager"))
    alertmanager.stop()
    try:
        check, stdout = _notifications_check(project)
    finally:
        alertmanager.start()
    facts = check["facts"]
    assert facts["hops"] == ["notifier", "destination"] and "not running" in check["detail"], check
    assert facts["accepted"] == ["json#1"] and set(facts["refused"]) == {"json#2", "json#3"}
    assert check["status"] == "warn" and "NOTIFY_URLS" in check["remedy"]
    got = _delivered("CdbValidateAlertPath")
    assert any(facts["test_id"] in m["body"]["message"] for m in got)
    for url in URLS.split(","):  # (the receiver's name is in the network's members, its URLs nowhere)
        assert url not in stdout and url.split("/", 3)[3] not in stdout


def test_a_replay_that_trips_the_breaker_is_notified_with_the_numbers(project):
    _set_env(project, REPLAY_FILE="crash.jsonl", REPLAY_SPEED="20", MAX_DAILY_DRAWDOWN="1")
    r = cdb("rebuild", "--feed", "replay", "--json", project=project)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]

    def tripped() -> tuple | None:
        with _pg(project) as conn:
            return conn.execute(
                """SELECT start_equity, updated_at, extract(epoch FROM updated_at) FROM daily_pnl
                    WHERE portfolio = 'replay' AND breaker_tripped ORDER BY day DESC LIMIT 1"""
            ).fetchone()

    start, _at, tripped_epoch = wait_until("the daily breaker tripped by the crash", tripped, 120, every=1)
    crash = wait_until(
        "the crash's exit", lambda: [t for t in _trades(project) if t[1] == "CRASHUSDT" and t[2] == "SELL"], 60
    )
    got = wait_until("the breaker notification", lambda: _delivered("[replay] circuit breaker TRIPPED"), 30)
    title, body = got[0]["body"]["title"], got[0]["body"]["message"]
    with _pg(project) as conn:  # the decision that tripped it: the risk manager's numbers
        equity, down, day_start = conn.execute(
            """SELECT equity, (limits->>'daily_drawdown_pct')::numeric, (limits->>'day_start_equity')::numeric
                 FROM risk_events WHERE portfolio = 'replay' AND NOT is_probe
                  AND (limits->>'daily_drawdown_pct')::numeric >= 1 ORDER BY created_at LIMIT 1"""
        ).fetchone()
    assert day_start == start and down >= 1
    assert title == f"[replay] circuit breaker TRIPPED: -{_cent(down)[1:]} % today", title
    assert f"Equity fell from {_cent(start)[1:]} to {_cent(equity)[1:]} USDT" in body, body
    assert "(at the SELL CRASHUSDT decision)" in body, body
    assert "the limit MAX_DAILY_DRAWDOWN is 1.00 %" in body and "exits and stop-outs still pass" in body
    exit_note = wait_until("the crash exit's notification", lambda: _delivered("[replay] exit CRASHUSDT: -"), 30)
    assert f"realized PnL {_cent(crash[0][7])} USDT" in exit_note[0]["body"]["message"]
    print(f"\nbreaker notification arrived {got[0]['at'] - float(tripped_epoch):.2f} s after the trip")


def test_summary_heartbeat_and_memory(project):
    """The daily summary (asked for now) counts the book's trades; the heartbeat calls its URL every 30 s;
    the notifier stays small."""
    answer = httpx.post(f"{NOTIFIER}/summary", timeout=10)
    assert answer.status_code == 200, answer.text
    with _pg(project) as conn:
        count, pnl = conn.execute(
            "SELECT count(*), sum(realized_pnl) FROM trades WHERE portfolio = 'replay' AND NOT is_probe"
        ).fetchone()
    got = wait_until("the summary", lambda: _delivered("Daily summary since"), 30)
    text = got[-1]["body"]["message"]
    assert f"[replay] {count} trade(s), realized PnL {_cent(pnl)} USDT" in text, text
    beats = wait_until("a heartbeat call", lambda: (_receiver("/attempts") or {}).get("beat"), 70)
    assert beats >= 1
    # by container: a rebuild that replaced the notifier keeps the previous one, stopped, for `cdb-ops rollback`
    rows = {r["container"]: r for r in cdb_json("status", project=project)["services"]}
    mib = rows[STACK.container("notifier")]["memory_bytes"] / 2**20
    print(f"\nnotifier memory: {mib:.1f} MiB (limit 96 MiB); heartbeat calls so far: {beats}")
    assert mib < 80


def test_without_destinations_the_stack_rebuilds_green_and_says_so(project):
    _set_env(project, NOTIFY_URLS="")
    out = cdb_json("rebuild", "--feed", "replay", project=project)
    recreated = {s["name"] for s in out["steps"] if s["action"] in ("create", "recreate")}
    assert recreated <= {STACK.container("notifier")}, recreated  # only the notifier's secret changed
    check = next(c for c in out["checks"] if c["name"] == "notifications")
    assert check["status"] == "warn" and "no notification destination" in check["detail"]
    assert "NOTIFY_URLS=" in check["remedy"]
    health = httpx.get(f"{NOTIFIER}/health", timeout=5).json()
    assert health["checks"]["destination_count"] == 0 and health["status"] == "ok"
