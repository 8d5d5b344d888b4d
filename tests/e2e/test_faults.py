"""Faults on the real engine (issue 6, item 3) and a hostile feed (item 4), on a stack of our own.

The stack is a renamed copy (STACKS["faults"]) brought up with the replay feed,
so nothing here touches the user's `cdb_*` stack or the other test stacks. What is proven:

* kill -9 of Postgres, of Redis and of a consumer (risk) while events flow: afterwards every signal
  that reached `cdb:signals` is in Postgres exactly once, every order has exactly one trade (or was
  rejected with a reason), every injected probe completed exactly once, the consumer groups have no
  pending entries left, and no service restarted. The user's way back, `cdb-ops rebuild`, only
  *starts* the killed container (no create, no recreate).
* `cdb-ops rebuild` interrupted by SIGINT in each of its phases exits 130 and leaves a state that the
  next `rebuild` finishes (exit 0); a third run changes nothing.
* a hostile websocket feed (non-JSON, truncated, wrong-shape, oversized, out-of-range numbers, binary
  garbage, a frame larger than the client accepts): the screener keeps running, counts every
  rejected frame by reason in /metrics and still stores the good frames in between.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
import warnings
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest
import redis
import yaml

from tests.helpers import STACKS, StackFixture, cdb_json, pg_connect, redis_connect, wait_until

pytestmark = pytest.mark.e2e

STACK = STACKS["faults"]
SYSTEM, PREFIX = STACK.system, STACK.prefix
SCREENER_PORT = STACK.port(8000)
SERVICES = ("screener_ws", "signal", "risk", "execution")
# (stream, consumer group) pairs whose pending entries must drain once the stack has settled
GROUPS = (("cdb:signals", "risk_manager"), ("cdb:orders", "execution"))


# A cdb-ops bug (reported, not ours to fix here): validate's log check does not know Postgres'
# "FATAL: the database system is not yet accepting connections", which Postgres says to anyone who
# connects during crash recovery - cdb-ops' own readiness probe included, after a kill -9 or after
# `--clean` (which removes Postgres with SIGKILL). The line then fails `logs postgres` on every run until
# Postgres restarts. Tolerated here, and only that; remove once validate.BENIGN knows the message.
KNOWN_BENIGN_PG = re.compile(r"the database system is not yet accepting connections")


def _only_known_benign(out: dict[str, Any]) -> bool:
    failed = [c for c in out["checks"] if c["status"] == "fail"]
    return bool(failed) and all(
        c["name"] == "logs postgres"
        and c["facts"].get("db_connection_errors") == 0
        and c["facts"].get("error_lines", 0) == len(c["facts"].get("first", []))
        and all(KNOWN_BENIGN_PG.search(line) for line in c["facts"].get("first", []))
        for c in failed
    )


def _converge(project: Path, *extra: str) -> dict[str, Any]:
    """`cdb-ops rebuild --feed replay [extra]`, which must succeed (up to the known log-check bug)."""
    out = cdb_json("rebuild", "--feed", "replay", *extra, project=project, expect=None)
    ok = out["exit_code"] == 0 and out["result"] == "ok"
    assert ok or (out["exit_code"] == 1 and _only_known_benign(out)), json.dumps(out, indent=1)[-4000:]
    if not ok:
        warnings.warn("tolerated the known cdb-ops bug: 'logs postgres' failed on a recovery FATAL", stacklevel=2)
    return out


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory):
    # REPLAY_SPEED=0: the recorded scenario at once; then the replay holds a flat market. Converged by
    # _converge, which tolerates the known log-check bug (StackFixture's rebuild would not)
    fixture = StackFixture(STACK, env={"REPLAY_SPEED": "0"}, converge=False)
    root = fixture.up(tmp_path_factory.mktemp("faults"))
    try:
        _converge(root)
        yield root
    finally:
        fixture.down()


@pytest.fixture
def stack(project: Path) -> Path:
    """The stack converged and healthy before each test (a test before may have left it changed)."""
    _converge(project)
    return project


# -- access to the stack ---------------------------------------------------------------------------


_pg = functools.partial(pg_connect, port=STACK.pg_port)


def _redis(project: Path) -> redis.Redis:
    return redis_connect(project, STACK.redis_port, decode_responses=True, socket_timeout=10)


def _query(project: Path, sql: str, params: Any = None) -> list[tuple]:
    with _pg(project) as conn:
        return conn.execute(sql, params).fetchall()


def _container(name: str) -> Any:
    return docker.from_env().containers.get(PREFIX + name)


def _restart_counts() -> dict[str, int]:
    return {s: _container(s).attrs["RestartCount"] for s in SERVICES}


def _wait(what: str, check: Any, timeout: float = 90.0, every: float = 0.5) -> Any:
    """wait_until with this module's old defaults, only for test_exchange_rules (which imports it and is
    being edited elsewhere): the integrator removes it once that module calls wait_until itself."""
    return wait_until(what, check, timeout, every)


# -- probes ----------------------------------------------------------------------------------------


@dataclass
class Probe:
    probe_id: str
    posted_at: float  # monotonic, before the POST
    returned_at: float  # monotonic, after the answer (or the error)
    symbol: str | None  # None: the screener did not accept it


def _post_probe(client: httpx.Client) -> Probe:
    probe_id = str(uuid.uuid4())
    start = time.monotonic()
    symbol = None
    with contextlib.suppress(httpx.HTTPError):
        r = client.post(
            f"http://127.0.0.1:{SCREENER_PORT}/probe", json={"probe_id": probe_id, "move_pct": 8.0}, timeout=5
        )
        if r.status_code == 202:
            symbol = r.json()["symbol"]
    return Probe(probe_id, start, time.monotonic(), symbol)


class ProbeStream:
    """A steady stream of probes through the screener's POST /probe, in a thread (every `interval` s)."""

    def __init__(self, interval: float = 0.15) -> None:
        self.interval = interval
        self.probes: list[Probe] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client() as client:
            while not self._stop.is_set():
                self.probes.append(_post_probe(client))
                self._stop.wait(self.interval)

    def __enter__(self) -> ProbeStream:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=15)

    @property
    def accepted(self) -> list[Probe]:
        return [p for p in self.probes if p.symbol]


