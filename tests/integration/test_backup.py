"""Backups, restore and --wipe-data on the real engine: nothing is deleted without a backup first,
and a backup restored into a wiped stack gives back the same rows."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import docker
import pytest

from tests.helpers import STACKS, StackFixture, cdb, cdb_json, env_values, pg_connect

pytestmark = pytest.mark.integration

STACK = STACKS["backup"]
SYSTEM = STACK.system


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory):
    yield from StackFixture(STACK).around(tmp_path_factory.mktemp("backup"))


_pg = functools.partial(pg_connect, port=STACK.pg_port)


def _markers(project: Path) -> list[str]:
    with _pg(project) as conn:
        return [r[0] for r in conn.execute("SELECT command FROM ops_runs WHERE command LIKE 'marker-%' ORDER BY 1")]


def _add_markers(project: Path, n: int) -> None:
    with _pg(project) as conn:
        for i in range(n):
            conn.execute(
                "INSERT INTO ops_runs (run_id, command, started_at, result, tool_version) "
                "VALUES (gen_random_uuid(), %s, now(), 'ok', 'test')",
                (f"marker-{i}",),
            )


def test_backup_writes_checksummed_dump_and_keeps_retention(project):
    _add_markers(project, 3)
    made = [cdb_json("backup", "--keep", "2", project=project) for _ in range(3)]
    files = sorted(p.name for p in (project / "backups").glob("*.dump"))
    assert len(files) == 2  # the oldest of three went
    assert Path(made[-1]["path"]).name in files
    last = Path(made[-1]["path"])
    assert last.read_bytes()[:5] == b"PGDMP"
    assert (last.parent / (last.name + ".sha256")).read_text().split()[0] == made[-1]["sha256"]
    assert oct(last.stat().st_mode & 0o777) == "0o600"
    assert "pg_restore --list reads" in made[-1]["verified"]
    assert oct(last.parent.stat().st_mode & 0o777) == "0o700"


def test_wipe_data_without_yes_changes_nothing(project):
    client = docker.from_env()
    before = sorted(v.name for v in client.volumes.list(filters={"label": f"cdb.system={SYSTEM}"}))
    r = cdb("rebuild", "--wipe-data", "--json", project=project)
    assert r.returncode == 7
    err = json.loads(r.stdout)["error"]
    assert err["kind"] == "needs_confirmation"
    assert sorted(err["details"]["would_delete_volumes"]) == before
    assert sorted(v.name for v in client.volumes.list(filters={"label": f"cdb.system={SYSTEM}"})) == before
    assert _markers(project) == ["marker-0", "marker-1", "marker-2"]


def test_failed_backup_wipes_nothing(project):
    client = docker.from_env()
    pg = client.containers.get(STACK.container("postgres"))
    # make pg_dump fail: a database name the server does not know (the container still runs)
    env_file = project / ".env"
    original = env_file.read_text()
    env = env_values(project)
    env_file.write_text(original.replace(f"POSTGRES_DB={env['POSTGRES_DB']}", "POSTGRES_DB=no_such_database"))
    try:
        r = cdb("rebuild", "--wipe-data", "--yes", "--json", project=project)
    finally:
        env_file.write_text(original)
    assert r.returncode == 1, r.stderr
    out = json.loads(r.stdout)
    assert "nothing was wiped" in out["error"]["message"]
    assert not [s for s in out["steps"] if s["action"] == "remove"]
    pg.reload()
    assert pg.status == "running"
    assert _markers(project) == ["marker-0", "marker-1", "marker-2"]


def test_wipe_then_restore_gives_back_the_same_rows(project):
    with _pg(project) as conn:
        before = conn.execute(
            "SELECT run_id, command FROM ops_runs WHERE command LIKE 'marker-%' ORDER BY 2"
        ).fetchall()
        tables_before = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema='public'"
        ).fetchone()
    out = cdb_json("rebuild", "--wipe-data", "--yes", project=project)
    backups = [s for s in out["steps"] if s["action"] == "backup"]
    kinds = sorted(s["detail"].split(" of ")[0] for s in backups)
    assert kinds[0] == "archive" and "pg_dump" in kinds
    assert all("verified" in s["detail"] for s in backups)
    removed = sorted(s["name"] for s in out["steps"] if s["resource"] == "volume" and s["action"] == "remove")
    # the data volumes (backed up first), Postgres' scratch volume for /tmp (nothing in it to keep), and the
    # default profile alerting's: Prometheus' series and Alertmanager's silences
    assert removed == [
        STACK.container(v)
        for v in ("alertmanager_data", "postgres_data", "postgres_tmp", "prometheus_data", "redis_data", "risk_logs")
    ]
    scratch = STACK.container("postgres_tmp")
    assert {s["detail"] for s in out["steps"] if s["name"] == scratch and s["action"] == "remove"} == {
        "--wipe-data (scratch: nothing to keep)"
    }
    assert _markers(project) == []  # a fresh database
    dump = next(Path(project / "backups" / s["name"]) for s in backups if "pg_dump" in s["detail"])
    for s in backups:  # every backup is complete and checksummed
        f = project / "backups" / s["name"]
        assert f.stat().st_size > 0 and (f.parent / (f.name + ".sha256")).exists()

    restored = cdb_json("restore", str(dump), "--yes", project=project)
    assert restored["rows"]["ops_runs"] >= 3
    assert {"screener", "signal", "risk", "execution"} <= set(restored["services_paused"])
    with _pg(project) as conn:
        after = conn.execute("SELECT run_id, command FROM ops_runs WHERE command LIKE 'marker-%' ORDER BY 2").fetchall()
        tables = conn.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema='public'").fetchone()
    assert after == before
    assert tables == tables_before and tables[0] >= 9  # the nine of the spec, and book_states
    assert cdb_json("rebuild", project=project)["result"] == "ok"


def test_tampered_backup_is_refused(project):
    made = cdb_json("backup", project=project)
    dump = Path(made["path"])
    data = bytearray(dump.read_bytes())
    data[-1] ^= 0xFF
    dump.write_bytes(bytes(data))
    r = cdb("restore", str(dump), "--yes", project=project)
    assert r.returncode == 3
    assert "checksum mismatch" in r.stderr
