"""Breaking the stack on purpose (issue 4, items 2 and 6), on the real engine, as a user would see it.

A stack of our own (STACKS["breakage"], replay feed) is broken one way per test:
a stopped service, a service cut off from the network (so from Postgres), a dropped table, an ERROR line
in a service's log, and a service that never gets healthy while rebuild waits for it. Each test asserts
what the user sees — exit codes, the failing check by name with its detail and remedy in
`validate --json` (or the finding of `doctor --json`, or the error of `rebuild --json`) — then that
`cdb-ops rebuild` heals it and `validate` passes again. Each test puts back what it broke, even when it
fails, so the next one starts from a converged stack.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import docker
import psycopg
import pytest
import redis
import yaml

from tests.helpers import REPO, STACKS, StackFixture, cdb_exit_json, pg_connect, redis_connect, wait_until

pytestmark = pytest.mark.e2e

STACK = STACKS["breakage"]
SYSTEM, PREFIX = STACK.system, STACK.prefix
NETWORK = STACK.container("network")
# how long validate's pipeline probe may wait for a stage we broke on purpose (default 30 s)
PROBE_TIMEOUT = "10"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    # REPLAY_SPEED=0: the recorded scenario at once; then the replay holds a flat market
    yield from StackFixture(STACK, env={"REPLAY_SPEED": "0"}, rebuild_args=("--feed", "replay")).around(
        tmp_path_factory.mktemp("breakage")
    )


@pytest.fixture
def stack(project: Path) -> Path:
    """The stack converged and validated before each test (the test before may have left it changed)."""
    code, out = rebuild(project)
    assert code == 0, out["error"]
    return project


# -- what the user runs ---------------------------------------------------------------------------


def rebuild(project: Path) -> tuple[int, dict[str, Any]]:
    return cdb_exit_json("rebuild", "--feed", "replay", project=project)


def validate(project: Path) -> tuple[int, dict[str, Any]]:
    return cdb_exit_json("validate", "--probe-timeout", PROBE_TIMEOUT, project=project)


def doctor(project: Path) -> tuple[int, dict[str, Any]]:
    return cdb_exit_json("doctor", project=project)


def check(out: dict[str, Any], name: str) -> dict[str, Any]:
    found = [c for c in out["checks"] if c["name"] == name]
    assert found, f"no check {name!r} in {[c['name'] for c in out['checks']]}"
    return found[0]


def failed(out: dict[str, Any]) -> dict[str, str]:
    return {c["name"]: c["detail"] for c in out["checks"] if c["status"] == "fail"}


def steps_of(out: dict[str, Any], name: str, resource: str = "container") -> list[dict[str, Any]]:
    return [s for s in out["steps"] if s["name"] == name and s["resource"] == resource]


def assert_heals(project: Path) -> dict[str, Any]:
    """`cdb-ops rebuild` exits 0 (its own last phase is validate), and a `validate` after it passes."""
    code, out = rebuild(project)
    assert code == 0, f"rebuild did not heal (exit {code}): {out['error']}"
    code, after = validate(project)
    assert code == 0, f"validate after the rebuild still fails: {failed(after)}"
    return out


# -- access to the stack --------------------------------------------------------------------------


def container(service: str) -> Any:
    return docker.from_env().containers.get(PREFIX + service)


def docker_healthy(service: str) -> bool:
    c = container(service)
    return c.status == "running" and c.attrs["State"].get("Health", {}).get("Status") == "healthy"


def pg(project: Path) -> psycopg.Connection:
    return pg_connect(project, STACK.pg_port)


def table_exists(project: Path, table: str) -> bool:
    with pg(project) as conn:
        return conn.execute("SELECT to_regclass(%s)", (f"public.{table}",)).fetchone()[0] is not None


def bus(project: Path) -> redis.Redis:
    return redis_connect(project, STACK.redis_port, socket_timeout=5)


@contextmanager
def edited_stack(project: Path, edit: Callable[[dict[str, Any]], None]) -> Iterator[None]:
    """The project's playbooks/stack.yaml changed by `edit`, put back byte for byte afterwards."""
    path = project / "playbooks" / "stack.yaml"
    original = path.read_text()
    stack = yaml.safe_load(original)
    edit(stack)
    path.write_text(yaml.safe_dump(stack, sort_keys=False))
    try:
        yield
    finally:
        path.write_text(original)


# -- the breakages ---------------------------------------------------------------------------------


def test_a_stopped_service_fails_its_checks_and_rebuild_starts_the_same_container(stack):
    signal = container("signal")
    signal.stop(timeout=10)
    try:
        code, out = validate(stack)
        assert code == 1
        c = check(out, f"container {PREFIX}signal")
        assert c["status"] == "fail" and c["facts"]["state"] == "exited", c
        assert c["detail"].startswith("exited"), c
        assert "cdb-ops rebuild" in c["remedy"] and "cdb-ops logs signal" in c["remedy"], c
        assert check(out, "health signal")["status"] == "fail"
        probe = check(out, "pipeline probe")
        # the screener took the probe; nothing consumed its ticks: the first stage is missing
        assert probe["status"] == "fail" and probe["detail"].startswith("no signal after"), probe
        assert probe["facts"]["reached"] is None and "cdb-ops logs signal" in probe["remedy"], probe

        healed = assert_heals(stack)
        assert [(s["action"], s["detail"]) for s in steps_of(healed, f"{PREFIX}signal")] == [
            ("start", "container is exited")
        ]
        assert container("signal").id == signal.id  # started, not recreated
    finally:
        if container("signal").status != "running":
            container("signal").start()


