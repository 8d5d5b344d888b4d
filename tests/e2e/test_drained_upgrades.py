"""Issue 25 items 3, 4 and their tests in 6 on the real engine (replay feed, looping, plus our own signals):
1. a risk-limit change (.env MAX_POSITION_SIZE) while the stack trades: `plan` shows the drain; `rebuild`
   puts the book REDUCING, waits until nothing is in flight, swaps stop-first (Docker's events: the old
   risk/execution died before the new one started), gives the book its state back; afterwards no order
   is lost or filled twice and no signal is decided twice, and risk decides with the new limit;
2. a new risk configuration that starts but fails the end-to-end probe (a position size below the minimum
   order): the run exits 1 naming the probe and the rollback; the very previous containers (same id,
   image and config hash) run again and the book is ACTIVE again;
3. `cdb-ops rollback` by hand after a successful upgrade (exit 7 without --yes): the previous containers
   are back; a book the trader halted stays halted;
4. a run that applies a migration takes a verified backup first; rollback names the restore that undoes
   it, and that restore does.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import docker
import pytest
import redis

from tests.helpers import (
    STACKS,
    StackFixture,
    cdb_exit_json,
    cdb_json,
    env_values,
    pg_connect,
    publish_signal,
    wait_until,
)

pytestmark = pytest.mark.e2e

STACK = STACKS["drained_upgrades"]
# the replay plays its scenario again and again, so the stack keeps trading through every upgrade here
FIXTURE = StackFixture(
    STACK, env={"REPLAY_SPEED": "20", "REPLAY_LOOP": "1", "CDB_DRAIN_TIMEOUT": "30"}, rebuild_args=("--feed", "replay")
)
BOOK = ["--feed", "replay"]
SEEN: dict[str, Any] = {}  # what an earlier test saw that a later one compares with


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield from FIXTURE.around(tmp_path_factory.mktemp("drain"))


def _query(project: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with pg_connect(project, STACK.pg_port) as conn:
        return conn.execute(sql, params).fetchall()


def _set_env(project: Path, key: str, value: str) -> None:
    env = project / ".env"
    lines = [ln for ln in env.read_text().splitlines() if not ln.startswith(f"{key}=")]
    env.write_text("\n".join([*lines, f"{key}={value}"]) + "\n")


def _container(name: str) -> tuple[str, str, str, str]:
    """(id, image id, config hash, state) of a container."""
    c = docker.from_env().api.inspect_container(name)
    return c["Id"], c["Image"], c["Config"]["Labels"]["cdb.config-hash"], c["State"]["Status"]


class Trader(threading.Thread):
    """Our own flow on top of the replay's: a BUY, then a SELL, of a few symbols the replay never plays,
    stored and published the way the signal engine does, as fast as the stack takes them."""

    def __init__(self, project: Path):
        super().__init__(daemon=True)
        self.project, self.stop, self.sent = project, threading.Event(), []

    def run(self) -> None:
        client = redis.Redis(
            host="127.0.0.1", port=STACK.redis_port, password=env_values(self.project)["REDIS_PASSWORD"]
        )
        with pg_connect(self.project, STACK.pg_port) as conn:
            n = 0
            while not self.stop.is_set():
                symbol, side = f"DRN{n % 4}USDT", ("BUY", "SELL")[(n // 4) % 2]
                signal_id, now = str(uuid.uuid4()), int(time.time() * 1000)
                try:
                    conn.execute(
                        """INSERT INTO signals (signal_id, symbol, side, price, change_pct, window_seconds,
                               quote_volume, threshold_pct, confidence, tick_time, is_probe, portfolio)
                           VALUES (%s, %s, %s, 10, 3, 60, 1000000, 3, 1, to_timestamp(%s / 1000.0), false, 'replay')""",
                        (signal_id, symbol, side, now),
                    )
                    event = {
                        "event_id": signal_id, "symbol": symbol, "side": side, "price": "10", "change_pct": "3",
                        "window_seconds": 60, "quote_volume": "1000000", "threshold_pct": "3", "confidence": "1",
                        "tick_id": str(uuid.uuid4()), "tick_time": now, "received_at": now, "produced_at": now,
                        "is_probe": False, "portfolio": "replay",
                    }  # fmt: skip
                    client.xadd("cdb:signals", {"data": json.dumps(event)})
                    self.sent.append((signal_id, side, time.time()))
                except Exception:  # noqa: BLE001 - Redis or Postgres restarting is not what this test is about
                    time.sleep(0.2)
                n += 1
                time.sleep(0.05)
        client.close()


def _settled(project: Path) -> bool:
    """Every signal decided and no order NEW: the flow has nothing in flight."""
    (undecided,) = _query(
        project,
        "SELECT count(*) FROM signals s WHERE NOT EXISTS (SELECT 1 FROM risk_events r WHERE r.signal_id = s.signal_id)",
    )[0]
    (new,) = _query(project, "SELECT count(*) FROM orders WHERE status = 'NEW'")[0]
    return undecided == 0 and new == 0


def _books_ledger_is_whole(project: Path) -> None:
    """No signal decided twice, every approval exactly one order, every order exactly one fill or none
    with a final status (rejected, expired, cancelled)."""
    twice = _query(project, "SELECT signal_id FROM risk_events GROUP BY signal_id HAVING count(*) > 1")
    assert twice == [], f"signals decided twice: {twice}"
    orders_per_approval = _query(
        project,
        """SELECT r.risk_event_id, count(o.order_id) FROM risk_events r
           LEFT JOIN orders o ON o.risk_event_id = r.risk_event_id
           WHERE r.decision = 'APPROVED' GROUP BY r.risk_event_id HAVING count(o.order_id) <> 1""",
    )
    assert orders_per_approval == [], f"approvals without exactly one order: {orders_per_approval}"
    wrong = _query(
        project,
        """SELECT o.order_id, o.status, count(t.trade_id) FROM orders o LEFT JOIN trades t ON t.order_id = o.order_id
           GROUP BY o.order_id, o.status
           HAVING NOT ((o.status = 'FILLED' AND count(t.trade_id) = 1)
                    OR (o.status IN ('REJECTED', 'EXPIRED', 'CANCELLED') AND count(t.trade_id) = 0))""",
    )
    assert wrong == [], f"orders lost or filled twice: {wrong}"


class Events(threading.Thread):
    """Docker's start/die events of our risk and execution containers, read live while the upgrade runs:
    the engine keeps only its last 1024 events for a later query, and the shared engine's health checks of
    every stack on this machine push ours out within seconds."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.seen: list[tuple[str, str, str]] = []  # (service, action, container id)
        self.stream = docker.from_env().events(
            decode=True, filters={"type": "container", "label": f"cdb.system={STACK.system}"}
        )

    def run(self) -> None:
        for e in self.stream:
            if e.get("Action") in ("start", "die"):
                self.seen.append((e["Actor"]["Attributes"].get("cdb.service", ""), e["Action"], e["id"]))

    def of(self, service: str) -> list[tuple[str, str]]:
        return [(a, cid) for s, a, cid in self.seen if s == service]