def _chains(project: Path, symbols: list[str]) -> dict[str, tuple[int, int, int, int]]:
    """symbol -> (signals, risk events, orders, trades) of the probes' symbols."""
    rows = _query(
        project,
        """
        SELECT s.symbol, count(DISTINCT s.signal_id), count(DISTINCT r.risk_event_id),
               count(DISTINCT o.order_id), count(DISTINCT t.trade_id)
          FROM signals s
          LEFT JOIN risk_events r ON r.signal_id = s.signal_id
          LEFT JOIN orders o ON o.risk_event_id = r.risk_event_id
          LEFT JOIN trades t ON t.order_id = o.order_id
         WHERE s.symbol = ANY(%s) GROUP BY s.symbol""",
        (symbols,),
    )
    return {r[0]: (r[1], r[2], r[3], r[4]) for r in rows}


def _wait_complete(project: Path, symbols: list[str], timeout: float = 120.0) -> dict[str, tuple[int, int, int, int]]:
    """Wait until every probe has its trade; return the chain counts (then checked for exactly once)."""

    def done() -> dict[str, tuple[int, int, int, int]] | None:
        counts = _chains(project, symbols)
        return counts if len(counts) == len(symbols) and all(c[3] >= 1 for c in counts.values()) else None

    try:
        return wait_until("every probe to be filled", done, timeout, 0.5)
    except AssertionError:
        counts = _chains(project, symbols)
        missing = sorted(set(symbols) - set(counts))
        stuck = {s: c for s, c in counts.items() if c[3] < 1}
        raise AssertionError(f"probes lost: {missing[:10]} ({len(missing)}), stuck: {stuck}") from None


# -- invariants after a fault ----------------------------------------------------------------------


def _stream_event_ids(r: redis.Redis, stream: str) -> list[str]:
    return [json.loads(fields["data"])["event_id"] for _id, fields in r.xrange(stream, "-", "+") if "data" in fields]


def _pending(r: redis.Redis, stream: str, group: str) -> int:
    return int(r.xpending(stream, group)["pending"])


