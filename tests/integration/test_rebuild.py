"""`cdb-ops rebuild` against the real engine, real Postgres and real Redis: from nothing, idempotent,
recreating exactly what changed, falling back to local builds, and never touching what is not ours."""

from __future__ import annotations

import contextlib
import functools
import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import docker
import pytest
import redis

from tests.helpers import STACKS, StackFixture, cdb, cdb_json, env_values, pg_connect, wait_until

pytestmark = pytest.mark.integration

STACK = STACKS["rebuild"]
SYSTEM = STACK.system
PG, RD = STACK.container("postgres"), STACK.container("redis")
EXPECTED_PUBLIC_TABLES = [
    "book_states",
    "daily_pnl",
    "journal",
    "market_snapshots",
    "ops_runs",
    "orders",
    "portfolio_snapshots",
    "positions",
    "risk_events",
    "signals",
    "trades",
]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory):
    # not converged: the first test is the rebuild from nothing
    yield from StackFixture(STACK, converge=False).around(tmp_path_factory.mktemp("stack"))


@pytest.fixture(scope="module")
def client() -> docker.DockerClient:
    return docker.from_env()


def _state(client: docker.DockerClient, name: str) -> tuple[str, str, str | None]:
    c = client.api.inspect_container(name)
    return c["Id"], c["State"]["StartedAt"], (c["State"].get("Health") or {}).get("Status")


_pg = functools.partial(pg_connect, port=STACK.pg_port, autocommit=False)


