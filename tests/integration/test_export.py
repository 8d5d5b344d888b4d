"""`export compose` writes a file that Docker Compose v2 (the pinned binary of tools/compose-v2.sh) runs as
it is: a cold `up -d --wait` from empty volumes is healthy, a second one restarts nothing, the one-shot
migrate service keeps cdb-ops' own bookkeeping (so `schema migrate` finds nothing to do), `validate`
passes, and `down` / `down -v` keep / remove the data as Compose users expect. One stack per module."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import psycopg
import pytest
import yaml
from cdb_common.migrations import BOOKKEEPING

from cdb_ops.db.migrations import discover
from tests.helpers import REPO, STACKS, StackFixture, cdb, cdb_json, make_project, pg_connect

pytestmark = pytest.mark.integration

STACK = STACKS["export"]
SYSTEM, PREFIX = STACK.system, STACK.prefix
PROJECT_NAME = "cdbc"  # Compose's project name (-p)
LONG_RUNNING = ("postgres", "redis", "screener_ws", "signal", "risk", "execution", "market_replay")


@pytest.fixture(scope="module")
def compose_bin() -> str:
    r = subprocess.run(["bash", str(REPO / "tools" / "compose-v2.sh")], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout.strip()


class Stack:
    def __init__(self, compose_bin: str, project: Path, file: Path):
        self.bin, self.project, self.file = compose_bin, project, file

    def compose(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.bin, "-p", PROJECT_NAME, "-f", str(self.file), *args],
            capture_output=True,
            text=True,
            cwd=self.file.parent,
            timeout=timeout,
        )

    def containers(self) -> dict[str, docker.models.containers.Container]:
        client = docker.from_env()
        found = client.containers.list(all=True, filters={"label": f"com.docker.compose.project={PROJECT_NAME}"})
        return {c.name.removeprefix(PREFIX): c for c in found}

    def migrate_env(self) -> dict[str, str]:
        return dict(yaml.safe_load(self.file.read_text())["services"]["migrate"]["environment"])

    def pg(self) -> psycopg.Connection[Any]:
        return pg_connect(self.project, STACK.pg_port)


def _built_images() -> list[str]:
    return [t for i in docker.from_env().images.list() for t in i.tags if t.startswith(PREFIX)]


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, compose_bin: str
) -> Iterator[tuple[Stack, subprocess.CompletedProcess[str]]]:
    root = tmp_path_factory.mktemp("compose")
    # up removes a leftover of an interrupted run: the cold start is from empty volumes; Compose starts it
    fixture = StackFixture(STACK, converge=False)
    project = fixture.up(root / "p")
    file = root / "out" / "docker-compose.yml"
    file.parent.mkdir()
    images_before = set(_built_images())
    s = Stack(compose_bin, project, file)
    try:
        # offline: the fallback builds, as CI has no registry; --build tags every image the file names
        r = cdb("export", "compose", "--offline", "--build", "-o", str(file), project=project, timeout=900)
        assert r.returncode == 0, r.stderr[-3000:]
        assert not docker.from_env().volumes.list(filters={"label": f"cdb.system={SYSTEM}"})
        yield s, s.compose("up", "-d", "--wait")
    finally:
        s.compose("down", "-v", "--remove-orphans")
        fixture.down()
        client = docker.from_env()
        for tag in set(_built_images()) - images_before:
            client.images.remove(tag, force=True)


def test_cold_up_from_empty_volumes_is_healthy(stack):
    s, up = stack
    assert up.returncode == 0, up.stdout[-2000:] + up.stderr[-3000:]
    found = s.containers()
    for name in LONG_RUNNING:
        state = found[name].attrs["State"]
        assert state["Running"] and state["Health"]["Status"] == "healthy", (name, state)
    migrate = found["migrate"].attrs["State"]
    assert migrate["Status"] == "exited" and migrate["ExitCode"] == 0
    # the one-shot applied every shipped migration, in cdb-ops' bookkeeping table
    first = json.loads(found["migrate"].logs().decode().splitlines()[0])
    assert first["applied"] == [f"{m.version:03d}_{m.name}" for m in discover(REPO / "schema")]


def test_second_up_restarts_nothing(stack):
    s, _ = stack
    before = {n: (c.attrs["State"]["StartedAt"], c.attrs["RestartCount"]) for n, c in s.containers().items()}
    again = s.compose("up", "-d", "--wait")
    assert again.returncode == 0, again.stderr[-3000:]
    after = {n: (c.attrs["State"]["StartedAt"], c.attrs["RestartCount"]) for n, c in s.containers().items()}
    assert {n: after[n] for n in LONG_RUNNING} == {n: before[n] for n in LONG_RUNNING}
    # the one-shot ran again and found nothing to apply
    last = json.loads(s.containers()["migrate"].logs().decode().splitlines()[-1])
    assert last["applied"] == [] and last["msg"] == "schema current"


def test_compose_and_cdb_ops_keep_one_bookkeeping(stack):
    """What the migrate service recorded is what `cdb-ops schema migrate` expects: nothing to apply,
    nothing refused as changed, the same checksums."""
    s, _ = stack
    doc = cdb_json("schema", "migrate", project=s.project)
    assert doc["applied"] == [] and doc["pending"] == 0
    states = {m["version"]: m["state"] for m in doc["migrations"]}
    files = discover(s.project / "schema")
    assert states == {m.version: "applied" for m in files}
    with s.pg() as conn:
        rows = dict(conn.execute(f"SELECT version, checksum FROM {BOOKKEEPING}").fetchall())
    assert rows == {m.version: m.checksum for m in files}


def test_migrate_service_refuses_an_edited_migration_and_names_it(stack, tmp_path):
    """The one-shot keeps cdb-ops' rule: an applied migration whose file changed is refused (exit 3),
    with the file and the fix, and nothing is applied."""
    s, _ = stack
    edited = tmp_path / "schema"
    edited.mkdir()
    for f in (s.project / "schema").glob("*.sql"):
        (edited / f.name).write_bytes(f.read_bytes())
    (edited / "002_signals_risk_orders_trades.sql").write_text(
        (edited / "002_signals_risk_orders_trades.sql").read_text() + "\n-- edited after it was applied\n"
    )
    edited.chmod(0o755)
    secret = s.project / ".cdb" / "secrets" / "postgres_password"
    r = subprocess.run(
        ["docker", "run", "--rm", "--network", f"{PREFIX}network",
         "-v", f"{edited}:/schema:ro", "-v", f"{secret}:/run/secrets/postgres_password:ro",
         *[a for k, v in s.migrate_env().items() for a in ("-e", f"{k}={v}")],
         f"{PREFIX}migrate:latest"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 3, r.stdout + r.stderr
    line = json.loads(r.stdout.strip().splitlines()[-1])
    assert line["level"] == "ERROR" and "002_signals_risk_orders_trades" in line["msg"]
    assert line["file"] == "/schema/002_signals_risk_orders_trades.sql" and "new, higher-numbered" in line["fix"]


def test_validate_passes_against_the_stack_compose_started(stack):
    s, _ = stack
    doc = cdb_json("validate", project=s.project)
    failed = [c for c in doc["checks"] if c["status"] == "fail"]
    assert failed == []
    assert {c["name"]: c["status"] for c in doc["checks"]}["pipeline probe"] == "pass"


def test_down_keeps_the_data_and_down_v_removes_it(stack):
    s, _ = stack
    with s.pg() as conn:
        trades = conn.execute("SELECT count(*) FROM trades").fetchone()
    down = s.compose("down")
    assert down.returncode == 0, down.stderr[-2000:]
    assert s.containers() == {}
    client = docker.from_env()
    volumes = {v.name for v in client.volumes.list(filters={"label": f"cdb.system={SYSTEM}"})}
    # postgres_tmp: where backups stage their dumps (a volume: `docker cp` reaches no tmpfs)
    assert volumes == {  # the core's and the default alerting profile's
        f"{PREFIX}{v}"
        for v in ("postgres_data", "postgres_tmp", "redis_data", "risk_logs", "prometheus_data", "alertmanager_data")
    }
    up = s.compose("up", "-d", "--wait")
    assert up.returncode == 0, up.stderr[-3000:]
    with s.pg() as conn:
        again = conn.execute("SELECT count(*) FROM trades").fetchone()
    assert trades is not None and again is not None and again[0] >= trades[0]
    gone = s.compose("down", "-v")
    assert gone.returncode == 0, gone.stderr[-2000:]
    assert client.volumes.list(filters={"label": f"cdb.system={SYSTEM}"}) == []
    assert client.networks.list(names=[f"{PREFIX}network"]) == []


@pytest.mark.parametrize("offline", [False, True])
def test_exported_file_is_accepted_by_compose_v2(tmp_path, compose_bin, offline):
    project = make_project(tmp_path / "p", STACK.system, STACK.prefix, STACK.offset)
    target = tmp_path / "out" / "docker-compose.yml"
    target.parent.mkdir()
    r = cdb("export", "compose", "-o", str(target), *(["--offline"] if offline else []), project=project)
    assert r.returncode == 0, r.stderr
    assert "ready (" in r.stderr  # what Compose cannot express is said on stderr
    resolved = subprocess.run(
        [compose_bin, "-f", str(target), "config"], capture_output=True, text=True, cwd=target.parent, timeout=60
    )
    assert resolved.returncode == 0, resolved.stderr
    services = yaml.safe_load(resolved.stdout)["services"]
    assert set(services) >= {"postgres", "redis", "migrate"}
    for name, svc in services.items():
        assert name == "migrate" or "healthcheck" in svc, name
        assert all(str(p.get("host_ip", "127.0.0.1")) == "127.0.0.1" for p in svc.get("ports", []))
    # the secret is a file, never a value
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD_FILE"] == "/run/secrets/postgres_password"
    assert "POSTGRES_PASSWORD" not in services["postgres"]["environment"]
    text = target.read_text()
    for line in (project / ".env").read_text().splitlines():
        if "PASSWORD=" in line:
            assert line.split("=", 1)[1] not in text
    # a shell `$` is escaped as `$$`, so Compose passes `$` to the container instead of interpolating
    assert '"$$(cat /run/secrets/redis_password)"' in " ".join(services["redis"]["command"])
    if offline:
        assert services["postgres"]["image"] == "cdb_ops/postgres:15-fallback" and "build" in services["postgres"]
    else:
        assert services["postgres"]["image"] == "postgres:15-alpine"


def test_export_refuses_to_overwrite(tmp_path):
    project = make_project(tmp_path / "p", STACK.system, STACK.prefix, STACK.offset)
    target = tmp_path / "compose.yml"
    target.write_text("keep me\n")
    r = cdb("export", "compose", "-o", str(target), project=project)
    assert r.returncode == 6 and target.read_text() == "keep me\n"
    r = cdb("export", "compose", "--target", "kubernetes", "-o", str(tmp_path / "k.yml"), project=project)
    assert r.returncode == 2 and "compose, swarm" in r.stderr and not (tmp_path / "k.yml").exists()