def _settled(project: Path) -> bool:
    r = _redis(project)
    if any(_pending(r, s, g) for s, g in GROUPS):
        return False
    return _query(project, "SELECT count(*) FROM orders WHERE status = 'NEW'")[0][0] == 0


def _assert_nothing_lost_or_doubled(project: Path) -> dict[str, int]:
    """Every signal/order in the streams is in Postgres exactly once; every order is decided once."""
    wait_until("the pipeline to settle (no pending entries, no NEW order)", lambda: _settled(project), 120, 0.5)
    r = _redis(project)
    signal_ids = _stream_event_ids(r, "cdb:signals")
    order_ids = _stream_event_ids(r, "cdb:orders")
    with _pg(project) as conn:
        found = conn.execute(
            "SELECT count(*), count(DISTINCT signal_id) FROM signals WHERE signal_id = ANY(%s::uuid[])",
            (sorted(set(signal_ids)),),
        ).fetchone()
        undecided = conn.execute(
            """SELECT s.signal_id FROM signals s LEFT JOIN risk_events r USING (signal_id)
                WHERE s.signal_id = ANY(%s::uuid[]) AND r.risk_event_id IS NULL""",
            (sorted(set(signal_ids)),),
        ).fetchall()
        orders_found = conn.execute(
            "SELECT count(*) FROM orders WHERE order_id = ANY(%s::uuid[])", (sorted(set(order_ids)),)
        ).fetchone()[0]
        doubled = conn.execute("SELECT order_id FROM trades GROUP BY order_id HAVING count(*) > 1").fetchall()
        unfilled = conn.execute(
            """SELECT o.order_id, o.status FROM orders o LEFT JOIN trades t USING (order_id)
                WHERE (o.status = 'FILLED') <> (t.trade_id IS NOT NULL)
                   OR o.status = 'NEW' OR (o.status = 'REJECTED' AND o.reject_reason IS NULL)"""
        ).fetchall()
        approved_without_order = conn.execute(
            """SELECT r.risk_event_id FROM risk_events r LEFT JOIN orders o USING (risk_event_id)
                WHERE r.decision = 'APPROVED' AND o.order_id IS NULL"""
        ).fetchall()
    assert signal_ids, "no signal was published during the test"
    # exactly once: all of them are there, and no id twice (signal_id is the key; this says it out loud)
    assert found == (len(set(signal_ids)), len(set(signal_ids))), (
        f"signals in Postgres {found} of {len(set(signal_ids))}"
    )
    assert undecided == [], f"signals without a risk decision: {undecided[:5]}"
    assert orders_found == len(set(order_ids)), "an order on cdb:orders is not in Postgres"
    assert doubled == [], f"orders filled more than once: {doubled}"
    assert unfilled == [], f"orders without exactly one fill or a rejection reason: {unfilled[:5]}"
    assert approved_without_order == [], approved_without_order[:5]
    return {"signals": len(set(signal_ids)), "orders": len(set(order_ids))}


def _assert_exactly_once(project: Path, probes: list[Probe]) -> None:
    symbols = [p.symbol for p in probes if p.symbol]
    counts = _wait_complete(project, symbols)
    wrong = {s: c for s, c in counts.items() if c != (1, 1, 1, 1)}
    assert wrong == {}, f"probes not completed exactly once (signals, decisions, orders, trades): {wrong}"

    def snapshots() -> bool:  # flushed every 5 s, kept and retried while Postgres is away
        sql = "SELECT count(DISTINCT symbol) FROM market_snapshots WHERE symbol = ANY(%s) AND is_probe"
        return _query(project, sql, (symbols,))[0][0] == len(symbols)

    wait_until("every probe's market_snapshots row", snapshots, 30, 0.5)


def _rebuild_only_starts(project: Path, name: str) -> dict[str, Any]:
    """`cdb-ops rebuild --feed replay` after a kill: the killed container is started, nothing recreated."""
    out = _converge(project)
    containers = {s["name"]: s["action"] for s in out["steps"] if s["resource"] == "container"}
    assert containers.get(PREFIX + name) == "start", containers
    assert not {n for n, a in containers.items() if a in ("create", "recreate", "remove")}, containers
    return out


# -- kill -9 of a dependency -----------------------------------------------------------------------


