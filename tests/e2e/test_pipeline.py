"""The whole stack on the real engine with the replay feed: `cdb-ops rebuild --feed replay` brings it
up, the shipped scenario trades, and the services ride out restarts of Redis and Postgres."""

from __future__ import annotations

import contextlib
import functools
import json
import time
import uuid
from pathlib import Path

import docker
import httpx
import pytest
import redis

from tests.helpers import STACKS, StackFixture, cdb, cdb_json, env_values, pg_connect, wait_until

pytestmark = pytest.mark.e2e

STACK = STACKS["pipeline"]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory):
    # REPLAY_SPEED=0: the recorded scenario as fast as the stack can take it
    yield from StackFixture(STACK, env={"REPLAY_SPEED": "0"}, rebuild_args=("--feed", "replay")).around(
        tmp_path_factory.mktemp("e2e")
    )


_pg = functools.partial(pg_connect, port=STACK.pg_port)


def _rows(query: str, project: Path, params: tuple = ()) -> list[tuple]:
    with _pg(project) as conn:
        return conn.execute(query, params).fetchall()


def _wait_for(query: str, project: Path, timeout: float = 90.0, params: tuple = ()) -> list[tuple]:
    """The rows, once there are any; none after `timeout` (the caller's assert says what was missing)."""
    with contextlib.suppress(AssertionError):
        return wait_until("rows", lambda: _rows(query, project, params), timeout, every=0.5)
    return []


def test_rebuild_with_replay_feed_brings_up_every_service_and_validates(project):
    out = cdb_json("rebuild", "--feed", "replay", project=project)
    assert out["changed"] == 0  # converged: nothing recreated
    checks = {c["name"]: c["status"] for c in out["checks"]}
    assert checks["pipeline probe"] == "pass"
    for svc in ("screener", "signal", "risk", "execution", "market_replay"):
        assert checks[f"health {svc}"] == "pass"
    status = cdb_json("status", project=project)
    rows = {r["service"]: r for r in status["services"]}
    assert {r["state"] for r in rows.values()} == {"running"}
    core = ("postgres", "redis", "screener", "signal", "risk", "execution")
    core_mb = sum(rows[s]["memory_bytes"] for s in core) / 1024 / 1024
    assert core_mb < 600, f"core stack uses {core_mb:.0f} MiB at rest"


def test_scenario_buys_fills_holds_and_rejects(project):
    trade = _wait_for(
        """
        SELECT t.symbol, t.qty, t.price, t.fee, o.order_id, r.decision, s.side
          FROM trades t JOIN orders o USING (order_id) JOIN risk_events r USING (risk_event_id)
          JOIN signals s ON s.signal_id = r.signal_id
         WHERE t.portfolio = 'replay' AND t.side = 'BUY' AND NOT t.is_probe""",
        project,
    )
    assert trade, "no BUY was filled from the replay scenario"
    symbol, qty, price, fee, _, decision, side = trade[0]
    assert decision == "APPROVED" and side == "BUY" and qty > 0 and price > 0 and fee > 0
    positions = _wait_for("SELECT symbol, qty FROM positions WHERE portfolio = 'replay' AND qty > 0", project)
    assert positions, "no open position after the scenario's BUYs"
    rejected = _wait_for(
        """SELECT symbol, side, reason, limits FROM risk_events
                             WHERE decision = 'REJECTED' AND NOT is_probe""",
        project,
    )
    assert rejected, "the scenario should produce a rejected signal"
    assert {r[2] for r in rejected} <= {
        "no_position",
        "position_exists",
        "exposure_limit",
        "circuit_breaker",
        "order_pending",
        "below_min_notional",
        "insufficient_cash",
    }
    assert all(r[3] for r in rejected)  # the limits used are recorded with every decision
    with _pg(project) as conn:
        dup = conn.execute("SELECT order_id FROM trades GROUP BY order_id HAVING count(*) > 1").fetchall()
        probe_in_book = conn.execute(
            "SELECT count(*) FROM trades WHERE portfolio = 'replay' AND symbol LIKE 'CDBPROBE%'"
        ).fetchone()[0]
    assert dup == [] and probe_in_book == 0


def test_risk_audit_file_has_every_decision(project):
    client = docker.from_env()
    _wait_for("SELECT 1 FROM risk_events WHERE NOT is_probe", project)
    code, out = client.containers.get(STACK.container("risk")).exec_run(["cat", "/var/log/cdb_risk/audit.jsonl"])
    assert code == 0
    lines = [ln for ln in out.decode().splitlines() if ln.strip()]
    with _pg(project) as conn:
        n = conn.execute("SELECT count(*) FROM risk_events").fetchone()[0]
    assert len(lines) >= n > 0


