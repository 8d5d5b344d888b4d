"""The stack's life as its user lives it, on the real engine: the first run on a machine that cannot
reach the exchange, `down` and back, a changed password applied in place, wiping and restoring data
while the replay trades, and probe rows that age out."""

from __future__ import annotations

import functools
import json
import re
import subprocess
import time
from pathlib import Path

import docker
import psycopg
import pytest

from cdb_ops.apply.lock import run_lock
from cdb_ops.cli.down_plain import quick_down
from tests.helpers import STACKS, StackFixture, cdb, cdb_json, env_values, pg_connect, wait_until

pytestmark = pytest.mark.e2e

STACK = STACKS["lifecycle"]
SYSTEM, PREFIX = STACK.system, STACK.prefix


def _set_env(project: Path, **values: str) -> None:
    path = project / ".env"
    text = path.read_text()
    for key, value in values.items():
        if re.search(rf"^{key}=.*$", text, flags=re.M):
            text = re.sub(rf"^{key}=.*$", f"{key}={value}", text, flags=re.M)
        else:
            text += f"\n{key}={value}\n"
    path.write_text(text)


_pg = functools.partial(pg_connect, port=STACK.pg_port)


def _ensure_env(project: Path) -> None:
    """Each test can run alone: the first one writes .env as a newcomer would; the others make sure."""
    if not (project / ".env").exists():
        assert cdb("init", "--if-missing", project=project).returncode == 0


def _ids(project: Path) -> dict[str, set[str]]:
    with _pg(project) as conn:
        return {
            "signals": {str(r[0]) for r in conn.execute("SELECT signal_id FROM signals")},
            "orders": {str(r[0]) for r in conn.execute("SELECT order_id FROM orders")},
            "trades": {str(r[0]) for r in conn.execute("SELECT trade_id FROM trades")},
            "ops_runs": {str(r[0]) for r in conn.execute("SELECT run_id FROM ops_runs")},
        }


def _engine_events(since: float, label: str) -> dict[tuple[str, str], int]:
    """(container, action) -> when the engine reported it (ns), for the containers with `label` since then."""
    events = docker.from_env().api.events(
        since=since, until=time.time() + 1, filters={"type": "container", "label": label}, decode=True
    )
    return {(e["Actor"]["Attributes"]["name"], e["Action"]): e["timeNano"] for e in events}


def _ours(kind: str) -> list[str]:
    client = docker.from_env()
    listing = {"containers": client.containers.list, "networks": client.networks.list, "volumes": client.volumes.list}
    kwargs = {"all": True} if kind == "containers" else {}
    return sorted(x.name for x in listing[kind](filters={"label": f"cdb.system={SYSTEM}"}, **kwargs))


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory):
    # no .env yet: the first test runs the README's first command (`init --if-missing`) itself; the test
    # project's live feed points at a name that cannot resolve (helpers.NO_EXCHANGE)
    yield from StackFixture(STACK, init=False, converge=False).around(tmp_path_factory.mktemp("life"))


def test_first_run_without_an_exchange_chooses_replay_once_and_converges(project):
    started = time.monotonic()
    r = cdb("init", "--if-missing", project=project)
    assert r.returncode == 0, r.stderr
    assert time.monotonic() - started < 20  # bounded: the check gives up within seconds
    env_text = (project / ".env").read_text()
    assert re.search(r"^CDB_FEED=replay$", env_text, flags=re.M)
    comment = env_text.split("CDB_FEED=replay")[0].rsplit("\n", 3)
    assert "dns" in "\n".join(comment).lower()  # the comment says why: the name did not resolve
    assert "CDB_FEED=replay" in r.stderr + r.stdout or "replay" in r.stderr
    out = cdb_json("rebuild", project=project)  # no --feed: the setting decides
    assert out["result"] == "ok" and out["feed"] == "replay"
    assert re.search(r"^CDB_FEED=replay$", (project / ".env").read_text(), flags=re.M)  # never switched


