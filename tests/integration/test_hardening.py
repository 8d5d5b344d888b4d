"""Every container of the core stack and the replay feed, hardened and with a capped log, on the real
engine (issue 23): `docker inspect` shows CapDrop ALL, no-new-privileges, a read-only root filesystem, a
pids and a memory limit, a non-root user and the log caps; `docker top` shows no process as root; and
the hardened stack still works — healthy, `validate` with its end-to-end probe passes, `doctor` reports
the posture clean, logs, backup and restore work, Redis refuses writes only at its maxmemory (never
evicting a stream), and a changed log cap recreates the containers with it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
import redis

from cdb_ops.model.labels import PREVIOUS_MARK
from tests.helpers import STACKS, StackFixture, cdb, cdb_json, env_values, wait_until

pytestmark = pytest.mark.integration

STACK = STACKS["hardening"]
SYSTEM, PREFIX = STACK.system, STACK.prefix
CONTAINERS = (
    "postgres", "redis", "screener_ws", "signal", "risk", "execution", "backup", "notifier", "market_replay",
    "prometheus", "alertmanager",  # the default profile alerting
)  # fmt: skip
NOT_CORE = ("market_replay", "prometheus", "alertmanager")  # the memo's 1.5 GB is the core's


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    # init --feed replay: no feed check (it would run the screener image on the default bridge)
    fixture = StackFixture(STACK, init=False, converge=False)
    root = fixture.up(tmp_path_factory.mktemp("hard"))
    try:
        r = cdb("init", "--feed", "replay", project=root)
        assert r.returncode == 0, r.stderr[-2000:]
        out = cdb_json("rebuild", project=root)
        assert out["result"] == "ok"
        yield root
    finally:
        fixture.down()


@pytest.fixture(scope="module")
def client() -> docker.DockerClient:
    return docker.from_env()


def _inspect(client: docker.DockerClient) -> dict[str, dict]:
    """The stack's containers by service name; the stopped copies a rebuild keeps for `cdb-ops rollback`
    (<name>-previous) are the old configuration by design and are left out."""
    found = client.api.containers(all=False, filters={"label": f"cdb.system={SYSTEM}"})
    named = {s["Names"][0].lstrip("/").removeprefix(PREFIX): s["Id"] for s in found}
    return {n: client.api.inspect_container(i) for n, i in named.items() if not n.endswith(PREVIOUS_MARK)}


def _healthy(client: docker.DockerClient, timeout: float = 90) -> dict[str, str]:
    def all_healthy() -> dict[str, str] | None:
        health = {n: (c["State"].get("Health") or {}).get("Status", "") for n, c in _inspect(client).items()}
        return health if all(h == "healthy" for h in health.values()) else None

    return wait_until("every container healthy", all_healthy, timeout, every=2)


def test_every_container_is_hardened_and_its_log_capped(project, client):
    containers = _inspect(client)
    assert sorted(containers) == sorted(CONTAINERS)
    for name, c in containers.items():
        host = c["HostConfig"]
        assert host["CapDrop"] == ["ALL"] and not host["CapAdd"], name
        assert "no-new-privileges:true" in host["SecurityOpt"], name
        assert host["ReadonlyRootfs"] is True and host["Tmpfs"], name
        assert host["PidsLimit"] and host["PidsLimit"] > 0, name
        assert host["Memory"] > 0, name
        assert host["LogConfig"] == {"Type": "local", "Config": {"max-size": "10m", "max-file": "3"}}, name
        user = c["Config"]["User"]
        assert user and user.split(":")[0] not in ("0", "root"), (name, user)
        for binds in host["PortBindings"].values():
            assert all(b["HostIp"] == "127.0.0.1" for b in binds), name
        top = client.api.top(c["Id"], ps_args="-o pid,uid,comm")  # the engine needs the pid column
        uids = {row[top["Titles"].index("UID")] for row in top["Processes"]}
        assert "0" not in uids and "root" not in uids, (name, top["Processes"])  # docker-init included
    core = [containers[n]["HostConfig"]["Memory"] for n in CONTAINERS if n not in NOT_CORE]
    assert sum(core) <= 1536 << 20  # the memo: core RAM under 1.5 GB


def test_the_hardened_stack_is_healthy_and_validate_with_its_probe_passes(project, client):
    health = _healthy(client)
    assert set(health.values()) == {"healthy"}, health
    out = cdb_json("validate", project=project)
    assert out["result"] == "pass", [c for c in out["checks"] if c["status"] == "fail"]
    probe = next(c for c in out["checks"] if c["name"] == "pipeline probe")
    assert probe["status"] == "pass", probe
    assert {c["status"] for c in out["checks"]} <= {"pass", "warn"}


def test_doctor_reports_every_container_hardened(project):
    r = cdb("doctor", "--json", project=project)
    found = [f for f in json.loads(r.stdout)["findings"] if f["name"].startswith("posture ")]
    assert sorted(f["name"].removeprefix(f"posture {PREFIX}") for f in found) == sorted(CONTAINERS)
    assert all(f["verdict"] == "ok" for f in found), [f for f in found if f["verdict"] != "ok"]
    assert r.returncode == 0, r.stdout[-2000:]


def test_logs_read_the_capped_local_driver(project):
    r = cdb("logs", "postgres", "--tail", "5", project=project)
    assert r.returncode == 0 and "postgres |" in r.stdout, (r.stdout[-1000:], r.stderr[-1000:])


def test_backup_and_restore_work_with_a_read_only_root(project, client):
    """The dump is staged in Postgres's /tmp, a volume: `docker cp` reaches neither a tmpfs nor (to write)
    a read-only root filesystem on this engine."""
    r = cdb("backup", project=project)
    assert r.returncode == 0, r.stderr[-2000:]
    dump = max((project / "backups").glob("*.dump"), key=lambda p: p.stat().st_mtime)
    r = cdb("restore", str(dump), "--yes", project=project)
    assert r.returncode == 0, r.stderr[-2000:]
    code, out = client.containers.get(STACK.container("postgres")).exec_run(["ls", "-A", "/tmp"])
    assert code == 0 and out.decode().split() == [], out  # what was staged was removed, by user 70 too


def test_redis_refuses_writes_at_maxmemory_and_evicts_no_stream(project):
    r = redis.Redis(host="127.0.0.1", port=STACK.redis_port, password=env_values(project)["REDIS_PASSWORD"])
    assert r.config_get("maxmemory")["maxmemory"] == str(128 << 20)
    assert r.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
    stream = "cdbd:test:bounded"
    r.xgroup_create(stream, "g", id="0", mkstream=True)
    first = r.xadd(stream, {"n": "1"})
    used = int(r.info("memory")["used_memory"])
    r.config_set("maxmemory", str(used - 1024))  # full now: what a week of a stuck consumer would do
    try:
        with pytest.raises(redis.exceptions.OutOfMemoryError, match="maxmemory"):  # OOM: XADD refused
            r.xadd(stream, {"n": "2"})
        assert r.xreadgroup("g", "c", {stream: ">"}, count=10)[0][1][0][0] == first  # reading goes on
        assert r.xack(stream, "g", first) == 1
        assert r.xtrim(stream, maxlen=0) == 1  # and trimming frees it
        assert r.xlen(stream) == 0
    finally:
        r.config_set("maxmemory", str(128 << 20))
        r.delete(stream)


def test_a_changed_log_cap_recreates_the_containers_with_it(project, client):
    stack = project / "playbooks" / "stack.yaml"
    original = stack.read_text()
    assert "max_size: 10m" in original
    stack.write_text(original.replace("max_size: 10m", "max_size: 20m", 1))
    plan = cdb_json("plan", project=project)
    pending = {c["name"]: c["reason"] for c in plan["changes"] if c["action"] == "recreate"}
    assert pending == {f"{PREFIX}{n}": "changed: logging" for n in CONTAINERS}
    cdb_json("rebuild", project=project)
    for name, c in _inspect(client).items():
        assert c["HostConfig"]["LogConfig"]["Config"]["max-size"] == "20m", name