def test_postgres_kill9_while_events_flow_loses_and_doubles_nothing(stack):
    """kill -9 Postgres while probes stream through the pipeline, and while the replay keeps the feed
    going; `cdb-ops rebuild` brings it back (crash recovery from the WAL; it only starts the container).
    Probes posted during the outage are accepted by the screener (its tick queue does not need Postgres),
    their signals wait in Redis until the signal engine can commit them. Afterwards every probe has
    exactly one signal, decision, order and trade, every signal of cdb:signals is in Postgres exactly
    once, no order is filled twice or left without its fill, and no service restarted."""
    restarts = _restart_counts()
    with ProbeStream() as probes:
        time.sleep(2)
        _container("postgres").kill(signal="KILL")
        killed = time.monotonic()
        time.sleep(6)  # the outage: the services retry with backoff, the screener keeps snapshots
        out = _rebuild_only_starts(stack, "postgres")
        back = time.monotonic()
        time.sleep(3)
    during = [p for p in probes.accepted if killed < p.posted_at < back]
    assert during, "no probe was accepted while Postgres was down"
    assert len(probes.accepted) == len(probes.probes), "the screener refused probes during the outage"
    _assert_exactly_once(stack, probes.accepted)
    facts = _assert_nothing_lost_or_doubled(stack)
    assert _restart_counts() == restarts, "a service restarted (crashed) during the outage"
    print(
        f"\npostgres kill: {len(probes.accepted)} probes ({len(during)} during the outage), {facts}, "
        f"rebuild {out['duration_seconds']} s"
    )


def test_redis_kill9_with_aof_loses_and_doubles_nothing(stack):
    """kill -9 Redis (AOF on, appendfsync everysec) while probes stream; `cdb-ops rebuild` starts it.

    What may be asserted: Redis appends every write to the AOF with write(2) before it answers the
    client; `everysec` only defers the fsync(2). Killing the *process* leaves those writes in the
    kernel's page cache, so the restarted Redis replays all of them: nothing a client was told had
    happened is lost. (The up to ~1 s window of everysec is lost only when the *host* dies, which this
    test cannot do.) The screener answers POST /probe from its in-memory queue, so probes posted while
    Redis is down are kept and published after the reconnect. Hence the strict assertion: every
    accepted probe completes exactly once, nothing on the streams is missing from Postgres, and a
    redelivery (a pipeline cut mid-way by the kill is sent again) never doubles a row or a fill.
    """
    restarts = _restart_counts()
    with ProbeStream() as probes:
        time.sleep(2)
        _container("redis").kill(signal="KILL")
        killed = time.monotonic()
        time.sleep(5)
        out = _rebuild_only_starts(stack, "redis")
        back = time.monotonic()
        time.sleep(3)
    during = [p for p in probes.accepted if killed < p.posted_at < back]
    assert during, "no probe was accepted while Redis was down"
    assert len(probes.accepted) == len(probes.probes), "the screener refused probes during the outage"
    _assert_exactly_once(stack, probes.accepted)
    facts = _assert_nothing_lost_or_doubled(stack)
    assert _restart_counts() == restarts, "a service restarted (crashed) during the outage"
    print(
        f"\nredis kill: {len(probes.accepted)} probes ({len(during)} during the outage), {facts}, "
        f"rebuild {out['duration_seconds']} s"
    )


# -- kill -9 of a consumer with entries pending ----------------------------------------------------


