"""Issue 13 on the real stack: replays/corners.jsonl (see market_replay/scenario.py CORNERS_PATHS) through
screener → signal → risk → execution, with the signal engine recreated mid-run, then an order that
execution never sees expiring.

1. a held symbol keeps flowing below MIN_VOLUME: it is marked and its exit fires and fills;
5. recreating the signal container mid-run changes no decision: no second BUY within the cooldown,
   and the window that began before the restart still fires its BUY after it;
6. an order execution never sees expires after ORDER_TTL_SECONDS: EXPIRED with the reason, an audit
   line, its symbol free again, and it is never filled when execution comes back.
"""

from __future__ import annotations

import json
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

from tests.helpers import STACKS, StackFixture, cdb_json, pg_connect, wait_until

pytestmark = pytest.mark.e2e

STACK = STACKS["corners"]
PREFIX = STACK.prefix
SCREENER_PORT, SIGNAL_PORT = STACK.port(8000), STACK.port(8001)
ORDER_TTL = 4
SPEED = 8  # event seconds per real second: the REPUSDT BUY (t≈348 s) ~45 s in, WINUSDT's (t≈564 s) ~27 s later


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory):
    env = {"REPLAY_FILE": "corners.jsonl", "REPLAY_SPEED": str(SPEED), "ORDER_TTL_SECONDS": str(ORDER_TTL)}
    yield from StackFixture(STACK, env=env, rebuild_args=("--feed", "replay")).around(
        tmp_path_factory.mktemp("corners")
    )