def test_a_risk_limit_change_while_trading_drains_swaps_stop_first_and_loses_nothing(project):
    SEEN["before_upgrade"] = {s: _container(STACK.container(s)) for s in ("risk", "execution")}
    trader = Trader(project)
    trader.start()
    try:
        wait_until(
            "our signals decided",
            lambda: len(trader.sent) > 20 and _query(project, "SELECT count(*) FROM risk_events")[0][0],
            60,
        )
        _set_env(project, "MAX_POSITION_SIZE", "8.0")
        plan = cdb_json("plan", project=project)
        drain = [c for c in plan["changes"] if c["action"] == "drain"]
        assert drain and drain[0]["resource"] == "book" and drain[0]["name"] == "replay", plan["changes"]
        assert "risk is recreated (changed: env)" in drain[0]["reason"]

        events = Events()
        events.start()
        try:
            doc = cdb_json("rebuild", *BOOK, project=project)
        finally:
            time.sleep(1)  # the last events reach the stream
            events.stream.close()
        time.sleep(2)  # the flow goes on after the upgrade too
    finally:
        trader.stop.set()
        trader.join(10)
    SEEN["upgrade"] = doc["upgrade"]
    upgrade = doc["upgrade"]
    assert [b["book"] for b in upgrade["drain"]["books"]] == ["replay"]
    assert upgrade["drain"]["books"][0] == {
        "book": "replay",
        "before": "ACTIVE",
        "set_reducing": True,
        "restored": "ACTIVE",
    }
    assert upgrade["drain"]["in_flight_at_swap"]["new_orders"] == 0
    assert not any(upgrade["drain"]["in_flight_at_swap"]["pending"].values())
    steps = [(s["phase"], s["resource"], s["action"], s["name"]) for s in doc["steps"]]
    drain_at = steps.index(("start", "book", "drain", "replay"))
    risk_at = steps.index(("start", "container", "recreate", STACK.container("risk")))
    assert drain_at < risk_at and ("validate", "book", "restore", "replay") in steps
    print(f"drained upgrade: {doc['duration_seconds']} s, drain {upgrade['drain']['seconds']} s")

    # the book: REDUCING by the rebuild while it drained, ACTIVE again after, both recorded with who and why
    history = cdb_json("trading", "status", *BOOK, project=project)["history"]["replay"]
    assert [(h["state"], h["reason"]) for h in history[:2]] == [
        ("ACTIVE", "drain for upgrade done: the state before it restored"),
        ("REDUCING", "drain for upgrade"),
    ]
    assert all(h["changed_by"].startswith("cdb-ops rebuild") for h in history[:2])

    # never two consumers of one role: the old process died before the new one started
    for service in ("risk", "execution"):
        old_id = SEEN["before_upgrade"][service][0]
        seen = events.of(service)
        new_start = next(i for i, (a, cid) in enumerate(seen) if a == "start" and cid != old_id)
        assert ("die", old_id) in seen[:new_start], (service, seen)

    # nothing lost, nothing doubled
    wait_until("the flow settled", lambda: _settled(project), 90)
    _books_ledger_is_whole(project)
    ours = {sid for sid, _, _ in trader.sent}
    decided = {
        sid
        for (sid,) in _query(
            project, "SELECT signal_id::text FROM risk_events WHERE signal_id = ANY(%s::uuid[])", (list(ours),)
        )
    }
    assert decided == ours
    # while the book drained, entries were refused `reducing` (our BUYs sent then, if any were)
    drained_from, drained_to = (datetime.fromisoformat(h["changed_at"]).timestamp() for h in (history[1], history[0]))
    during = [sid for sid, side, at in trader.sent if side == "BUY" and drained_from + 0.5 < at < drained_to - 0.5]
    if during:
        reasons = {
            r for (r,) in _query(project, "SELECT reason FROM risk_events WHERE signal_id = ANY(%s::uuid[])", (during,))
        }
        assert reasons <= {"reducing"}, reasons
    # and the new risk manager decides with the new limit
    limits = _query(
        project,
        "SELECT limits->>'max_position_size_pct' FROM risk_events WHERE created_at > to_timestamp(%s) AND NOT is_probe",
        (drained_to,),
    )
    assert limits and {Decimal(x) for (x,) in limits} == {Decimal("8.0")}, limits
    # the replaced containers are kept, stopped, for `cdb-ops rollback`
    for service in ("risk", "execution"):
        kept = _container(f"{STACK.container(service)}-previous")
        assert kept[:3] == SEEN["before_upgrade"][service][:3] and kept[3] == "exited"