def test_risk_kill9_with_pending_entries_reclaims_and_processes_them(stack):
    """kill -9 the risk manager while it holds delivered-but-unacknowledged signals.

    To have entries pending for sure at the moment of the kill (not just by luck of timing), the test
    holds an ACCESS EXCLUSIVE lock on risk_events: the risk manager reads signals (XREADGROUP puts them
    in its pending list) and blocks inside its first decision, before any commit or XACK. Then it is
    killed, the lock released, and `cdb-ops rebuild` starts it again (same container, same hostname,
    so the same consumer name): it re-reads its own pending entries first. Afterwards the group has
    nothing pending, every signal has exactly one decision, order and fill, and the audit file has
    exactly one line per decision (none was written for the killed attempt)."""
    r = _redis(stack)
    lock = _pg(stack, autocommit=False)
    try:
        lock.execute("LOCK TABLE risk_events IN ACCESS EXCLUSIVE MODE")
        with httpx.Client() as client:
            probes = [_post_probe(client) for _ in range(8)]
        symbols = [p.symbol for p in probes if p.symbol]
        assert len(symbols) == 8
        wait_until(
            "all probe signals to be committed and published",
            lambda: _query(stack, "SELECT count(*) FROM signals WHERE symbol = ANY(%s)", (symbols,))[0][0] == 8,
            90.0,
            0.5,
        )
        pending = wait_until(
            "the risk manager to hold pending entries", lambda: _pending(r, "cdb:signals", "risk_manager"), 90.0, 0.5
        )
        consumers = {c["name"]: c["pending"] for c in r.xpending("cdb:signals", "risk_manager")["consumers"]}
        _container("risk").kill(signal="KILL")
    finally:
        lock.rollback()
        lock.close()
    assert consumers.get(PREFIX + "risk", 0) >= 1, consumers
    assert (
        _query(
            stack,
            "SELECT count(*) FROM risk_events r JOIN signals s USING (signal_id) WHERE s.symbol = ANY(%s)",
            (symbols,),
        )[0][0]
        == 0
    )
    _rebuild_only_starts(stack, "risk")
    wait_until(
        "the risk manager's pending entries to drain", lambda: _pending(r, "cdb:signals", "risk_manager") == 0, 60, 0.5
    )
    _assert_exactly_once(stack, probes)
    _assert_nothing_lost_or_doubled(stack)
    code, audit = _container("risk").exec_run(["cat", "/var/log/cdb_risk/audit.jsonl"])
    assert code == 0
    lines = [json.loads(ln) for ln in audit.decode().splitlines() if ln.strip()]
    per_symbol = {s: sum(1 for ln in lines if ln["symbol"] == s) for s in symbols}
    assert per_symbol == {s: 1 for s in symbols}, per_symbol
    print(f"\nrisk kill: {pending} pending at the kill ({consumers}), all {len(symbols)} decided once")


# -- SIGINT in each phase of a rebuild -------------------------------------------------------------

PHASES = ["cleanup", "network", "volumes", "postgres", "schema", "redis", "builds", "start", "validate"]


def _prepare_work_for(project: Path, phase: str) -> None:
    """A state in which `phase` has something to do when the interrupted rebuild reaches it."""
    client = docker.from_env()
    if phase == "cleanup":
        _converge(project)
        # the leftover of an interrupted recreate: cleanup removes it, start creates the service anew
        client.containers.get(PREFIX + "signal").rename(f"{PREFIX}signal-replaced-{int(time.time())}")
        return
    out = cdb_json("rebuild", "--clean", "--phase", "cleanup", "--feed", "replay", project=project)
    assert out["result"] == "ok", out["error"]  # no container, no network: every later phase has work
    if phase == "volumes":
        client.volumes.get(PREFIX + "risk_logs").remove()
    elif phase == "schema":
        client.volumes.get(PREFIX + "postgres_data").remove()  # an empty database: every migration pending
    elif phase == "builds":
        client.images.remove(PREFIX + "market_replay:latest")


