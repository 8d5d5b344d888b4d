"""Issue 25 items 1–2 on the real stack (replay feed): a book's trading state, enforced by the risk manager.

Signals are put on cdb:signals the way the signal engine does (a signals row, then the stream entry), for
symbols the replay never plays, so each decision here is ours and exact; the replay trades alongside.
1. halt → a BUY is rejected `halted`, no order; validate's probe still passes and says the book is halted;
2. resume, two BUYs fill; reduce → a BUY is rejected `reducing`, the SELL of a held position fills;
3. the state survives `docker restart` of risk and a `rebuild` (risk still rejects `reducing`);
4. `halt --flatten` without --yes → exit 7 listing what would be sold; with it every position is closed
   at market with slippage and fee, the book ends HALTED.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.helpers import STACKS, StackFixture, cdb, cdb_json, pg_connect, publish_signal, wait_until

pytestmark = pytest.mark.e2e

STACK = STACKS["trading_controls"]
# the replay at real speed: it plays along but seldom trades, so exposure never crowds out our BUYs
FIXTURE = StackFixture(STACK, env={"REPLAY_SPEED": "1"}, rebuild_args=("--feed", "replay"))
BOOK = ["--feed", "replay"]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield from FIXTURE.around(tmp_path_factory.mktemp("controls"))


def _query(project: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with pg_connect(project, STACK.pg_port) as conn:
        return conn.execute(sql, params).fetchall()


def _signal(project: Path, symbol: str, side: str, price: str) -> str:
    return publish_signal(project, STACK, symbol, side, price)


def _decision(project: Path, signal_id: str) -> tuple[str, str, Any]:
    """(decision, reason, the order's status or None) once risk decided the signal."""

    def decided() -> list[tuple[Any, ...]]:
        return _query(
            project,
            """SELECT r.decision, r.reason, o.status FROM risk_events r
               LEFT JOIN orders o ON o.risk_event_id = r.risk_event_id WHERE r.signal_id = %s""",
            (signal_id,),
        )

    decision, reason, status = wait_until(f"risk's decision on {signal_id}", decided, timeout=30)[0]
    return decision, reason, status


def _filled(project: Path, signal_id: str) -> tuple[Any, ...]:
    def fill() -> list[tuple[Any, ...]]:
        return _query(
            project,
            """SELECT t.side, t.qty, t.price, t.fee, o.reference_price FROM trades t JOIN orders o USING (order_id)
               WHERE o.signal_id = %s""",
            (signal_id,),
        )

    return wait_until(f"the fill of {signal_id}", fill, timeout=30)[0]


def _held(project: Path) -> dict[str, Decimal]:
    return dict(_query(project, "SELECT symbol, qty FROM positions WHERE portfolio = 'replay' AND qty > 0"))  # type: ignore[arg-type]


def _state(project: Path) -> dict[str, Any]:
    doc = cdb_json("trading", "status", *BOOK, project=project)
    assert [b["book"] for b in doc["books"]] == ["replay"]
    return doc["books"][0]


def test_halt_rejects_new_buys_while_the_probe_still_passes(project):
    doc = cdb_json("trading", "halt", *BOOK, "--reason", "odd fills at night", "--yes", project=project)
    assert doc["changed"]["to"] == "HALTED" and doc["books"][0]["state"] == "HALTED"
    assert doc["changed"]["changed_by"].endswith("(cdb-ops)")
    assert doc["history"]["replay"][0]["reason"] == "odd fills at night"

    assert _decision(project, _signal(project, "CTLAUSDT", "BUY", "10")) == ("REJECTED", "halted", None)

    r = cdb("validate", "--json", project=project)
    probe = next(c for c in json.loads(r.stdout)["checks"] if c["name"] == "pipeline probe")
    assert probe["status"] == "pass", probe
    assert probe["facts"]["active_book_state"] == "HALTED" and "HALTED" in probe["detail"], probe
    portfolio = cdb_json("portfolio", *BOOK, project=project)
    assert portfolio["trading_state"]["state"] == "HALTED"


def test_reduce_rejects_entries_and_lets_a_held_position_be_sold(project):
    cdb_json("trading", "resume", *BOOK, "--reason", "checked", "--yes", project=project)
    buys = {sym: _signal(project, sym, "BUY", "10") for sym in ("CTLBUSDT", "CTLCUSDT")}
    for sym, sid in buys.items():
        assert _decision(project, sid)[0] == "APPROVED", sym
        _filled(project, sid)
    assert {"CTLBUSDT", "CTLCUSDT"} <= set(_held(project))

    doc = cdb_json("trading", "reduce", *BOOK, "--reason", "exits only tonight", "--yes", project=project)
    assert (doc["changed"]["from"], doc["books"][0]["state"]) == ("ACTIVE", "REDUCING")
    assert _decision(project, _signal(project, "CTLDUSDT", "BUY", "10")) == ("REJECTED", "reducing", None)
    sell = _signal(project, "CTLBUSDT", "SELL", "10")
    assert _decision(project, sell)[:2] == ("APPROVED", "approved")
    side, qty, _price, fee, _ref = _filled(project, sell)
    assert side == "SELL" and qty > 0 and fee > 0
    assert "CTLBUSDT" not in _held(project)


def test_the_state_survives_a_restart_of_risk_and_a_rebuild(project):
    docker.from_env().containers.get(STACK.prefix + "risk").restart(timeout=10)
    wait_until("risk healthy again", lambda: docker.from_env().containers.get(STACK.prefix + "risk")
               .attrs["State"].get("Health", {}).get("Status") == "healthy", timeout=60)  # fmt: skip
    assert _state(project)["state"] == "REDUCING"
    assert _decision(project, _signal(project, "CTLEUSDT", "BUY", "10"))[:2] == ("REJECTED", "reducing")

    out = cdb_json("rebuild", *BOOK, project=project)
    assert out["result"] == "ok"
    assert _state(project)["stored_state"] == "REDUCING"
    assert _decision(project, _signal(project, "CTLFUSDT", "BUY", "10"))[:2] == ("REJECTED", "reducing")


def test_halt_flatten_asks_first_then_closes_every_position_at_market(project):
    held = _held(project)
    assert "CTLCUSDT" in held
    r = cdb("trading", "halt", *BOOK, "--flatten", "--reason", "flat for the night", "--json", project=project)
    assert r.returncode == 7, r.stdout + r.stderr
    would = json.loads(r.stdout)["error"]["details"]["would_sell"]
    assert {p["symbol"] for p in would} == set(held)
    assert _held(project) == held  # nothing was sold

    doc = cdb_json("trading", "halt", *BOOK, "--flatten", "--reason", "flat for the night", "--yes", project=project)
    assert doc["flatten"]["still_open"] == [] and doc["flatten"]["closed"] == len(held)
    assert doc["books"][0]["state"] == "HALTED" and _held(project) == {}
    sold = {p["symbol"]: p["signal_id"] for p in doc["flatten"]["sold"]}
    side, qty, price, fee, reference = _filled(project, sold["CTLCUSDT"])
    assert (side, qty) == ("SELL", held["CTLCUSDT"])
    assert price == (reference * (1 - Decimal(5) / 10000)).quantize(price)  # the usual 5 bps of slippage
    assert fee == (qty * price * Decimal("0.001")).quantize(fee)  # and the 0.1 % fee
    states = [h["state"] for h in cdb_json("trading", "status", *BOOK, project=project)["history"]["replay"]]
    assert states[:2] == ["HALTED", "REDUCING"]  # exits passed while flattening, then the halt


def test_a_halt_takes_its_turn_with_a_fill_in_flight_instead_of_deadlocking(project):
    """Execution filling an order holds it, then writes today's day row; a halt touches the day row, then
    cancels the unfilled orders. Both waiting, Postgres would kill one ("deadlock detected": a failed halt,
    or an ERROR line that fails validate). The halt steps back while the fill holds the order, and goes
    once it committed: both succeed, the order is cancelled, nothing but lock timeouts in the log."""
    engine = docker.from_env()
    execution = engine.containers.get(STACK.container("execution"))
    since = int(time.time())
    cdb_json("trading", "resume", *BOOK, "--reason", "one more order", "--yes", project=project)
    execution.stop(timeout=10)  # the order stays NEW: this test plays execution's part
    try:
        signal_id = _signal(project, "CTLDUSDT", "BUY", "10")
        decision, _reason, status = _decision(project, signal_id)
        assert (decision, status) == ("APPROVED", "NEW")
        order_id = _query(project, "SELECT order_id FROM orders WHERE signal_id = %s", (signal_id,))[0][0]
        with pg_connect(project, STACK.pg_port, autocommit=False, application_name="cdb_execution") as fill:
            fill.execute("SELECT status FROM orders WHERE order_id = %s FOR UPDATE", (order_id,))  # a fill begins
            halting = subprocess.Popen(
                [sys.executable, "-m", "cdb_ops", "trading", "halt", *BOOK, "--reason", "mid-fill", "--yes", "--json"],
                cwd=project,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            with pg_connect(project, STACK.pg_port) as watcher:  # the halt is waiting for a lock
                wait_until(
                    "the halt waits for the order",
                    lambda: watcher.execute("SELECT count(*) FROM pg_locks WHERE NOT granted").fetchone()[0],
                    timeout=30,
                    every=0.02,
                )
            # the fill's next step: today's day row (the halt touched it first)
            fill.execute(
                "UPDATE daily_pnl SET updated_at = updated_at "
                "WHERE portfolio = 'replay' AND day = (now() AT TIME ZONE 'UTC')::date"
            )
            fill.commit()
        out, err = halting.communicate(timeout=90)
        assert halting.returncode == 0, out + err
        doc = json.loads(out)
        assert doc["changed"]["to"] == "HALTED" and doc["changed"]["cancelled_orders"] >= 1
        assert _query(project, "SELECT status FROM orders WHERE order_id = %s", (order_id,))[0][0] == "CANCELLED"
    finally:
        execution.start()
    logs = engine.containers.get(STACK.container("postgres")).logs(since=since).decode()
    assert "deadlock detected" not in logs
    errors = [ln for ln in logs.splitlines() if "ERROR:" in ln and "lock timeout" not in ln]
    assert errors == [], errors