def test_a_service_cut_off_from_postgres_is_diagnosed_and_recreated_on_the_network(stack):
    risk = container("risk")
    docker.from_env().networks.get(NETWORK).disconnect(risk)
    try:
        code, out = validate(stack)
        assert code == 1
        net = check(out, f"network {NETWORK}")
        assert net["status"] == "fail" and net["detail"] == f"running but not attached: {PREFIX}risk", net
        assert "cdb-ops rebuild" in net["remedy"], net
        assert check(out, "health risk")["status"] == "fail"  # its published port went with the network
        probe = check(out, "pipeline probe")
        assert probe["status"] == "fail" and probe["detail"].startswith("no risk decision after"), probe
        assert probe["facts"]["reached"] == "signal" and "cdb-ops logs risk" in probe["remedy"], probe

        code, diag = doctor(stack)
        assert code == 1
        findings = {f["name"]: f for f in diag["findings"]}
        f = findings["risk reaches postgres"]
        assert f["verdict"] == "problem", f
        assert f["diagnosis"] == f"{PREFIX}risk is not attached to {NETWORK}", f
        assert "cdb-ops rebuild" in f["fix"], f
        assert findings["signal reaches postgres"]["verdict"] == "ok"  # only the one that was cut off

        healed = assert_heals(stack)
        assert [(s["action"], s["detail"]) for s in steps_of(healed, f"{PREFIX}risk")] == [
            ("recreate", f"not attached to network {NETWORK}")
        ]
        assert container("risk").id != risk.id
    finally:
        if NETWORK not in container("risk").attrs["NetworkSettings"]["Networks"]:
            rebuild(stack)


def test_a_dropped_table_is_named_and_rebuild_re_creates_it(stack):
    """`daily_pnl` is dropped although its migration (003) is recorded as applied, so `schema migrate`
    alone would never bring it back. rebuild's schema phase notices the missing table and re-applies
    003 and every later migration (they are re-runnable: CREATE ... IF NOT EXISTS) in one transaction.

    While the table is gone, execution crashes on its next fill and Docker restarts it (a warning, not
    a failure, once it runs again); Postgres logs the statements that failed. Those lines predate the
    repair, so `logs postgres` only looks at lines since the schema repair."""
    with pg(stack) as conn:
        conn.execute("DROP TABLE daily_pnl CASCADE")
    try:
        code, out = validate(stack)
        assert code == 1
        tables = check(out, "postgres tables")
        assert tables["status"] == "fail" and tables["detail"] == "missing: daily_pnl", tables
        assert tables["facts"]["missing_tables"] == ["daily_pnl"]
        assert "cdb-ops rebuild" in tables["remedy"], tables
        assert check(out, "migrations")["status"] == "pass"  # the history says applied: that is the trap

        healed = assert_heals(stack)
        reapplied = [s for s in healed["steps"] if s["phase"] == "schema" and s["action"] == "migrate"]
        later = sorted(f.stem for f in (REPO / "schema").glob("*.sql") if f.stem >= "003")  # 003 and after
        assert [s["name"] for s in reapplied] == later, reapplied
        assert {s["detail"] for s in reapplied} == {"re-applied: table daily_pnl was missing"}
        assert table_exists(stack, "daily_pnl")
        assert check(healed, "logs postgres")["detail"] == "no ERROR lines since the schema repair"
        # a second rebuild has nothing left to repair
        code, again = rebuild(stack)
        assert code == 0 and again["changed"] == 0, again["steps"]
    finally:
        if not table_exists(stack, "daily_pnl"):
            rebuild(stack)


