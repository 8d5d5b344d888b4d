"""Secret rotation on the real engine: a second clone of the project, whose .env differs from the one that
initialised the data volume, converges onto the same data (the password is set in place, no row lost, no
secret in output, `docker inspect` or the database's log); a renamed role stops the run naming the cause
and leaves the stack as it was; every backup is verified, archives only from a stopped stack."""

from __future__ import annotations

import functools
import json
import re
import subprocess
from pathlib import Path

import docker
import psycopg
import pytest

from tests.helpers import STACKS, StackFixture, cdb, cdb_json, env_values, make_project, pg_connect

pytestmark = pytest.mark.integration

STACK = STACKS["rotation"]
SYSTEM, PREFIX = STACK.system, STACK.prefix

_pg = functools.partial(pg_connect, port=STACK.pg_port)


def _markers(project: Path) -> list[str]:
    with _pg(project) as conn:
        return [r[0] for r in conn.execute("SELECT command FROM ops_runs WHERE command LIKE 'marker-%' ORDER BY 1")]


@pytest.fixture(scope="module")
def first(tmp_path_factory: pytest.TempPathFactory):
    fixture = StackFixture(STACK)
    root = fixture.up(tmp_path_factory.mktemp("rot1"))
    try:
        with _pg(root) as conn:
            for i in range(3):
                conn.execute(
                    "INSERT INTO ops_runs (run_id, command, started_at, result, tool_version) "
                    "VALUES (gen_random_uuid(), %s, now(), 'ok', 'test')",
                    (f"marker-{i}",),
                )
        yield root
    finally:
        fixture.down()


@pytest.fixture(scope="module")
def clone(first: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another checkout of the same project: its own `init`, so its own secrets."""
    return make_project(tmp_path_factory.mktemp("rot2"), STACK.system, STACK.prefix, STACK.offset)


def test_a_second_clone_with_other_secrets_converges_onto_the_same_data(first, clone):
    old, new = env_values(first), env_values(clone)
    assert old["POSTGRES_PASSWORD"] != new["POSTGRES_PASSWORD"]
    plan = cdb_json("plan", project=clone)
    rotations = [c for c in plan["changes"] if c["action"] == "rotate"]
    assert len(rotations) == 1
    assert rotations[0]["resource"] == "secret" and rotations[0]["name"] == "POSTGRES_PASSWORD"
    assert "initialised with" in rotations[0]["reason"] and "POSTGRES_PASSWORD changed" in rotations[0]["reason"]

    r = cdb("rebuild", "--json", project=clone)
    assert r.returncode == 0, r.stdout[-3000:]
    secrets = [old[k] for k in ("POSTGRES_PASSWORD", "REDIS_PASSWORD")] + [
        new[k] for k in ("POSTGRES_PASSWORD", "REDIS_PASSWORD")
    ]
    assert not any(s in r.stdout or s in r.stderr for s in secrets)
    assert '"action": "rotate"' in r.stdout
    logs = docker.from_env().containers.get(f"{PREFIX}postgres").logs().decode()
    assert "password authentication failed" not in logs  # nobody kept trying the old one
    assert _markers(clone) == ["marker-0", "marker-1", "marker-2"]  # no row lost
    with pytest.raises(psycopg.OperationalError):
        _pg(first).close()  # the old password is gone
    inspect = subprocess.run(
        ["docker", "inspect", f"{PREFIX}postgres", f"{PREFIX}redis", f"{PREFIX}signal"],
        capture_output=True,
        text=True,
        check=True,
    )
    logs = docker.from_env().containers.get(f"{PREFIX}postgres").logs().decode()
    assert not any(s in inspect.stdout or s in logs for s in secrets)
    # converged: the next plan rotates nothing and changes nothing
    again = cdb_json("plan", project=clone)
    assert again["pending"] == 0, [c for c in again["changes"] if c["action"] != "ok"]


def test_a_renamed_role_stops_the_run_and_leaves_the_stack_as_it_was(clone):
    client = docker.from_env()
    before = client.containers.get(f"{PREFIX}postgres").id
    env = clone / ".env"
    original = env.read_text()
    env.write_text(re.sub(r"^POSTGRES_USER=.*$", "POSTGRES_USER=somebody_else", original, flags=re.M))
    try:
        r = cdb("rebuild", "--json", project=clone)
    finally:
        env.write_text(original)
    assert r.returncode == 3, r.stdout[-3000:]
    err = json.loads(r.stdout)["error"]
    assert 'role "somebody_else" does not exist' in err["message"] and ".env:" in err["message"]
    assert "POSTGRES_USER" in err["remedy"]
    pg = client.containers.get(f"{PREFIX}postgres")
    assert pg.id == before and pg.status == "running"  # the old container is back
    assert not [c.name for c in client.containers.list(all=True) if "-replaced-" in c.name and PREFIX in c.name]
    assert _markers(clone) == ["marker-0", "marker-1", "marker-2"]
    assert cdb_json("rebuild", project=clone)["result"] == "ok"


def test_backups_are_verified_and_archives_come_from_a_stopped_stack(clone):
    made = cdb_json("backup", project=clone)
    assert made["verified"].startswith("verified: sha256 matches") and "pg_restore --list reads" in made["verified"]
    out = cdb_json("rebuild", "--wipe-data", "--yes", project=clone)
    backups = {s["name"]: s["detail"] for s in out["steps"] if s["action"] == "backup"}
    # the dump and every data volume of the default stack: Postgres', Redis', the risk audit's, and the
    # alerting profile's Prometheus and Alertmanager volumes (Postgres' /tmp scratch volume holds nothing)
    volumes = ("postgres_data", "redis_data", "risk_logs", "prometheus_data", "alertmanager_data")
    archived = {v for v in volumes for n in backups if n.startswith(f"{SYSTEM}_{PREFIX}{v}")}
    assert archived == set(volumes) and len(backups) == 1 + len(volumes), sorted(backups)
    assert all("verified" in d for d in backups.values()), backups
    pg_archive = next(d for n, d in backups.items() if n.startswith(f"{SYSTEM}_{PREFIX}postgres_data"))
    assert "lists PG_VERSION, global/pg_control" in pg_archive
    redis_archive = next(d for n, d in backups.items() if n.startswith(f"{SYSTEM}_{PREFIX}redis_data"))
    assert "lists appendonly" in redis_archive
    dump = next(clone / "backups" / n for n, d in backups.items() if d.startswith("pg_dump of"))
    assert _markers(clone) == []
    cdb_json("restore", str(dump), "--yes", project=clone)
    assert _markers(clone) == ["marker-0", "marker-1", "marker-2"]