# Run inside the signal container (the services' own redis-py and cdb_common): one batch of 600 ticks and
# 250 marks through the screener's path, twice, the second time after Redis forgot the script.
_PUBLISH_BATCH = """
import asyncio, logging
from cdb_common.config import load_settings
from cdb_common.streams import Bus
async def main():
    bus = Bus(load_settings("signal_engine", 8001).redis, logging.getLogger("t"))
    marks = {f"BATCH{i:03d}USDT": f"{i}.5" for i in range(250)}
    await bus.publish_json("cdb:test:batch", [f'{{"n":{i}}}' for i in range(600)], marks, "batchtest")
    await bus.redis.script_flush()
    await bus.publish_json("cdb:test:batch", ['{"n":600}'], {"BATCH000USDT": "7"}, "batchtest")
    await bus.close()
asyncio.run(main())
"""


def test_a_batch_of_ticks_and_its_marks_is_added_whole_and_in_order(project):
    password = env_values(project)["REDIS_PASSWORD"]
    r = redis.Redis(host="127.0.0.1", port=STACK.redis_port, password=password, decode_responses=True)
    r.delete("cdb:test:batch", "cdb:marks:batchtest")
    code, out = docker.from_env().containers.get(STACK.container("signal")).exec_run(["python3", "-c", _PUBLISH_BATCH])
    assert code == 0, out.decode()
    entries = r.xrange("cdb:test:batch")
    assert [json.loads(f["data"])["n"] for _id, f in entries] == list(range(601))
    marks = r.hgetall("cdb:marks:batchtest")
    assert len(marks) == 250  # more than one HSET chunk of 100 pairs
    assert marks["BATCH000USDT"] == "7" and marks["BATCH249USDT"] == "249.5" and marks["BATCH100USDT"] == "100.5"
    r.delete("cdb:test:batch", "cdb:marks:batchtest")


# Run inside the signal container: a StreamConsumer over 1,700 entries (batches of 500), stopped after
# 600 and started again under the same consumer name.
_CONSUME_ACROSS_A_STOP = """
import asyncio, json, logging
from cdb_common.config import load_settings
from cdb_common.streams import Bus, StreamConsumer
STREAM, GROUP = "cdb:test:consume", "cdb:test:group"
async def main():
    bus = Bus(load_settings("signal_engine", 8001).redis, logging.getLogger("t"))
    await bus.redis.delete(STREAM)
    await bus.publish_json(STREAM, [json.dumps({"n": i}) for i in range(1700)], {}, "consumetest")
    seen, runs = [], []
    for stop_after in (600, 1700):
        stop = asyncio.Event()
        async def handle(_entry_id, fields):
            seen.append(json.loads(fields["data"])["n"])
            if len(seen) >= stop_after:
                stop.set()
            return []
        consumer = StreamConsumer(bus, None, STREAM, GROUP, handle, log=logging.getLogger("t"), name="cdbx-test")
        await asyncio.wait_for(consumer.run(stop), 30)
        runs.append({"handled": len(seen), "pending": (await bus.redis.xpending(STREAM, GROUP))["pending"]})
    await bus.redis.delete(STREAM)
    await bus.close()
    print(json.dumps({"seen": seen, "runs": runs}))
asyncio.run(main())
"""


def test_a_consumer_stopped_mid_stream_resumes_in_order_and_acks_everything(project):
    """Stopped after 600 entries, the consumer leaves the rest of its batch pending (delivered, never
    handled, never lost) and acks what it handled; started again under its name, it handles those first
    and then the rest: every entry once, in stream order, and nothing pending at the end."""
    code, out = (
        docker.from_env().containers.get(STACK.container("signal")).exec_run(["python3", "-c", _CONSUME_ACROSS_A_STOP])
    )
    assert code == 0, out.decode()
    result = json.loads(out.decode().strip().splitlines()[-1])
    assert result["seen"] == list(range(1700))
    first, second = result["runs"]
    assert first["handled"] == 600 and first["pending"] == 1000 - 600  # the rest of the second batch
    assert second == {"handled": 1700, "pending": 0}


def test_every_service_reports_its_garbage_collector_pauses(project):
    for port in (8000, 8001, 8002, 8003):
        text = httpx.get(f"http://127.0.0.1:{STACK.port(port)}/metrics", timeout=5).text
        full = [ln for ln in text.splitlines() if ln.startswith('cdb_gc_pause_seconds_count{generation="2"}')]
        # at least the full collection each service runs once started, before it freezes what it holds
        assert full and float(full[0].split()[-1]) >= 1, (port, full)


def _probe(move: float = 8.0) -> str:
    r = httpx.post(
        f"http://127.0.0.1:{STACK.port(8000)}/probe", json={"probe_id": str(uuid.uuid4()), "move_pct": move}, timeout=10
    )
    assert r.status_code == 202, r.text
    return r.json()["symbol"]