def test_live_feed_without_an_exchange_stops_in_preflight_within_seconds(project):
    _ensure_env(project)
    before = {c: docker.from_env().containers.get(c).attrs["Id"] for c in _ours("containers")}
    started = time.monotonic()
    r = cdb("rebuild", "--feed", "live", "--json", project=project)
    took = time.monotonic() - started
    assert r.returncode == 6, r.stdout[-2000:]
    err = json.loads(r.stdout)["error"]
    assert took < 10
    assert "dns" in err["message"].lower() and "cdb-exchange.invalid" in err["message"]
    assert "replay" in err["remedy"]
    after = {c: docker.from_env().containers.get(c).attrs["Id"] for c in _ours("containers")}
    assert after == before  # preflight changed nothing


def test_down_keeps_volumes_and_rebuild_brings_back_the_same_data(project):
    _ensure_env(project)
    before = _ids(project)
    volumes = _ours("volumes")
    since = time.time() - 1
    out = cdb_json("down", project=project)
    assert out["result"] == "ok"
    # graceful: every service, Redis and Postgres honoured SIGTERM (exit 0), none was killed after 10 s
    how = {s["name"]: s["detail"] for s in out["steps"] if s["action"] == "remove" and s["resource"] == "container"}
    assert all(d.endswith("stopped cleanly (exit 0)") for d in how.values()), how
    # reverse dependency order, as the engine saw it: every service's process had exited before Redis and
    # Postgres were sent their SIGTERM
    when = _engine_events(since, f"cdb.system={SYSTEM}")
    for service in ("screener_ws", "signal", "risk", "execution"):
        for store in ("redis", "postgres"):
            assert when[(f"{PREFIX}{service}", "die")] < when[(f"{PREFIX}{store}", "kill")], (service, store)
    assert _ours("containers") == [] and _ours("networks") == []
    assert _ours("volumes") == volumes
    assert cdb_json("down", project=project)["changed"] == 0  # idempotent
    assert cdb_json("rebuild", project=project)["result"] == "ok"
    after = _ids(project)
    for table, ids in before.items():
        assert ids <= after[table], table


def test_the_quick_down_does_what_the_full_down_does(project, capsys: pytest.CaptureFixture[str]):
    """`down` without the playbook models or docker-py (cli/down_plain.py, taken once a full `down` cached
    the stack's outline) stops in the same order, removes the same, remembers the same and records the
    same; what it cannot do the same way it hands to the full command."""
    _ensure_env(project)
    cdb_json("rebuild", project=project)
    full = cdb_json("down", project=project)  # caches the outline (the quick path may take it already)
    known = (project / ".cdb" / "volume-passwords.json").read_text()
    volumes = _ours("volumes")
    cdb_json("rebuild", project=project)
    since = time.time() - 1
    capsys.readouterr()
    assert quick_down(["--json", "--project-dir", str(project)]) == 0  # (None: it handed over)
    out = json.loads(capsys.readouterr().out)
    assert out["result"] == "ok" and out["exit_code"] == 0 and out["changed"] == full["changed"] > 1

    def steps(doc: dict) -> list[tuple[str, str, str, str]]:  # type: ignore[type-arg]
        return sorted((s["resource"], s["name"], s["action"], s["detail"]) for s in doc["steps"])

    assert steps(out) == steps(full)
    assert all(d.endswith("stopped cleanly (exit 0)") for r, _, _, d in steps(out) if r == "container")
    when = _engine_events(since, f"cdb.system={SYSTEM}")
    for service in ("screener_ws", "signal", "risk", "execution"):
        for store in ("redis", "postgres"):
            assert when[(f"{PREFIX}{service}", "die")] < when[(f"{PREFIX}{store}", "kill")], (service, store)
    assert when[(f"{PREFIX}screener_ws", "die")] < when[(f"{PREFIX}market_replay", "kill")]
    assert _ours("containers") == [] and _ours("networks") == [] and _ours("volumes") == volumes
    assert json.loads((project / ".cdb" / "last_run.json").read_text()) == out
    assert (project / ".cdb" / "volume-passwords.json").read_text() == known  # the next start skips the reset
    again = cdb_json("down", project=project)  # nothing left: one "ok" step, as the full command says
    assert again["changed"] == 0 and [s["action"] for s in again["steps"]] == ["ok"]
    # an input changed since the outline was cached: the full command runs
    env = project / ".env"
    env.write_text(env.read_text() + "\n# edited\n")
    assert quick_down(["--project-dir", str(project)]) is None
    assert cdb_json("rebuild", project=project)["result"] == "ok"  # caches `down`'s outline anew
    # another run holds the lock: the full command reports it
    with run_lock(project / ".cdb", "a test holding the lock"):
        assert quick_down(["--project-dir", str(project)]) is None
        r = cdb("down", project=project)
        assert r.returncode != 0 and "another run holds the lock" in r.stderr
    # right after a rebuild, without a full `down` in between: quick, and printed as the full command prints
    capsys.readouterr()
    assert quick_down(["--project-dir", str(project)]) == 0
    printed = capsys.readouterr()
    assert "▶ down (cleanup)" in printed.err and "remove   container" in printed.err
    assert "down: down" in printed.out and "✓ down ok in" in printed.out
    assert _ours("containers") == [] and _ours("networks") == []
    assert cdb_json("rebuild", project=project)["result"] == "ok"


