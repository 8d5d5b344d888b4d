"""How a container's last run ended, read from `docker inspect` the way Docker 20.10 reports it (State of an
OOM-killed container in a restart loop, captured on the real engine) and shown by `status`: OOMKilled, the
exit code, the memory limit and the restarts — in the table's note and in `status --json` (its schema)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from cdb_ops.engine.cgroups import oom_kills
from cdb_ops.engine.mapping import inspect_facts
from cdb_ops.model.facts import LastExit
from cdb_ops.views.status import _row
from tests.unit.test_json_schemas import problems

LIMIT = 12 * 1024 * 1024
# `docker inspect` of a container run with -m 12m --restart unless-stopped whose process outgrew it: while
# Docker waits to restart it (state restarting) it keeps the exit; once it runs again ExitCode is 0 but
# OOMKilled stays true (Docker 20.10.24, cgroup v1 — observed, see docs/troubleshooting.md)
RESTARTING: dict[str, Any] = {
    "Id": "f" * 64,
    "Name": "/cdbo_market_replay",
    "Image": "sha256:" + "a" * 64,
    "RestartCount": 3,
    "State": {
        "Status": "restarting",
        "Running": False,
        "Restarting": True,
        "OOMKilled": True,
        "Dead": False,
        "Pid": 0,
        "ExitCode": 137,
        "Error": "",
        "StartedAt": "2026-12-07T08:55:32.06391208Z",
        "FinishedAt": "2026-12-07T08:55:35.600973019Z",
    },
    "Config": {"Image": "cdbo_market_replay:latest", "Labels": {}},
    "HostConfig": {"Memory": LIMIT, "PortBindings": {}},
    "NetworkSettings": {"Networks": {}},
    "Mounts": [],
}


def _running_again() -> dict[str, Any]:
    doc = copy.deepcopy(RESTARTING)
    doc["State"].update(Status="running", Running=True, Restarting=False, ExitCode=0, Pid=42)
    return doc


def test_inspect_keeps_the_oom_kill_the_limit_and_the_restarts() -> None:
    c = inspect_facts(RESTARTING)
    assert (c.oom_killed, c.exit_code, c.memory_limit, c.restart_count) == (True, 137, LIMIT, 3)
    assert c.finished_at == datetime(2026, 12, 7, 8, 55, 35, 600973, tzinfo=UTC)
    gone = c.last_exit
    assert gone is not None and gone.killed
    assert gone.describe() == "OOMKilled (exit code 137, memory limit 12 MiB), restarted 3×"


def test_running_again_the_oom_flag_still_names_the_cause() -> None:
    gone = inspect_facts(_running_again()).last_exit
    assert gone is not None and gone.exit_code == 137  # Docker zeroed ExitCode; an OOM kill is a SIGKILL
    assert gone.describe() == "OOMKilled (exit code 137, memory limit 12 MiB), restarted 3×"


def test_other_exits_are_told_apart() -> None:
    never = _running_again()
    never["State"]["OOMKilled"], never["RestartCount"] = False, 0
    assert inspect_facts(never).last_exit is None  # running, never ended: nothing to say
    crashed = copy.deepcopy(RESTARTING)
    crashed["State"].update(OOMKilled=False, ExitCode=1, Status="exited")
    assert inspect_facts(crashed).last_exit.describe() == "exited with code 1, restarted 3×"  # type: ignore[union-attr]
    killed = copy.deepcopy(RESTARTING)
    killed["State"]["OOMKilled"] = False  # exit 137 the engine did not flag (e.g. some cgroup v2 setups)
    text = LastExit(False, 137, LIMIT, 0, None).describe()
    assert inspect_facts(killed).last_exit.killed and text.startswith("killed by SIGKILL")  # type: ignore[union-attr]
    restarted = _running_again()
    restarted["State"]["OOMKilled"] = False
    assert "not OOM-killed" in inspect_facts(restarted).last_exit.describe()  # type: ignore[union-attr]


def test_status_rows_show_it_and_match_the_schema() -> None:
    now = datetime.now(UTC)
    rows = [
        _row("market_replay", "cdbo_market_replay", inspect_facts(doc), None, now, "feed", "optional")
        for doc in (RESTARTING, _running_again())
    ]
    rows.append(_row("x", "cdbo_x", None, None, now, "feed", "optional"))
    assert rows[0].exit_note == "OOMKilled · exit 137 · limit 12 MiB"
    assert rows[1].exit_note == "OOMKilled · exit 137 · limit 12 MiB"
    assert rows[1].oom_kills is None  # no such cgroup here: unread, not 0
    assert rows[2].exit_note == "" and rows[2].last_exit is None
    from cdb_ops.report.document import status_payload

    trading = {"books": None, "problem": "Postgres at 127.0.0.1:5432 did not answer: connection refused"}
    doc = {"schema_version": 1, "command": "status", **status_payload(rows, None, trading=trading)}
    assert problems("status", doc) == []
    assert doc["services"][0]["last_exit"]["oom_killed"] is True
    assert doc["services"][0]["memory_limit_bytes"] == LIMIT


def test_the_cgroup_counter_is_read_where_docker_keeps_it(tmp_path, monkeypatch) -> None:
    """A worker process killed while the main one lives: only the cgroup's oom_kill counter knows."""
    import cdb_ops.engine.cgroups as cgroups

    monkeypatch.setattr(cgroups, "_CGROUP", tmp_path)
    v1 = tmp_path / "memory" / "docker" / "abc"
    v1.mkdir(parents=True)
    (v1 / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    assert oom_kills("abc") == 2
    v2 = tmp_path / "system.slice" / "docker-def.scope"
    v2.mkdir(parents=True)
    (v2 / "memory.events").write_text("low 0\nhigh 0\nmax 5\noom 1\noom_kill 1\n")
    assert oom_kills("def") == 1
    assert oom_kills("nope") is None