def test_a_risk_configuration_that_fails_the_probe_is_rolled_back(project):
    before = {s: _container(STACK.container(s)) for s in ("risk", "execution")}
    assert cdb_json("trading", "status", *BOOK, project=project)["books"][0]["state"] == "ACTIVE"
    # starts fine, but every entry is below the minimum order: 0.01 % of 1000 USDT is 0.10 USDT < 1 USDT
    _set_env(project, "MAX_POSITION_SIZE", "0.01")
    try:
        code, doc = cdb_exit_json("rebuild", *BOOK, project=project)
    finally:
        _set_env(project, "MAX_POSITION_SIZE", "8.0")
    assert code == 1, doc
    message = doc["error"]["message"]
    print(message)
    assert "pipeline probe: risk manager rejected the probe (below_min_notional)" in message
    assert f"risk (previous image {before['risk'][1][:19]}, config {before['risk'][2][:12]})" in message
    assert "rolled back: " in message and "books replay: ACTIVE" in message
    assert set(doc["upgrade"]["rolled_back"]) >= {"risk", "execution"}
    assert doc["error"]["details"]["rolled_back"] == doc["upgrade"]["rolled_back"]
    assert [s["name"] for s in doc["steps"] if s["action"] == "rollback"]
    for service in ("risk", "execution"):
        now = _container(STACK.container(service))
        assert now[:3] == before[service][:3] and now[3] == "running", service  # the very container again
    state = cdb_json("trading", "status", *BOOK, project=project)["books"][0]
    assert state["state"] == "ACTIVE" and state["changed_by"].startswith("cdb-ops rebuild")
    names = [
        c.name for c in docker.from_env().containers.list(all=True, filters={"label": f"cdb.system={STACK.system}"})
    ]
    assert not [n for n in names if "-replaced-" in n]
    # the failed run recorded no upgrade: `rollback` still undoes the last successful one
    assert f"{STACK.container('risk')}-previous" in names
    wait_until("the flow settled", lambda: _settled(project), 90)
    _books_ledger_is_whole(project)