def test_down_volumes_needs_confirmation_then_backs_up_first(project):
    _ensure_env(project)
    cdb_json("rebuild", project=project)
    volumes = _ours("volumes")
    r = cdb("down", "--volumes", "--json", project=project)
    assert r.returncode == 7
    err = json.loads(r.stdout)["error"]
    assert sorted(err["details"]["would_delete_volumes"]) == volumes
    assert _ours("volumes") == volumes and len(_ours("containers")) >= 6  # nothing happened
    out = cdb_json("down", "--volumes", "--yes", project=project)
    backups = [s for s in out["steps"] if s["action"] == "backup"]
    assert backups and all("verified" in s["detail"] for s in backups)
    assert _ours("volumes") == [] and _ours("containers") == []
    for s in backups:
        assert (project / "backups" / s["name"]).stat().st_size > 0
    assert cdb_json("rebuild", project=project)["result"] == "ok"


def test_a_changed_password_is_applied_in_place_without_losing_a_row(project):
    _ensure_env(project)
    cdb_json("rebuild", project=project)
    old = env_values(project)
    before = _ids(project)
    _set_env(
        project,
        POSTGRES_PASSWORD="Rotated-" + old["POSTGRES_PASSWORD"][::-1][:20],
        REDIS_PASSWORD="r0t" + old["REDIS_PASSWORD"][:20],
    )
    new = env_values(project)
    plan = cdb_json("plan", project=project)
    rotation = [c for c in plan["changes"] if c["action"] == "rotate"]
    assert rotation and "password" in rotation[0]["reason"] and "initialised" in rotation[0]["reason"]
    r = cdb("rebuild", "--json", project=project)
    assert r.returncode == 0, r.stdout[-3000:]
    for secret in (old["POSTGRES_PASSWORD"], new["POSTGRES_PASSWORD"], old["REDIS_PASSWORD"], new["REDIS_PASSWORD"]):
        assert secret not in r.stdout and secret not in r.stderr
    after = _ids(project)
    for table, ids in before.items():
        assert ids <= after[table], table
    with pytest.raises(psycopg.OperationalError):
        _pg(project, password=old["POSTGRES_PASSWORD"]).close()
    inspect = subprocess.run(
        ["docker", "inspect", f"{PREFIX}postgres", f"{PREFIX}redis"], capture_output=True, text=True
    )
    assert new["POSTGRES_PASSWORD"] not in inspect.stdout and new["REDIS_PASSWORD"] not in inspect.stdout
    # init --rotate: fresh secrets, and the next rebuild applies them the same way
    assert cdb("init", "--rotate", project=project).returncode == 0
    assert env_values(project)["POSTGRES_PASSWORD"] != new["POSTGRES_PASSWORD"]
    assert cdb_json("rebuild", project=project)["result"] == "ok"
    assert _ids(project)["trades"] >= before["trades"]