def _chain_counts(project: Path, symbols: list[str]) -> dict[str, tuple[int, int, int, int]]:
    with _pg(project) as conn:
        rows = conn.execute(
            """
            SELECT s.symbol, count(DISTINCT s.signal_id), count(DISTINCT r.risk_event_id),
                   count(DISTINCT o.order_id), count(t.trade_id)
              FROM signals s
              LEFT JOIN risk_events r ON r.signal_id = s.signal_id
              LEFT JOIN orders o ON o.risk_event_id = r.risk_event_id
              LEFT JOIN trades t ON t.order_id = o.order_id
             WHERE s.symbol = ANY(%s) GROUP BY s.symbol""",
            (symbols,),
        ).fetchall()
    return {r[0]: (r[1], r[2], r[3], r[4]) for r in rows}


def _wait_chains(project: Path, symbols: list[str], timeout: float = 120.0) -> dict[str, tuple[int, int, int, int]]:
    """Each symbol's chain once every one has its fill; as last seen after `timeout` (the caller asserts)."""
    counts: dict[str, tuple[int, int, int, int]] = {}

    def complete() -> bool:
        found = _chain_counts(project, symbols)
        counts.clear()
        counts.update(found)
        return len(counts) == len(symbols) and all(c[3] >= 1 for c in counts.values())

    with contextlib.suppress(AssertionError):
        wait_until("every chain filled", complete, timeout, every=0.5)
    return counts


@pytest.mark.parametrize("dependency", ["redis", "postgres"])
def test_services_ride_out_a_restart_without_losing_or_doubling_events(project, dependency):
    client = docker.from_env()
    before = [_probe() for _ in range(3)]
    client.containers.get(STACK.container(dependency)).restart(timeout=10)
    during = []
    for _ in range(3):  # published while the services reconnect
        with contextlib.suppress(httpx.HTTPError, AssertionError):
            during.append(_probe())
        time.sleep(0.3)
    after = [_probe() for _ in range(3)]
    symbols = before + during + after
    counts = _wait_chains(project, symbols)
    assert set(counts) == set(symbols), f"lost: {set(symbols) - set(counts)}"
    # exactly one signal, decision, order and fill per injected move: nothing lost, nothing doubled
    assert all(c == (1, 1, 1, 1) for c in counts.values()), counts
    for name in (
        STACK.container("screener_ws"),
        STACK.container("signal"),
        STACK.container("risk"),
        STACK.container("execution"),
    ):
        c = client.containers.get(name)
        assert c.status == "running" and c.attrs["RestartCount"] == 0, name
    out = cdb_json("validate", "--no-probe", project=project, expect=None)
    failed = [c for c in out["checks"] if c["status"] == "fail" and not c["name"].startswith("logs")]
    assert failed == [], failed


def test_monitoring_profile_scrapes_every_service(project):
    """Profile monitoring: Prometheus (pulled, or built from Debian's package) scrapes every service;
    Grafana is optional: where its image cannot be pulled the run says so and still succeeds."""
    r = cdb("rebuild", "--feed", "replay", "--profile", "core", "--profile", "monitoring", "--json", project=project)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    out = json.loads(r.stdout)
    skipped = [s for s in out["steps"] if s["action"] == "skip"]
    client = docker.from_env()
    grafana_image = client.images.list("grafana/grafana")
    if not grafana_image:
        assert [s["service"] for s in skipped] == ["grafana"] and "cannot pull" in skipped[0]["detail"]
    targets: list[dict] = []

    def all_up() -> bool:
        url = f"http://127.0.0.1:{STACK.port(9090)}/api/v1/targets"
        targets[:] = httpx.get(url, timeout=5).json()["data"]["activeTargets"]
        return bool(targets) and all(t["health"] == "up" for t in targets)

    with contextlib.suppress(AssertionError):  # the targets as last seen: the assert below names them
        wait_until("Prometheus scraping every target", all_up, 60, every=1)
    jobs = {t["labels"]["job"]: t["health"] for t in targets}
    assert jobs == {
        j: "up"
        for j in (
            "cdb_screener_ws",
            "cdb_signal",
            "cdb_risk",
            "cdb_execution",
            "cdb_backup",
            "cdb_notifier",
            "cdb_market_replay",
            "cdb_alertmanager",  # profile monitoring includes alerting's Alertmanager (docs/alerting.md)
            "prometheus",
        )
    }, jobs
    # the dashboard's metrics really arrive: ticks were received and a fill happened
    q = httpx.get(
        f"http://127.0.0.1:{STACK.port(9090)}/api/v1/query", params={"query": "cdb_ticks_received_total"}, timeout=5
    ).json()
    assert q["data"]["result"] and float(q["data"]["result"][0]["value"][1]) > 0