def test_rollback_by_hand_brings_the_previous_containers_back_and_a_halted_book_stays_halted(project):
    cdb_json("trading", "halt", *BOOK, "--reason", "no new trades during the rollback test", "--yes", project=project)
    previous = SEEN["before_upgrade"]
    code, asked = cdb_exit_json("rollback", project=project)
    assert code == 7, asked
    would = {s["service"]: s for s in asked["error"]["details"]["would_restore"]}
    assert (would["risk"]["previous_image_id"], would["risk"]["previous_config_hash"]) == previous["risk"][1:3]
    assert _container(STACK.container("risk"))[2] == would["risk"]["new_config_hash"]  # the upgrade's own

    doc = cdb_json("rollback", "--yes", project=project)
    assert doc["books"] == [
        {
            "book": "replay",
            "before": "HALTED",
            "set_reducing": False,
            "restored": "left HALTED (the drain did not change it)",
        }
    ]
    restored = {r["service"]: r for r in doc["restored"]}
    assert (restored["risk"]["image_id"], restored["risk"]["config_hash"]) == previous["risk"][1:3]
    for service in ("risk", "execution"):
        now = _container(STACK.container(service))
        assert now[1:3] == previous[service][1:3] and now[3] == "running", service
    state = cdb_json("trading", "status", *BOOK, project=project)["books"][0]
    assert state["state"] == "HALTED" and state["reason"] == "no new trades during the rollback test"
    names = [
        c.name for c in docker.from_env().containers.list(all=True, filters={"label": f"cdb.system={STACK.system}"})
    ]
    assert not [n for n in names if n.endswith("-previous")]
    code, again = cdb_exit_json("rollback", "--yes", project=project)
    assert code == 1 and "no upgrade to roll back" in again["error"]["message"]
    # back to .env (MAX_POSITION_SIZE 8.0) for what follows, the book trading again
    cdb_json("trading", "resume", *BOOK, "--reason", "rollback test done", "--yes", project=project)
    assert cdb_json("rebuild", *BOOK, project=project)["upgrade"]["drain"]["books"][0]["before"] == "ACTIVE"


def test_a_migration_is_backed_up_first_and_rollback_names_the_restore_that_undoes_it(project):
    (project / "schema" / "099_drain_marker.sql").write_text("CREATE TABLE IF NOT EXISTS drain_marker (id int);\n")
    doc = cdb_json("rebuild", *BOOK, project=project)
    steps = [(s["phase"], s["resource"], s["action"]) for s in doc["steps"]]
    assert steps.index(("schema", "backup", "backup")) < steps.index(("schema", "migration", "migrate"))
    backup = Path(doc["upgrade"]["backup_before_migrations"])
    assert backup.exists() and Path(f"{backup}.sha256").exists()
    assert doc["upgrade"]["migrations"] == ["099_drain_marker"]
    assert "verified" in next(s["detail"] for s in doc["steps"] if s["resource"] == "backup")

    code, asked = cdb_exit_json("rollback", project=project)
    assert code == 7 and asked["error"]["details"]["schema"]["undo"] == f"cdb-ops restore {backup} --yes"
    done = cdb_json("rollback", "--yes", project=project)
    assert done["restored"] == [] and done["schema"]["migrations"] == ["099_drain_marker"]
    assert f"cdb-ops restore {backup} --yes" in done["schema"]["note"]

    assert _query(project, "SELECT to_regclass('public.drain_marker') IS NOT NULL")[0][0]
    cdb_json("restore", str(backup), "--yes", project=project)
    assert not _query(project, "SELECT to_regclass('public.drain_marker') IS NOT NULL")[0][0]
    status = cdb_json("schema", "status", project=project)
    assert [m["state"] for m in status["migrations"] if m["name"] == "drain_marker"] == ["pending"]


def test_an_order_a_restore_brought_back_new_does_not_hold_up_a_drain(project):
    """A dump taken while an order was in flight brings that order back NEW, though execution answered its
    stream entry long ago: no consumer holds it and only ORDER_TTL_SECONDS ends it. A drained upgrade names
    it and swaps without waiting for it (it waited the whole CDB_DRAIN_TIMEOUT, then exit 5, before)."""
    execution = docker.from_env().containers.get(STACK.container("execution"))
    execution.pause()
    try:
        signal = publish_signal(project, STACK, "DRNSTUSDT", "BUY", "10")
        status = "SELECT status FROM orders WHERE signal_id = %s"
        wait_until("the order, NEW", lambda: _query(project, status, (signal,)) == [("NEW",)], timeout=40)
        dump = cdb_json("backup", project=project)["path"]
    finally:
        execution.unpause()
    wait_until("the order, filled", lambda: _query(project, status, (signal,)) == [("FILLED",)], timeout=40)
    cdb_json("restore", dump, "--yes", project=project)
    assert _query(project, status, (signal,)) == [("NEW",)]

    _set_env(project, "MAX_POSITION_SIZE", "7.5")  # risk is recreated, so the run drains
    drain = cdb_json("rebuild", *BOOK, project=project)["upgrade"]["drain"]
    assert drain["in_flight_at_swap"]["new_orders"] == 0, drain
    assert drain["in_flight_at_swap"]["stranded_orders"] >= 1, drain
    assert drain["seconds"] < 15, drain
    assert _query(project, status, (signal,)) == [("NEW",)]  # left to its expiry, not touched by the swap
