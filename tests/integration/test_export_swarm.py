"""`export compose --target swarm` writes a file `docker stack deploy` runs on a single-node swarm of the
local engine: every service runs, the migrate service completes once, and the end-to-end probe sent to
the screener's published port reaches Postgres. The swarm is initialised only when the engine is in none,
and then always left; the stack, its secrets, configs, volumes and the images built here are removed,
even on failure. Run it alone on the engine (`flock /tmp/cdb-engine.lock`): it changes the engine's mode."""

from __future__ import annotations

import contextlib
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import httpx
import pytest

from tests.helpers import STACKS, cdb, make_project, pg_connect, remove_system, wait_until

pytestmark = pytest.mark.integration

STACK = STACKS["export_swarm"]
SYSTEM, PREFIX = STACK.system, STACK.prefix
NAMESPACE = STACK.prefix.rstrip("_")  # the swarm stack's name
RUNNING = ("postgres", "redis", "screener", "signal", "risk", "execution", "market_replay")


def _docker(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)


def _swarm_state() -> str:
    return str(docker.from_env().info()["Swarm"]["LocalNodeState"])


def _built_images() -> set[str]:
    return {t for i in docker.from_env().images.list() for t in i.tags if t.startswith(PREFIX)}


def _tasks(service: str) -> list[dict[str, object]]:
    client = docker.from_env()
    return client.api.tasks(filters={"service": f"{NAMESPACE}_{service}"})


def _remove_stack() -> None:
    """Remove the stack and wait until its containers, network, secrets and configs are gone; then the
    volumes (a swarm keeps them) — only ours, by the stack's namespace label and our system label."""
    client = docker.from_env()
    if _swarm_state() == "active":
        _docker("stack", "rm", NAMESPACE)
    namespace = {"label": f"com.docker.stack.namespace={NAMESPACE}"}
    # the low-level list: docker-py's containers.list() inspects each container it lists, and one the
    # swarm removes in between fails that with NotFound; what is left after a minute is removed by force
    with contextlib.suppress(AssertionError):
        wait_until(
            "the swarm removing the stack",
            lambda: not (client.api.containers(all=True, filters=namespace) or client.networks.list(filters=namespace)),
            60,
            0.5,
        )
    for c in client.api.containers(all=True, filters=namespace):
        with contextlib.suppress(docker.errors.NotFound):
            client.api.remove_container(c["Id"], force=True, v=True)
    for v in client.volumes.list(filters=namespace):
        v.remove(force=True)
    remove_system(SYSTEM)


@pytest.fixture(scope="module")
def swarm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, subprocess.CompletedProcess[str]]]:
    root = tmp_path_factory.mktemp("swarm")
    we_joined = False
    images_before = _built_images()
    try:
        project = make_project(root / "p", STACK.system, STACK.prefix, STACK.offset)
        file = root / "out" / "stack.yml"
        file.parent.mkdir()
        # offline: the fallbacks, as CI has no registry; --build: a swarm builds nothing itself
        export = cdb("export", "compose", "--target", "swarm", "--offline", "--build", "-o", str(file), project=project)
        assert export.returncode == 0, export.stderr[-3000:]
        if _swarm_state() == "inactive":  # never join, leave or re-init a swarm somebody else made
            init = _docker("swarm", "init", "--advertise-addr", "127.0.0.1")
            assert init.returncode == 0, init.stderr
            we_joined = True
        deploy = _docker("stack", "deploy", "--resolve-image", "never", "-c", str(file), NAMESPACE, timeout=180)
        assert deploy.returncode == 0, deploy.stderr
        yield project, export
    finally:
        _remove_stack()
        if we_joined:
            _docker("swarm", "leave", "--force")
        client = docker.from_env()
        for tag in _built_images() - images_before:
            client.images.remove(tag, force=True)


def _wait_running(timeout: float = 240) -> dict[str, str]:
    """Each service's newest task state once all long-running ones run and migrate completed."""
    states: dict[str, str] = {}

    def all_running() -> bool:
        for name in (*RUNNING, "migrate"):
            tasks = sorted(_tasks(name), key=lambda t: str(t["CreatedAt"]))
            states[name] = str(tasks[-1]["Status"]["State"]) if tasks else "none"  # type: ignore[index]
        return all(states[n] == "running" for n in RUNNING) and states["migrate"] == "complete"

    with contextlib.suppress(AssertionError):  # the states as last seen: the caller's assert shows them
        wait_until("every service running", all_running, timeout, every=1)
    return states


def test_stack_deploy_runs_every_service_and_migrates_once(swarm):
    _, export = swarm
    states = _wait_running()
    assert states == dict.fromkeys(RUNNING, "running") | {"migrate": "complete"}
    migrate = _tasks("migrate")
    # ran once: completed tasks are never restarted (a failed one, Postgres not up yet, may precede it)
    assert [t["Status"]["State"] for t in migrate].count("complete") == 1
    # what the swarm cannot express was named, with what was done instead
    for key in ("build (", "container_name (", "depends_on (", "mem_limit (", "restart: unless-stopped ("):
        assert key in export.stderr, key


def test_probe_through_the_screeners_published_port_reaches_postgres(swarm):
    project, _ = swarm
    assert _wait_running()["execution"] == "running"
    probe_id = uuid.uuid4()
    started = time.monotonic()  # one 90 s budget for the probe's way in and its trade

    def probe() -> str:
        r = httpx.post(
            f"http://127.0.0.1:{STACK.port(8000)}/probe",
            json={"probe_id": str(probe_id), "move_pct": 6.0},
            timeout=5,
        )
        r.raise_for_status()
        return str(r.json()["symbol"])

    # the screener answers once it is healthy (its port is published in host mode)
    symbol = wait_until("the screener's published port accepting the probe", probe, 90, every=1)
    with pg_connect(project, STACK.pg_port) as conn:
        row = wait_until(
            "the probe's trade",
            lambda: conn.execute(
                """SELECT r.decision, t.trade_id, t.portfolio FROM signals s
                     JOIN risk_events r ON r.signal_id = s.signal_id
                     JOIN orders o ON o.risk_event_id = r.risk_event_id
                     JOIN trades t ON t.order_id = o.order_id
                    WHERE s.symbol = %s AND s.is_probe""",
                (symbol,),
            ).fetchone(),
            max(0.0, 90 - (time.monotonic() - started)),
            every=0.2,
        )
        migrations = conn.execute("SELECT count(*) FROM cdb_ops.schema_migrations").fetchone()
    assert row is not None and row[0] == "APPROVED" and row[2] == "probe", row
    assert migrations is not None and migrations[0] == len(list((project / "schema").glob("*.sql")))


def test_removing_the_stack_leaves_nothing(swarm):
    _remove_stack()
    client = docker.from_env()
    namespace = {"label": f"com.docker.stack.namespace={NAMESPACE}"}
    assert client.api.containers(all=True, filters=namespace) == []
    assert client.volumes.list(filters={"label": f"cdb.system={SYSTEM}"}) == []
    if _swarm_state() == "active":
        assert client.api.secrets(filters=namespace) == [] and client.api.configs(filters=namespace) == []
        assert _docker("service", "ls", "-q", "--filter", f"label=com.docker.stack.namespace={NAMESPACE}").stdout == ""