def _query(project: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with pg_connect(project, STACK.pg_port) as conn:
        return conn.execute(sql, params).fetchall()


def _signals(project: Path) -> list[tuple[str, str, Any, Decimal]]:
    return _query(
        project,
        "SELECT symbol, side, tick_time, quote_volume FROM signals WHERE NOT is_probe ORDER BY tick_time, symbol",
    )


def _container(name: str) -> Any:
    return docker.from_env().containers.get(PREFIX + name)


def _audit_lines() -> list[dict[str, Any]]:
    code, out = _container("risk").exec_run(["cat", "/var/log/cdb_risk/audit.jsonl"])
    assert code == 0, out
    return [json.loads(line) for line in out.decode().splitlines() if line.strip()]


def test_replay_with_a_signal_engine_recreated_mid_run_decides_as_without_the_restart(project):
    # REPUSDT's BUY fired: recreate the signal container while WINUSDT's window is half-way up
    wait_until("the REPUSDT BUY", lambda: [s for s in _signals(project) if s[0] == "REPUSDT"], 180, 0.3)
    time.sleep(3)  # ~24 s of event time on: past t≈342 s, where an empty window could no longer reach 3 %
    old = _container("signal")
    old_id = old.id
    old.stop(timeout=10)
    old.remove()
    out = cdb_json("rebuild", "--feed", "replay", "--phase", "start", project=project, expect=None)
    steps = {s["name"]: s["action"] for s in out["steps"] if s["resource"] == "container"}
    assert steps.get(PREFIX + "signal") in ("create", "recreate"), steps
    new = _container("signal")
    assert new.id != old_id
    health = wait_until("the new signal engine's restore", lambda: _signal_health().get("restored"), 60, 0.3)
    assert health["ticks_replayed"] > 0 and health["cooldowns"] >= 2, health

    def scenario_done() -> list[tuple[Any, ...]] | None:
        rows = _signals(project)
        return rows if any(r[0] == "WINUSDT" for r in rows) else None

    try:
        rows = wait_until("the WINUSDT BUY after the restart", scenario_done, 150, 0.3)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{_diagnose(project)}") from None
    time.sleep(3)  # anything doubled would show up by now
    rows = _signals(project)
    # exactly the decisions of the uninterrupted run (tests/unit/services/test_corners.py, same file)
    assert [(r[0], r[1]) for r in rows] == [
        ("HELDUSDT", "BUY"), ("HELDUSDT", "SELL"), ("REPUSDT", "BUY"), ("WINUSDT", "BUY"),
    ], rows  # fmt: skip

    # 1. the held symbol flowed below MIN_VOLUME: its exit fired at 50,000-odd quote volume and filled
    held_sell = next(r for r in rows if r[:2] == ("HELDUSDT", "SELL"))
    assert held_sell[3] < Decimal("100000"), held_sell
    trades = _query(project, "SELECT side, qty FROM trades WHERE symbol = 'HELDUSDT' ORDER BY executed_at")
    assert [t[0] for t in trades] == ["BUY", "SELL"] and trades[0][1] == trades[1][1], trades
    low_volume_marks = _query(
        project, "SELECT count(*) FROM market_snapshots WHERE symbol = 'HELDUSDT' AND quote_volume < 100000"
    )[0][0]
    assert low_volume_marks > 0
    # never held, low volume: filtered as before
    assert _query(project, "SELECT count(*) FROM market_snapshots WHERE symbol = 'LOWUSDT'")[0][0] == 0
    position = _query(project, "SELECT qty FROM positions WHERE symbol = 'HELDUSDT' AND portfolio = 'replay'")
    assert position == [(0,)] or position[0][0] == 0, position
    assert _container("signal").attrs["RestartCount"] == 0


def _diagnose(project: Path) -> str:
    """What a failed wait needs to be understood: the signals, WINUSDT's stored prices, the engine's log."""
    win = _query(project, "SELECT minute, price, event_time FROM market_snapshots WHERE symbol = 'WINUSDT' ORDER BY 1")
    logs = _container("signal").logs(tail=40).decode(errors="replace")
    return f"signals: {_signals(project)}\nWINUSDT snapshots: {win}\nhealth: {_signal_health()}\nsignal log:\n{logs}"


def _signal_health() -> dict[str, Any]:
    return httpx.get(f"http://127.0.0.1:{SIGNAL_PORT}/health", timeout=5).json()["checks"]


def _probe(probe_id: str) -> str:
    r = httpx.post(f"http://127.0.0.1:{SCREENER_PORT}/probe", json={"probe_id": probe_id, "move_pct": 8}, timeout=10)
    assert r.status_code == 202, r.text
    return r.json()["symbol"]


def _orders(project: Path, symbol: str) -> list[tuple[Any, ...]]:
    return _query(
        project,
        """SELECT o.order_id::text, o.status, o.reject_reason, t.trade_id FROM orders o
           LEFT JOIN trades t USING (order_id) WHERE o.symbol = %s ORDER BY o.created_at""",
        (symbol,),
    )


def test_an_order_execution_never_sees_expires_releases_its_symbol_and_is_never_filled(project):
    execution = _container("execution")
    execution.stop(timeout=10)
    try:
        probe_id = str(uuid.uuid4())
        symbol = _probe(probe_id)
        first = wait_until("the probe's order", lambda: _orders(project, symbol), 60, 0.3)[0][0]
        expired = wait_until(
            "the order to expire",
            lambda: [o for o in _orders(project, symbol) if o[1] == "EXPIRED"],
            ORDER_TTL + 30,
            0.3,
        )
        assert expired[0][0] == first
        assert expired[0][2] == f"expired: not filled within {ORDER_TTL} s (ORDER_TTL_SECONDS)"
        line = next(a for a in _audit_lines() if a.get("order_id") == first and a.get("event") == "order_expired")
        assert line["decision"] == "EXPIRED" and line["order_ttl_seconds"] == ORDER_TTL
        assert Decimal(line["released_notional"]) > 0
    finally:
        execution.start()
    wait_until("execution healthy", lambda: _container("execution").attrs["State"].get("Health", {}).get("Status")
          == "healthy", 60, 0.3)  # fmt: skip
    # the same symbol again: not `position_exists` any more, approved and filled
    _probe(probe_id)
    orders = wait_until("the second order to fill", lambda: (o := _orders(project, symbol)) and len(o) == 2 and o[1][3]
                   and o, 60, 0.3)  # fmt: skip
    assert orders[0][1] == "EXPIRED" and orders[0][3] is None  # execution saw it later: never filled
    assert orders[1][1] == "FILLED"
    decisions = _query(project, "SELECT decision, reason FROM risk_events WHERE symbol = %s ORDER BY created_at",
                       (symbol,))  # fmt: skip
    assert decisions == [("APPROVED", "approved"), ("APPROVED", "approved")], decisions