def test_a_renamed_role_is_named_as_the_cause(project):
    _ensure_env(project)
    cdb_json("rebuild", project=project)
    original = (project / ".env").read_text()
    _set_env(project, POSTGRES_USER="somebody_else")
    try:
        r = cdb("rebuild", "--json", project=project)
    finally:
        (project / ".env").write_text(original)
    assert r.returncode != 0
    err = json.loads(r.stdout)["error"]
    assert "somebody_else" in err["message"] and "role" in err["message"]
    assert "POSTGRES_USER" in err["remedy"]
    assert cdb_json("rebuild", project=project)["result"] == "ok"


def test_wipe_and_restore_three_times_while_the_replay_trades(project):
    _ensure_env(project)
    _set_env(project, REPLAY_LOOP="1", REPLAY_SPEED="20")
    assert cdb_json("rebuild", project=project)["result"] == "ok"
    for round_ in range(3):
        wait_until(f"round {round_}: a signal from the looping replay", lambda: _ids(project)["signals"], 120, 2)
        seen = _ids(project)
        assert seen["signals"], f"round {round_}: the looping replay produced no signal"
        out = cdb_json("rebuild", "--wipe-data", "--yes", project=project)
        backups = [s for s in out["steps"] if s["action"] == "backup"]
        assert all("verified" in s["detail"] for s in backups), backups
        dump = next(project / "backups" / s["name"] for s in backups if "pg_dump" in s["detail"])
        out = cdb_json("restore", str(dump), "--yes", project=project)
        # the services that use Postgres were off it while pg_restore replaced the tables, and are back
        assert out["services_paused"] == ["screener", "signal", "risk", "execution", "backup", "notifier"]
        assert all(r["state"] == "running" for r in cdb_json("status", project=project)["services"])
        restored = _ids(project)
        for table, ids in seen.items():
            assert ids <= restored[table], f"round {round_}: rows of {table} lost"
    # no lock cycle with a service during the restores: Postgres logged no ERROR line (validate reads them)
    logs = next(c for c in cdb_json("validate", project=project, expect=None)["checks"] if c["name"] == "logs postgres")
    assert logs["status"] == "pass", logs
    _set_env(project, REPLAY_LOOP="0", REPLAY_SPEED="0")


def test_probe_rows_age_out_after_the_retention(project):
    _ensure_env(project)
    assert cdb_json("rebuild", project=project)["result"] == "ok"
    with _pg(project) as conn:
        # age every probe row of earlier runs by two days
        for table, column, probe in (
            ("signals", "created_at", "is_probe"),
            ("risk_events", "created_at", "is_probe"),
            ("orders", "created_at", "is_probe"),
            ("trades", "executed_at", "is_probe"),
            ("market_snapshots", "inserted_at", "is_probe"),
            ("positions", "updated_at", "portfolio = 'probe'"),
            ("portfolio_snapshots", "taken_at", "portfolio = 'probe'"),
            ("daily_pnl", "updated_at", "portfolio = 'probe'"),
        ):
            conn.execute(f"UPDATE {table} SET {column} = {column} - interval '2 days' WHERE {probe}")
        old = conn.execute("SELECT count(*) FROM signals WHERE is_probe").fetchone()[0]
    assert old >= 1
    out = cdb_json("validate", project=project)
    assert out["result"] == "pass"
    probe = next(c for c in out["checks"] if c["name"] == "pipeline probe")
    assert probe["facts"]["pruned"]["signals"] >= 1 and probe["facts"]["retention_hours"] == 24
    with _pg(project) as conn:
        left = conn.execute("SELECT count(*) FROM signals WHERE is_probe").fetchone()[0]
        fresh = conn.execute(
            "SELECT count(*) FROM signals WHERE is_probe AND created_at > now() - interval '1 hour'"
        ).fetchone()[0]
    assert left == fresh == 1  # the aged rows went, the probe just sent stays
