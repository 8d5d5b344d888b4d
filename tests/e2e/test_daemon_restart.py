"""Unattended restarts (issue 23, item 6): the Docker daemon's own restart, as a host reboot does it, while a
replay trades; and a service that starts before Postgres and Redis exist.

After a reboot the engine starts every `unless-stopped` container at once, in no order: Compose's
`depends_on` does not apply then (docker/compose#12589) and an unhealthy container is never restarted
(moby#28400), so the stack only comes back if every service waits for its dependencies by itself. What
is proven, on a stack of our own (STACKS["daemon_restart"]), with the core, replay and
monitoring profiles:

* the daemon behind DOCKER_HOST is stopped (SIGTERM, or its systemd unit) and started again with the same
  command line, environment and log file: every container that ran comes back healthy with no command of
  ours, no row of signals, orders, trades or market snapshots is lost, the pipeline keeps trading, and
  `cdb-ops validate` (with its probe) passes. How long the stack takes to be healthy once the engine
  answers again is printed. The engine is left running with the command line it had.
* the trading services restarted while Postgres and Redis do not exist keep running (unhealthy past their
  grace, never exited, never restarted by Docker) and become healthy by themselves once both are back.

Restarting an engine stops every container on it. Outside CI the test therefore skips when containers of
other projects run on the engine (set CDB_TEST_ENGINE_RESTART=1 to restart it anyway); under CI=true an
engine it cannot restart (remote DOCKER_HOST, not root) is a failure, elsewhere a skip with the reason.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

from tests import engine_daemon
from tests.helpers import STACKS, StackFixture, cdb, pg_connect, wait_until

pytestmark = pytest.mark.e2e

STACK = STACKS["daemon_restart"]
SYSTEM, PREFIX = STACK.system, STACK.prefix
PROFILES = ("--profile", "core", "--profile", "replay", "--profile", "monitoring")
SERVICES = {"screener_ws": 8000, "signal": 8001, "risk": 8002, "execution": 8003}
# what the pipeline writes and must never lose: table -> its key
TABLES = {"signals": "signal_id", "orders": "order_id", "trades": "trade_id", "market_snapshots": "id"}


def _cannot(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"CI=true, but the engine cannot be restarted: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def daemon() -> Iterator[engine_daemon.Daemon]:
    """The daemon DOCKER_HOST names; started again at the end if a failed test left it stopped."""
    try:
        found = engine_daemon.find(engine_daemon.socket_path())
    except engine_daemon.CannotRestart as exc:
        _cannot(str(exc))
        raise  # unreachable: _cannot skips or fails
    others = [
        c["Names"][0].lstrip("/")
        for c in docker.from_env().api.containers(filters={"status": "running"})
        if (c.get("Labels") or {}).get("cdb.system") != SYSTEM
    ]
    if others and not os.environ.get("CI") and not os.environ.get("CDB_TEST_ENGINE_RESTART"):
        pytest.skip(
            f"restarting the engine would stop {len(others)} container(s) of other projects "
            f"({', '.join(sorted(others)[:5])}{', …' if len(others) > 5 else ''}); "
            "set CDB_TEST_ENGINE_RESTART=1 to allow it"
        )
    yield found
    try:
        engine_daemon.wait_answers(found.socket, timeout=1)
    except AssertionError:
        engine_daemon.start(found)
        engine_daemon.wait_answers(found.socket)


@pytest.fixture(scope="module")
def stack(daemon: engine_daemon.Daemon, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    # the recorded market again and again (55 s a pass), its times rewritten to now: it keeps trading
    yield from StackFixture(
        STACK, env={"REPLAY_SPEED": "20", "REPLAY_LOOP": "1"}, rebuild_args=("--feed", "replay", *PROFILES)
    ).around(tmp_path_factory.mktemp("restarts"))


# -- facts ----------------------------------------------------------------------------------------------


def _containers() -> dict[str, dict[str, Any]]:
    """Every container of the stack: name -> its inspect State (and RestartCount)."""
    client = docker.from_env()
    out = {}
    for c in client.api.containers(all=True, filters={"label": f"cdb.system={SYSTEM}"}):
        attrs = client.api.inspect_container(c["Id"])
        out[attrs["Name"].lstrip("/")] = {**attrs["State"], "RestartCount": attrs["RestartCount"]}
    return out


def _healthy(state: dict[str, Any]) -> bool:
    return bool(state.get("Running")) and state.get("Health", {}).get("Status", "healthy") == "healthy"


def _keys(project: Path) -> dict[str, set[Any]]:
    with pg_connect(project, STACK.pg_port) as conn:
        return {t: {r[0] for r in conn.execute(f"SELECT {k} FROM {t}")} for t, k in TABLES.items()}  # noqa: S608


def _count(project: Path, table: str) -> int:
    with pg_connect(project, STACK.pg_port) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()  # noqa: S608
    return int(row[0]) if row else 0


def _logs_tail(name: str, lines: int = 15) -> str:
    with_logs = docker.from_env().api.logs(name, tail=lines)
    return with_logs.decode(errors="replace")


def _report(request: pytest.FixtureRequest, line: str) -> None:
    """A measurement on the terminal (not only in captured output) and in the JUnit properties."""
    print(line)
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"[daemon restart] {line}")


# The ERROR a service logs once a dependency has been away for 60 s (cdb_common.backoff.Outage).
OUTAGE_ERROR = re.compile(r'"level":"ERROR".*"msg":"(database|redis) connection failing for \d+ s')


def _outage_only(check: dict[str, Any]) -> bool:
    """A failed log check whose every ERROR line is a service reporting an outage of Postgres or Redis."""
    facts = check.get("facts", {})
    lines = facts.get("first", [])
    return (
        check["name"].startswith("logs ")
        and bool(lines)
        and facts.get("error_lines") == len(lines)
        and all(OUTAGE_ERROR.search(line) for line in lines)
    )


def _validate(project: Path, *, outage_seen: bool = False) -> None:
    """`cdb-ops validate` with its probe passes. After an outage longer than 60 s (`outage_seen`) the services'
    log checks still show it (validate reads every line since the container started): those, and only those,
    may fail then."""
    r = cdb("validate", "--feed", "replay", *PROFILES, "--json", project=project)
    assert r.stdout, r.stderr[-3000:]
    failed = [c for c in json.loads(r.stdout)["checks"] if c["status"] == "fail"]
    if outage_seen:
        failed = [c for c in failed if not _outage_only(c)]
    else:
        assert r.returncode == 0, json.dumps(failed, indent=1)[-4000:]
    assert not failed, json.dumps(failed, indent=1)[-4000:]


# -- the tests ------------------------------------------------------------------------------------------


def test_daemon_restart_while_a_replay_trades(
    stack: Path, daemon: engine_daemon.Daemon, request: pytest.FixtureRequest
) -> None:
    wait_until("the replay to trade", lambda: _count(stack, "trades") > 0, 180, 0.5)
    before = _containers()
    running = sorted(name for name, state in before.items() if state["Running"])
    assert len(running) >= 7, before.keys()  # postgres, redis, four services, the replay (+ monitoring)
    keys = _keys(stack)

    t0 = time.monotonic()
    engine_daemon.stop(daemon)
    stopped = time.monotonic()
    engine_daemon.start(daemon)
    back = engine_daemon.wait_answers(daemon.socket)
    again = engine_daemon.find(daemon.socket)
    assert again.argv == daemon.argv and again.pid != daemon.pid, (daemon.describe(), again.describe())

    # nothing of ours from here on: the engine's restart policies and the services' own retries only
    healthy_at: dict[str, float] = {}

    def all_healthy() -> bool:
        now, states = time.monotonic(), _containers()
        for name in running:
            state = states.get(name, {})
            # started by the new daemon (a health status from before the restart proves nothing)
            if name not in healthy_at and state.get("StartedAt") != before[name]["StartedAt"] and _healthy(state):
                healthy_at[name] = now - back
        return len(healthy_at) == len(running)

    try:
        wait_until("every container to be healthy again", all_healthy, 240, 0.25)
    except AssertionError:
        late = [n for n in running if n not in healthy_at]
        raise AssertionError(
            f"not healthy after the restart: {late}\n" + "\n".join(f"--- {n}\n{_logs_tail(n)}" for n in late)
        ) from None
    slowest = max(healthy_at, key=healthy_at.__getitem__)
    _report(
        request,
        f"engine stop {stopped - t0:.1f} s, start until it answers {back - stopped:.1f} s; stack healthy "
        f"{healthy_at[slowest]:.1f} s after the engine answered (slowest {slowest}; "
        + ", ".join(f"{n.removeprefix(PREFIX)} {s:.1f}" for n, s in sorted(healthy_at.items(), key=lambda i: i[1]))
        + ")",
    )

    after = _keys(stack)
    for table, before_keys in keys.items():
        lost = before_keys - after[table]
        assert not lost, f"{len(lost)} of {len(before_keys)} {table} rows lost in the restart: {sorted(lost)[:5]}"
    # the pipeline goes on: the looping replay keeps producing snapshots, signals and trades
    wait_until(
        "new trades and market snapshots after the restart",
        lambda: (
            _count(stack, "trades") > len(keys["trades"])
            and _count(stack, "market_snapshots") > len(keys["market_snapshots"])
        ),
        180,
        0.5,
    )
    _validate(stack)


def test_services_started_before_postgres_and_redis_exist_recover_by_themselves(
    stack: Path, request: pytest.FixtureRequest
) -> None:
    wait_until("a healthy stack", lambda: all(_healthy(s) for s in _containers().values()), 120, 0.5)
    keys = _keys(stack)
    client = docker.from_env()
    for name in ("postgres", "redis"):
        container = client.containers.get(PREFIX + name)
        container.stop(timeout=10)
        container.remove()  # the volumes stay: the data comes back with the containers
    # each service process starts afresh, as after a reboot that started it first
    for name in SERVICES:
        client.containers.get(PREFIX + name).restart(timeout=10)
    started = {name: _containers()[PREFIX + name] for name in SERVICES}

    def waiting() -> list[str]:
        """The services that answer /health and say both dependencies are missing; all of them or nothing."""
        out = []
        for name, port in SERVICES.items():
            checks = httpx.get(f"http://127.0.0.1:{STACK.port(port)}/health", timeout=3).json()["checks"]
            if checks["postgres_connected"] is False and checks["redis_connected"] is False:
                out.append(name)
        return out if len(out) == len(SERVICES) else []

    wait_until("every service to serve /health while its dependencies are missing", waiting, 60, 0.5)
    # past the 30 s grace Docker marks them unhealthy, and Docker never restarts an unhealthy container:
    # from here only the services' own retries can bring the stack back
    wait_until(
        "Docker to report the waiting services unhealthy",
        lambda: all(_containers()[PREFIX + n].get("Health", {}).get("Status") == "unhealthy" for n in SERVICES),
        120,
        1,
    )
    back = ("--phase", "postgres", "--phase", "redis")  # only these two: the services are left to themselves
    r = cdb("rebuild", "--feed", "replay", *PROFILES, *back, "--json", project=stack)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    deps_back = time.monotonic()
    healthy_at: dict[str, float] = {}

    def all_healthy() -> bool:
        states = _containers()
        for name in SERVICES:
            if name not in healthy_at and _healthy(states[PREFIX + name]):
                healthy_at[name] = time.monotonic() - deps_back
        return len(healthy_at) == len(SERVICES)

    wait_until("the services to be healthy again by themselves", all_healthy, 120, 0.25)
    _report(
        request,
        "services started before Postgres and Redis: healthy "
        + ", ".join(f"{n} {s:.1f} s" for n, s in sorted(healthy_at.items(), key=lambda i: i[1]))
        + " after both were ready",
    )
    now = _containers()
    for name, was in started.items():
        state = now[PREFIX + name]
        assert (state["StartedAt"], state["RestartCount"]) == (was["StartedAt"], was["RestartCount"]), (
            f"{name} was restarted while it waited: {was['StartedAt']} -> {state['StartedAt']}"
        )
    after = _keys(stack)
    assert all(keys[t] <= after[t] for t in TABLES), {t: len(keys[t] - after[t]) for t in TABLES}
    wait_until("new trades", lambda: _count(stack, "trades") > len(keys["trades"]), 180, 0.5)
    # the services this test did not restart (the backup service, the notifier) rode out the whole outage in
    # their reconnect back-off (at most 30 s between attempts): they too are healthy again by themselves
    wait_until(
        "every container of the stack healthy again",
        lambda: [n for n, st in _containers().items() if not _healthy(st)] == [],
        90,
        1,
    )
    _validate(stack, outage_seen=True)


# A service whose one loop waits on a thread of the default executor, as loop.getaddrinfo() does for a
# dependency's name while its container is not running (5-10 s per lookup, depending on the resolver).
STUCK_SERVICE = """
import asyncio, time
from cdb_common.runtime import BaseService, main