def _interrupt_at(project: Path, phase: str) -> tuple[int, list[str], float]:
    """Run `rebuild --feed replay --progress json`, send SIGINT when `phase` starts; exit code and phases."""
    env = {**os.environ, "CDB_PROJECT_DIR": str(project)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cdb_ops", "rebuild", "--feed", "replay", "--progress", "json"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen: list[str] = []
    sent_at = None
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            with contextlib.suppress(json.JSONDecodeError):
                event = json.loads(line)
                if event.get("event") == "phase":
                    seen.append(event["phase"])
                    if event["phase"] == phase and sent_at is None:
                        proc.send_signal(signal.SIGINT)
                        sent_at = time.monotonic()
        rc = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert sent_at is not None, f"phase {phase} never started; phases seen: {seen}"
    return rc, seen, time.monotonic() - sent_at


@pytest.mark.parametrize("phase", PHASES)
def test_rebuild_interrupted_in_each_phase_is_finished_by_the_next(project, phase):
    """SIGINT when the phase starts (the run's `phase` progress event), from a state in which that phase
    has work to do; exit 130, the run recorded as interrupted, the next rebuild finishes, the one after
    changes nothing. Each case ends converged, so the next starts from there (no fixture rebuild)."""
    stack = project
    started = time.monotonic()
    _prepare_work_for(stack, phase)
    rc, seen, took = _interrupt_at(stack, phase)
    assert rc == 130, f"exit {rc} after SIGINT in {phase}; phases seen: {seen}"
    assert seen[-1] == phase, f"SIGINT sent at {phase} but the run went on to {seen[-1]}"
    assert took < 30, f"the run took {took:.1f} s to stop after SIGINT"
    last = json.loads((stack / ".cdb" / "last_run.json").read_text())
    assert last["result"] == "interrupted" and last["exit_code"] == 130
    _converge(stack)
    again = _converge(stack)
    assert again["changed"] == 0, [s for s in again["steps"] if s["action"] not in ("ok", "wait", "pass")]
    names = {c.name for c in docker.from_env().containers.list(all=True, filters={"label": f"cdb.system={SYSTEM}"})}
    assert not {n for n in names if "-replaced-" in n}, names
    if phase == "schema":
        status = cdb_json("schema", "status", project=stack)
        assert {m["state"] for m in status["migrations"]} == {"applied"}, status
    print(f"\nSIGINT in {phase}: stopped {took:.2f} s after the signal, whole case {time.monotonic() - started:.1f} s")


# -- a hostile feed ----------------------------------------------------------------------------------


def _ticker(symbol: str, price: str = "10.0", event_time: int = 1_736_553_600_000, **over: Any) -> dict[str, Any]:
    item = {
        "e": "24hrMiniTicker",
        "E": event_time,
        "s": symbol,
        "c": price,
        "o": price,
        "h": price,
        "l": price,
        "v": "100000",
        "q": "1000000",
    }
    item.update(over)
    return item


def _frame(*items: Any) -> str:
    return json.dumps(list(items), separators=(",", ":"))


GOOD = ("HOSTAUSDT", "HOSTBUSDT")
JUMP = "HOSTJUMPUSDT"
MIB = 1024 * 1024


def _hostile_replay(folder: Path) -> dict[str, int]:
    """A replay file of good frames with broken ones in between; returns the rejections one pass causes."""
    t = 1_736_553_600_000
    lines: list[bytes] = [
        _frame(_ticker(GOOD[0], event_time=t), _ticker(GOOD[1], event_time=t)).encode(),
        # within what a column holds, each of them, but a move of 1e31 % from one to the next: a BUY
        # whose change_pct no NUMERIC(18, 8) holds (the signal engine must survive it)
        _frame(_ticker(JUMP, price="0.000000000001", event_time=t)).encode(),
        b"this is not json",  # invalid_json
        _frame(_ticker(GOOD[0], event_time=t + 1))[:-20].encode(),  # truncated: invalid_json
        b"[" * 100_000 + b"]" * 100_000,  # nested too deep to parse: invalid_json
        b"\xff\xfe\x00garbage\x80\x81",  # not UTF-8: invalid_json
        b'{"result":null,"id":1}',  # a subscription reply: wrong_shape
        b"42",  # wrong_shape
        b'[1,"two",null]',  # nothing in it is a ticker: wrong_shape
        _frame(
            _ticker(GOOD[0], event_time=t + 2),
            _ticker("HOSTCUSDT", price="1e40", event_time=t + 2),  # larger than any price column
            _ticker("HOSTDUSDT", event_time=10**20),  # an E that is no date
            _ticker("HOSTEUSDT", price="abc", event_time=t + 2),
            {"e": "24hrMiniTicker"},
        ).encode(),  # 1 good + 4 bad_item
        ('["' + "x" * (3 * MIB) + '"]').encode(),  # above the screener's 2 MiB: oversized (counted, skipped)
        _frame(_ticker(GOOD[0], price="10.1", event_time=t + 3), _ticker(GOOD[1], event_time=t + 3)).encode(),
        _frame(_ticker(JUMP, price="100000000000000000", event_time=t + 3)).encode(),
        # above what the websocket client accepts at all (8 MiB): the client closes with 1009, counts it
        # as oversized and reconnects (and the replay starts over)
        ('["' + "y" * (9 * MIB) + '"]').encode(),
    ]
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o755)
    path = folder / "hostile.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    path.chmod(0o644)
    return {"invalid_json": 4, "wrong_shape": 3, "bad_item": 4, "oversized": 2}