def test_rebuild_from_nothing_brings_up_postgres_with_nine_tables_and_redis(project, client):
    out = cdb_json("rebuild", project=project)
    assert out["schema_version"] == 1 and out["result"] == "ok"
    actions: dict[tuple[str, str], str] = {}
    for s in out["steps"]:  # the first action per resource (the start phase later reports it as ok)
        actions.setdefault((s["resource"], s["name"]), s["action"])
    assert actions[("network", STACK.container("network"))] == "create"
    assert actions[("container", PG)] == "create" and actions[("container", RD)] == "create"
    for name in (PG, RD):
        _, _, health = _state(client, name)
        assert client.containers.get(name).status == "running"
        assert health in ("healthy", "starting")  # our active probe passed; Docker's interval may lag
    with _pg(project) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema='public' ORDER BY 1"
            )
        ]
        assert tables == EXPECTED_PUBLIC_TABLES
        versions = [r[0] for r in conn.execute("SELECT version FROM cdb_ops.schema_migrations ORDER BY 1")]
        assert versions == sorted(int(f.name[:3]) for f in (project / "schema").glob("*.sql"))
    env = env_values(project)
    r = redis.Redis(host="127.0.0.1", port=STACK.redis_port, password=env["REDIS_PASSWORD"])
    assert r.ping()
    assert r.config_get("appendonly")["appendonly"] == "yes"
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host="127.0.0.1", port=STACK.redis_port).ping()
    # ports are published on loopback only
    ports = client.api.inspect_container(PG)["HostConfig"]["PortBindings"]
    assert ports == {"5432/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(STACK.pg_port)}]}


def test_secrets_never_reach_inspect_or_output(project, client):
    env = env_values(project)
    secrets = [env["POSTGRES_PASSWORD"], env["REDIS_PASSWORD"], env["GRAFANA_PASSWORD"]]
    inspected = json.dumps([client.api.inspect_container(n) for n in (PG, RD)])
    outputs = [
        cdb("rebuild", "--progress", "json", "-v", project=project),
        cdb("rebuild", "--json", project=project),
        cdb("plan", "--json", project=project),
        cdb("status", "--json", project=project),
        cdb("status", project=project),
        cdb("validate", "--json", project=project),
        cdb("validate", project=project),
        cdb("doctor", "--json", project=project),
        cdb("logs", "--json", project=project),
        cdb("schema", "status", "--json", project=project),
    ]
    assert all(r.returncode == 0 for r in outputs), [(r.args, r.returncode, r.stderr[-500:]) for r in outputs]
    logs = "".join(client.containers.get(n).logs().decode(errors="replace") for n in (PG, RD))
    state = "".join(p.read_text() for p in (project / ".cdb").glob("*.json"))
    for s in secrets:
        assert s not in inspected
        assert s not in logs and s not in state
        for r in outputs:
            assert s not in r.stdout + r.stderr, r.args
    assert "POSTGRES_PASSWORD_FILE" in inspected


def test_second_rebuild_changes_and_restarts_nothing(project, client):
    before = {n: _state(client, n)[:2] for n in (PG, RD)}
    out = cdb_json("rebuild", project=project)
    assert out["changed"] == 0
    assert {s["action"] for s in out["steps"]} <= {"ok", "wait"}
    assert {n: _state(client, n)[:2] for n in (PG, RD)} == before
    plan = cdb_json("plan", project=project)
    assert plan["pending"] == 0 and plan["conflicts"] == 0


def test_status_shows_the_stack(project):
    out = cdb_json("status", project=project)
    rows = {r["container"]: r for r in out["services"]}
    assert rows[PG]["state"] == "running" and rows[RD]["state"] == "running"
    assert rows[PG]["ports"] == [f"127.0.0.1:{STACK.pg_port}->5432/tcp"]
    assert rows[PG]["memory_bytes"] > 1_000_000
    assert rows[PG]["restarts"] == 0 and rows[PG]["uptime_seconds"] >= 0
    assert out["last_run"]["result"] == "ok" and out["last_run"]["command"] == "rebuild"


def _edit_stack(project: Path, old: str, new: str) -> str:
    stack = project / "playbooks" / "stack.yaml"
    original = stack.read_text()
    assert old in original
    stack.write_text(original.replace(old, new, 1))
    return original


def test_config_change_recreates_exactly_one_container(project, client):
    pg_before = _state(client, PG)[:2]
    rd_before = _state(client, RD)[0]
    original = _edit_stack(
        project,
        f"  redis:\n    container: {RD}\n",
        f"  redis:\n    container: {RD}\n    env:\n      TZ: UTC\n",
    )
    try:
        plan = cdb_json("plan", project=project)
        assert [(c["name"], c["action"], c["reason"]) for c in plan["changes"] if c["action"] != "ok"] == [
            (RD, "recreate", "changed: env")
        ]
        out = cdb_json("rebuild", project=project)
        assert [(s["name"], s["action"]) for s in out["steps"] if s["action"] not in ("ok", "wait")] == [
            (RD, "recreate")
        ]
        assert _state(client, PG)[:2] == pg_before
        assert _state(client, RD)[0] != rd_before
        assert "TZ=UTC" in client.api.inspect_container(RD)["Config"]["Env"]
        assert not [c.name for c in client.containers.list(all=True) if "-replaced-" in c.name]
    finally:
        (project / "playbooks" / "stack.yaml").write_text(original)
    cdb_json("rebuild", project=project)


def test_fallback_build_when_the_image_cannot_be_pulled(project, client):
    # a registry address that refuses at once: the pull fails whatever this machine can reach
    original = _edit_stack(project, "image: redis:7-alpine", "image: 127.0.0.1:9/cdb-test/redis-unpullable:7")
    stack = project / "playbooks" / "stack.yaml"
    stack.write_text(stack.read_text().replace("tag: cdb_ops/redis:7-fallback", "tag: cdb_ops/redis:7-fallback-test"))
    try:
        client.images.remove("cdb_ops/redis:7-fallback-test", force=True) if client.images.list(
            "cdb_ops/redis:7-fallback-test"
        ) else None
        r = cdb("rebuild", "--json", "--progress", "json", project=project)
        assert r.returncode == 0, r.stderr[-3000:]
        out = json.loads(r.stdout)
        build = [s for s in out["steps"] if s["resource"] == "image" and s["action"] == "build"]
        assert [b["name"] for b in build] == ["cdb_ops/redis:7-fallback-test"]
        assert "could not be pulled" in build[0]["detail"]
        notes = [json.loads(line) for line in r.stderr.splitlines() if line.startswith("{")]
        assert any(n["event"] == "note" and "cannot be pulled" in n["text"] and "fallback" in n["text"] for n in notes)
        assert client.api.inspect_container(RD)["Config"]["Image"].startswith("sha256:")
        assert client.containers.get(RD).image.tags == ["cdb_ops/redis:7-fallback-test"]
    finally:
        stack.write_text(original)
    cdb_json("rebuild", project=project)


def test_foreign_container_with_our_name_is_refused_and_nothing_changes(project, client):
    client.containers.get(RD).remove(force=True)
    foreign = client.containers.run("debian:bookworm-slim", ["sleep", "infinity"], name=RD, detach=True)
    pg_before = _state(client, PG)[:2]
    try:
        r = cdb("rebuild", project=project)
        assert r.returncode == 6, r.stderr
        assert f"a container named {RD} exists but is not part of {SYSTEM}" in r.stderr
        assert "nothing was changed" in r.stderr
        assert _state(client, PG)[:2] == pg_before
        assert client.containers.get(RD).id == foreign.id
    finally:
        foreign.remove(force=True)
    assert cdb("rebuild", project=project).returncode == 0


def test_port_held_by_another_process_is_named_and_nothing_changes(project, client):
    client.containers.get(RD).remove(force=True)
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", STACK.redis_port))
        s.listen()
        r = cdb("rebuild", project=project)
        assert r.returncode == 6, r.stderr
        assert f"host port 127.0.0.1:{STACK.redis_port} is held by python" in r.stderr
        with pytest.raises(docker.errors.NotFound):
            client.containers.get(RD)
    assert cdb("rebuild", project=project).returncode == 0
    assert client.containers.get(RD).status == "running"


def test_clean_never_touches_unlabelled_containers_and_keeps_data(project, client):
    with contextlib.suppress(docker.errors.NotFound):  # left by an earlier run that died half-way
        client.containers.get(STACK.container("bystander")).remove(force=True)
    bystander = client.containers.run(
        "debian:bookworm-slim", ["sleep", "infinity"], name=STACK.container("bystander"), detach=True
    )
    with _pg(project) as conn:
        conn.execute(
            "INSERT INTO ops_runs (run_id, command, started_at, result, tool_version) "
            "VALUES (gen_random_uuid(), 'test-marker', now(), 'ok', 'test')"
        )
    old_ids = {n: _state(client, n)[0] for n in (PG, RD)}
    old_all = [c.name for c in client.containers.list(all=True, filters={"label": f"cdb.system={SYSTEM}"})]
    # postgres, redis, four services, the backup service, the notifier, the replay feed, and the default
    # profile `alerting`: Prometheus and Alertmanager
    assert len(old_all) == 11
    try:
        out = cdb_json("rebuild", "--clean", project=project)
        removed = sorted(s["name"] for s in out["steps"] if s["action"] == "remove")
        assert removed == sorted([*old_all, STACK.container("network")])
        bystander.reload()
        assert bystander.status == "running"
        assert all(_state(client, n)[0] != old_ids[n] for n in (PG, RD))
        with _pg(project) as conn:
            assert conn.execute("SELECT count(*) FROM ops_runs WHERE command='test-marker'").fetchone()[0] == 1
    finally:
        bystander.remove(force=True)


def test_interrupted_rebuild_is_finished_by_the_next(project, client):
    cdb_json("rebuild", "--clean", "--phase", "cleanup", project=project)
    assert not client.containers.list(all=True, filters={"label": f"cdb.system={SYSTEM}"})
    proc = subprocess.Popen(
        [sys.executable, "-m", "cdb_ops", "rebuild"],
        env={**_env(project)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_until(
        "the rebuild creating Postgres", lambda: client.containers.list(all=True, filters={"name": PG}), 60, 0.05
    )
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert not client.containers.list(all=True, filters={"name": RD})  # it stopped half-way
    last = json.loads((project / ".cdb" / "last_run.json").read_text())
    assert last["result"] == "interrupted"
    out = cdb_json("rebuild", project=project)
    assert out["result"] == "ok"
    assert client.containers.get(RD).status == "running"
    assert cdb_json("rebuild", project=project)["changed"] == 0


def _env(project: Path) -> dict[str, str]:
    import os

    return {**os.environ, "CDB_PROJECT_DIR": str(project)}


def test_changed_migration_is_refused(project):
    migration = project / "schema" / "004_ops_runs.sql"
    original = migration.read_text()
    migration.write_text(original + "\n-- edited after it was applied\n")
    try:
        r = cdb("schema", "migrate", project=project)
        assert r.returncode == 3
        assert "004_ops_runs was changed after it was applied" in r.stderr
        assert "new, higher-numbered migration" in r.stderr
        status = cdb_json("schema", "status", project=project, expect=3)
        assert {m["version"]: m["state"] for m in status["migrations"]}[4] == "changed"
    finally:
        migration.write_text(original)
    status = cdb_json("schema", "status", project=project)
    assert status["pending"] == 0 and status["public_tables"] == EXPECTED_PUBLIC_TABLES


def test_a_migration_takes_its_turn_instead_of_deadlocking_with_a_service_transaction(project, client):
    """A service's transaction holds positions and then reads orders (the screener's holdings read) while
    a migration alters orders, then positions. Taking the tables one by one, the two would wait for each
    other until Postgres killed one ("deadlock detected"). The migration locks them all at once, steps
    back while the transaction holds one, and goes once it committed: both succeed, no ERROR but the
    migration's own lock timeouts."""
    since = int(time.time())
    extra = project / "schema" / "098_test_lock_turns.sql"
    extra.write_text(
        "ALTER TABLE orders ADD COLUMN IF NOT EXISTS cdbt_turn INT;\n"
        "ALTER TABLE positions ADD COLUMN IF NOT EXISTS cdbt_turn INT;\n"
    )
    service = _pg(project, application_name="cdb_screener")
    try:
        service.execute("SELECT count(*) FROM positions").fetchone()  # holds positions (ACCESS SHARE)
        migrating = subprocess.Popen(
            [sys.executable, "-m", "cdb_ops", "schema", "migrate", "--json"],
            cwd=project,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        with _pg(project, autocommit=True) as watcher:  # the migration has begun trying for its locks
            wait_until(
                "the migration asks for the tables",
                lambda: watcher.execute(
                    "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                    "WHERE c.relname = 'positions' AND l.mode = 'AccessExclusiveLock'"
                ).fetchone()[0],
                timeout=30,
                every=0.02,
            )
        # the service's second read: orders is free or freed within the migration's lock timeout
        service.execute("SELECT count(*) FROM orders").fetchone()
        service.commit()
        out, err = migrating.communicate(timeout=60)
        assert migrating.returncode == 0, out + err
        applied = {m["version"]: m["state"] for m in json.loads(out)["migrations"]}
        assert applied[98] == "applied"
    finally:
        service.close()
        with _pg(project, autocommit=True) as conn:
            conn.execute("ALTER TABLE orders DROP COLUMN IF EXISTS cdbt_turn")
            conn.execute("ALTER TABLE positions DROP COLUMN IF EXISTS cdbt_turn")
            conn.execute("DELETE FROM cdb_ops.schema_migrations WHERE version = 98")
        extra.unlink()
    logs = client.containers.get(PG).logs(since=since).decode()
    assert "deadlock detected" not in logs
    errors = [ln for ln in logs.splitlines() if "ERROR:" in ln and "lock timeout" not in ln]
    assert errors == [], errors


def test_new_migration_is_applied_once(project):
    extra = project / "schema" / "099_test_extra.sql"
    extra.write_text("CREATE TABLE cdbt_extra (id INT);\n")
    try:
        out = cdb_json("schema", "status", project=project)
        assert {m["version"]: m["state"] for m in out["migrations"]}[99] == "pending"
        assert cdb("schema", "migrate", project=project).returncode == 0
        again = cdb_json("schema", "migrate", project=project)
        assert {m["version"]: m["state"] for m in again["migrations"]}[99] == "applied"
    finally:
        with _pg(project) as conn:
            conn.execute("DROP TABLE cdbt_extra")
            conn.execute("DELETE FROM cdb_ops.schema_migrations WHERE version = 99")
        extra.unlink()