class Stuck(BaseService):
    name = "stuck"
    uses_postgres = False
    uses_redis = False

    def loops(self):
        async def lookup():
            await asyncio.get_running_loop().run_in_executor(None, time.sleep, 30)
        return [lookup()]

main(Stuck, "stuck", 8099)
"""


def test_a_service_stops_at_once_while_a_lookup_thread_hangs(stack: Path) -> None:
    """`docker stop` (and so the daemon's own shutdown) is not held by a thread stuck in a name lookup: the
    process exits within its 2 s budget, with exit code 0, not after the lookup or by SIGKILL."""
    client = docker.from_env()
    container = client.containers.run(
        f"{PREFIX}signal:latest",
        ["python3", "-c", STUCK_SERVICE],
        name=f"{PREFIX}stuck_lookup",
        labels={"cdb.system": SYSTEM},
        detach=True,
    )
    try:
        wait_until("the service to start its loops", lambda: b'"msg":"started"' in container.logs(), 30, 0.5)
        time.sleep(0.3)  # the lookup thread is asleep by now
        sent = time.monotonic()
        container.stop(timeout=10)
        took = time.monotonic() - sent
        container.reload()
        assert container.attrs["State"]["ExitCode"] == 0, container.logs()[-2000:]
        assert took < 4.0, f"docker stop took {took:.1f} s: the exit waited for the stuck lookup thread"
    finally:
        container.remove(force=True)