def test_an_error_line_in_a_log_fails_validate_until_the_service_restarts(stack):
    """A producer bug: an entry on `cdb:signals` that is not a valid event. The risk manager logs it at
    ERROR, copies it to `cdb:deadletter` and acks it (docs/trading.md), and `validate` fails on
    `logs risk` with that line and where to read them all.

    What heals it: the check looks at the lines since the container started, so an old ERROR line
    keeps failing it until the service restarts — after its cause (the producer) was fixed, a user
    restarts it (`docker restart`, or a rebuild that recreates it). A rebuild alone changes nothing
    here: the container is converged, so it is left alone and its validate phase still fails (exit 1).
    The line stays in the service's history (`cdb-ops logs risk --errors`)."""
    r = bus(stack)
    restarted = False
    try:
        # a signal without any of its fields: not a valid event
        entry_id = r.xadd("cdb:signals", {"data": json.dumps({"event_id": str(uuid.uuid4())})}).decode()
        wait_until(
            "risk to log the invalid entry", lambda: entry_id in container("risk").logs(tail=50).decode(), 30, 0.5
        )

        code, out = validate(stack)
        assert code == 1
        logs = check(out, "logs risk")
        assert logs["status"] == "fail", logs
        assert "invalid event skipped" in logs["detail"] and entry_id in logs["detail"], logs
        assert "cdb-ops logs risk --errors" in logs["remedy"], logs
        assert list(failed(out)) == ["logs risk"]  # nothing else is wrong: the bad entry was skipped

        code, shown = cdb_exit_json("logs", "risk", "--errors", project=stack)
        assert code == 0
        assert any(entry_id in ln["line"] and '"level":"ERROR"' in ln["line"] for ln in shown["lines"]), shown
        dead = [f for _, f in r.xrange("cdb:deadletter") if f.get(b"entry_id") == entry_id.encode()]
        assert dead and dead[0][b"stream"] == b"cdb:signals", dead

        code, again = rebuild(stack)
        assert code == 1 and again["changed"] == 0, again["steps"]
        assert list(failed(again)) == ["logs risk"]

        container("risk").restart(timeout=10)
        restarted = True
        wait_until("risk to be healthy again", lambda: docker_healthy("risk"), 60, 0.5)
        code, out = validate(stack)
        assert code == 0, failed(out)
        assert check(out, "logs risk")["detail"] == "no ERROR lines since start"
        code, shown = cdb_exit_json("logs", "risk", "--errors", project=stack)
        assert any(entry_id in ln["line"] for ln in shown["lines"])  # still in the history
    finally:
        r.close()
        if not restarted:
            container("risk").restart(timeout=10)
            wait_until("risk to be healthy again", lambda: docker_healthy("risk"), 60, 0.5)


def test_a_health_wait_that_times_out_shows_the_probe_docker_health_and_the_last_log_lines(stack):
    """Issue 4, item 6. The screener's feed points at a closed port, so no frame ever arrives: its
    /health is `degraded` (feed not connected) and, after FRAME_STALE_SECONDS, `unhealthy` (503). A
    service that just started and is not `ok` is not ready, so rebuild's wait runs into the service's
    `ready.timeout` (15 s here) and exits 5 with the probe's last answer, Docker's last health-check
    output and the service's last log lines (its reconnect warnings), not just "timeout" — and, since the
    new container failed after the swap, the previous one back (issue 25: rollback on a failed wait)."""

    def never_healthy(stack_yaml: dict[str, Any]) -> None:
        screener = stack_yaml["services"]["screener"]
        stack_yaml["feeds"]["replay"]["env"]["screener"]["FEED_URL"] = "ws://127.0.0.1:9/ws"  # nothing listens
        screener["env"]["FRAME_STALE_SECONDS"] = 5
        screener["ready"]["timeout"] = "15s"

    try:
        with edited_stack(stack, never_healthy):
            started = time.monotonic()
            code, out = rebuild(stack)
            took = time.monotonic() - started
        assert code == 5, out["error"]
        err = out["error"]
        assert err["kind"] == "health_timeout" and err["exit_code"] == 5, err
        assert err["message"].startswith(f"{PREFIX}screener_ws was not ready after 15 s"), err["message"]
        assert "rebuild again" in err["remedy"] and f"docker logs {PREFIX}screener_ws" in err["remedy"]
        details = err["details"]
        assert details["service"] == "screener" and details["container"] == f"{PREFIX}screener_ws"
        # the probe's last answer: which facts of /health are not ok
        assert details["probe"].startswith("GET /health -> 503 unhealthy"), details["probe"]
        assert '"feed_connected": false' in details["probe"] and "no frame for more than 5 s" in details["probe"]
        # Docker's own health check ran once within the 15 s (interval 10 s) and said the same
        assert details["docker_health"] in ("starting", "unhealthy"), details
        assert '"status": "unhealthy"' in details["health_output"], details
        # the service's last log lines say why
        reconnects = [ln for ln in details["log_tail"] if "feed disconnected, reconnecting" in ln]
        assert reconnects and "127.0.0.1', 9" in reconnects[-1], details["log_tail"]
        # and the human-readable message carries all three
        for part in ("probe (http): GET /health -> 503", "docker health:", "log lines of"):
            assert part in err["message"], err["message"]
        assert took < 60, f"the wait should end at its 15 s timeout, the whole rebuild took {took:.0f} s"

        # the new screener failed its wait after the swap: the previous one (image and config) came back
        assert details["rolled_back"] == ["screener"], details
        assert "rolled back" in err["message"], err["message"]

        healed = assert_heals(stack)  # the playbook is back as it was: the running screener already matches it
        assert [s["action"] for s in steps_of(healed, f"{PREFIX}screener_ws")] == ["ok"]
        # nothing was left aside: the failed new container went when the previous one came back
        removed = [s["name"] for s in healed["steps"] if s["phase"] == "cleanup" and s["action"] == "remove"]
        assert removed == [], removed
    finally:
        rebuild(stack)  # the playbook is already back; this converges the screener if the test stopped early