def _metric(text: str, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = re.escape(name) + (r"\{" + re.escape(want) + r"\}" if want else "") + r" ([0-9.e+]+)$"
    m = re.search(pattern, text, re.M)
    return float(m.group(1)) if m else 0.0


def _set_feed_url(project: Path, url: str | None) -> None:
    path = project / "playbooks" / "stack.yaml"
    stack = yaml.safe_load(path.read_text())
    stack["feeds"]["replay"]["env"]["screener"]["FEED_URL"] = url or f"ws://{PREFIX}market_replay:8010/ws"
    path.write_text(yaml.safe_dump(stack, sort_keys=False))


PASSES = 5  # connections over the hostile file: each ends with the 9 MiB frame, the replay starts over
LEAK_PASSES = 15  # connections over a file that is only a good frame and a 9 MiB one


def _wait_healthy(container: Any, timeout: float = 60) -> None:
    def healthy() -> bool:
        container.reload()
        return container.attrs["State"].get("Health", {}).get("Status") == "healthy"

    wait_until(f"{container.name} to be healthy", healthy, timeout, 0.5)


def _good_rows(project: Path) -> dict[str, Any] | None:
    rows = _query(
        project,
        "SELECT symbol, max(price) FROM market_snapshots WHERE symbol = ANY(%s) GROUP BY symbol",
        ([*GOOD, JUMP],),
    )
    return dict(rows) if len(rows) == 3 else None


def _screener_metrics() -> str:
    return httpx.get(f"http://127.0.0.1:{SCREENER_PORT}/metrics", timeout=5).text


def _rss_mib(container: Any) -> float:
    """Resident memory of the service's python process (PID 1 is Docker's init)."""
    script = (
        'for p in /proc/[0-9]*; do case "$(tr "\\0" " " < $p/cmdline)" in'
        ' "python3 -m screener "*) cat $p/status;; esac; done'
    )
    code, out = container.exec_run(["sh", "-c", script])
    found = re.search(rb"VmRSS:\s+(\d+) kB", out)
    assert code == 0 and found, out
    return int(found.group(1)) / 1024


def test_hostile_feed_frames_are_counted_and_skipped_and_good_ones_kept(stack, tmp_path):
    """The screener fed by a hostile websocket server: a `<prefix>hostile` container of the replay image
    plays a file of good frames with broken ones in between (see _hostile_replay), the test project's
    FEED_URL points the screener at it. Over PASSES connections (each ended by a frame larger than the
    websocket client accepts): the screener never restarts and counts every rejected frame by reason,
    exactly in step with the passes; the good frames in between reach market_snapshots (out-of-range
    values never do); the signal engine survives a move no column can hold; no service restarts.
    Then LEAK_PASSES connections over just a good frame and a 9 MiB one: the reconnect loop does not
    grow the screener's memory towards its 160 MiB limit (each dropped connection used to leave ~8 MiB
    of garbage cycles behind until the GC got round to them: OOM-killed within ~30 s)."""
    client = docker.from_env()
    with contextlib.suppress(docker.errors.NotFound):
        client.containers.get(PREFIX + "hostile").remove(force=True)
    folder = tmp_path / "replays"
    per_pass = _hostile_replay(folder)
    hostile = client.containers.run(
        f"{PREFIX}market_replay:latest",
        name=PREFIX + "hostile",
        detach=True,
        network=f"{PREFIX}network",
        environment={
            "HTTP_PORT": "8010",
            "REPLAY_DIR": "/replays",
            "REPLAY_FILE": "hostile.jsonl",
            "REPLAY_SPEED": "0",
        },
        volumes={str(folder): {"bind": "/replays", "mode": "ro"}},
        labels={"cdb.system": SYSTEM},  # so remove_system() takes it away even if this test dies
    )
    try:
        _wait_healthy(hostile)  # it loaded the file, corrupt bytes and all
        _set_feed_url(stack, f"ws://{PREFIX}hostile:8010/ws")
        out = _converge(stack, "--phase", "start")
        steps = {s["name"]: s["action"] for s in out["steps"] if s["resource"] == "container"}
        assert steps.get(PREFIX + "screener_ws") == "recreate", steps
        started = time.monotonic()

        def passes_done() -> dict[str, float] | None:
            text = _screener_metrics()
            counts = {r: _metric(text, "cdb_frames_rejected_total", reason=r) for r in per_pass}
            return counts if all(counts[r] >= PASSES * n for r, n in per_pass.items()) else None

        counts = wait_until(f"{PASSES} passes over the hostile file", passes_done, 60, 0.5)
        took = time.monotonic() - started
        text = _screener_metrics()

        # A row holds a symbol's last tick of its minute, flushed every 5 s while the passes go on: a flush
        # can land between a pass's 10.0 frame and its 10.1 frame (the 3 MiB one is between them), so wait
        # for the good frame after the broken ones to be stored, not just for the symbols to appear.
        def good_rows_stored() -> dict[str, Any] | None:
            found = _good_rows(stack)
            return found if found and found["HOSTAUSDT"] == Decimal("10.1") else None

        rows = wait_until("the good frames' market_snapshots", good_rows_stored, 30, 0.5)
        bad_rows = _query(stack, "SELECT symbol FROM market_snapshots WHERE symbol IN ('HOSTCUSDT', 'HOSTDUSDT')")
        jump_buys = _query(stack, "SELECT change_pct FROM signals WHERE symbol = %s AND side = 'BUY'", (JUMP,))
        health = httpx.get(f"http://127.0.0.1:{SCREENER_PORT}/health", timeout=5).json()

        # the reconnect loop, on its own
        good = _frame(_ticker(GOOD[0], price="10.1"), _ticker(GOOD[1]))
        (folder / "hostile.jsonl").write_text(f'{good}\n["{"z" * (9 * MIB)}"]\n')
        hostile.restart(timeout=1)
        _wait_healthy(hostile)
        screener = _container("screener_ws")
        base = _metric(_screener_metrics(), "cdb_feed_reconnects_total")
        rss = [_rss_mib(screener)]

        def leak_passes_done() -> bool:
            rss.append(_rss_mib(screener))
            return _metric(_screener_metrics(), "cdb_feed_reconnects_total") >= base + LEAK_PASSES

        wait_until(f"{LEAK_PASSES} reconnects", leak_passes_done, 90, 1.0)
        screener.reload()
        others = {
            n: (_container(n).status, _container(n).attrs["RestartCount"]) for n in ("signal", "risk", "execution")
        }
    finally:
        _set_feed_url(stack, None)
        with contextlib.suppress(docker.errors.NotFound):
            client.containers.get(PREFIX + "hostile").remove(force=True)
    state = screener.attrs["State"]
    assert screener.status == "running" and screener.attrs["RestartCount"] == 0 and not state["OOMKilled"], state
    assert health["status"] in ("ok", "degraded"), health
    # every reason counted once per pass (a snapshot may catch one pass half-way)
    passes = counts["invalid_json"] / per_pass["invalid_json"]
    assert all(abs(counts[r] / n - passes) <= 1 for r, n in per_pass.items()), counts
    reconnects = _metric(text, "cdb_feed_reconnects_total")
    assert abs(reconnects - passes) <= 2, (reconnects, counts)  # the > 8 MiB frame ends each connection
    assert rows["HOSTAUSDT"] == Decimal("10.1"), rows  # the good frame after the broken ones was stored
    assert bad_rows == [] and jump_buys == [], (bad_rows, jump_buys)
    assert max(rss) < 100, f"screener RSS over the reconnect loop (MiB): {[round(r) for r in rss]}"
    assert others == {n: ("running", 0) for n in others}, others
    print(
        f"\nhostile feed: {passes:.0f} passes in {took:.1f} s, rejected {counts}, good rows {rows}; "
        f"{LEAK_PASSES} reconnects: RSS {min(rss):.0f}..{max(rss):.0f} MiB"
    )
    _converge(stack)  # back to the real replay
