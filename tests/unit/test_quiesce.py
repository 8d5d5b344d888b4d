"""A restore takes the stack's database clients off Postgres: every running service that depends on it
(directly or through another) is stopped dependents-first and started again dependencies-first, each
waited for until ready — also when the restore in between fails."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from cdb_ops.apply.quiesce import clients_of, clients_stopped
from cdb_ops.errors import StepFailed
from cdb_ops.load.desired import DesiredStack, resolve
from cdb_ops.load.playbook import load_runbook, start_order
from cdb_ops.load.project import Project
from cdb_ops.load.settings import Settings, load_settings
from cdb_ops.redact import Redactor
from tests.unit.conftest import ENV
from tests.unit.fake_engine import FakeEngine

STACK = """\
version: 1
system: testsys
network: {name: t_net}
services:
  db:
    container: t_db
    role: database
    priority: critical
    image: postgres:15-alpine
    ready: {probe: docker}
  app:
    container: t_app
    role: signal
    priority: high
    image: t_app:1
    depends_on: {db: healthy}
    ready: {probe: docker}
  worker:
    container: t_worker
    role: execution
    priority: high
    image: t_worker:1
    depends_on: {app: started}
    ready: {probe: docker}
  side:
    container: t_side
    role: monitoring
    priority: optional
    image: t_side:1
    ready: {probe: docker}
"""
RUNBOOK = "version: 1\nname: rebuild\nphases:\n  - {name: start, kind: services}\n"


def _stack(tmp_path: Path) -> tuple[DesiredStack, Settings]:
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "playbooks" / "stack.yaml").write_text(STACK)
    (tmp_path / "playbooks" / "rebuild.yaml").write_text(RUNBOOK)
    (tmp_path / ".env").write_text(ENV)
    project = Project(tmp_path)
    _, stack = load_runbook(project.playbook("rebuild"))
    settings = load_settings(project.env_file)
    return resolve(stack, settings, project), settings


def _running(engine: FakeEngine, *names: str) -> None:
    for n in names:
        engine.add_container(n)


def test_the_clients_are_the_services_that_depend_on_the_database_also_through_another(tmp_path):
    desired, _ = _stack(tmp_path)
    assert clients_of(desired, "db") == ["app", "worker"]
    assert clients_of(desired, "app") == ["worker"]
    assert clients_of(desired, "side") == []


def test_the_clients_stop_and_start_in_the_playbooks_dependency_tiers(tmp_path):
    desired, _ = _stack(tmp_path)
    assert start_order(desired.stack, ["worker", "side", "app"]) == [["app", "side"], ["worker"]]
    assert start_order(desired.stack, ["worker"]) == [["worker"]]  # what is not stopped orders nothing
    assert start_order(desired.stack, []) == []


def test_dependents_stop_first_and_start_last_and_the_rest_is_left_alone(tmp_path):
    desired, settings = _stack(tmp_path)
    engine = FakeEngine()
    _running(engine, "t_db", "t_app", "t_worker", "t_side")
    with clients_stopped(engine, desired, settings, Redactor(), "db") as paused:
        assert paused == ["app", "worker"]
        assert engine.calls == [("stop", "t_worker"), ("stop", "t_app")]
        assert {n: engine.containers_[n].state for n in engine.containers_} == {
            "t_db": "running",
            "t_app": "exited",
            "t_worker": "exited",
            "t_side": "running",
        }
    assert engine.calls[2:] == [("start", "t_app"), ("start", "t_worker")]
    assert all(c.state == "running" for c in engine.containers_.values())


def test_a_client_that_was_not_running_stays_stopped(tmp_path):
    desired, settings = _stack(tmp_path)
    engine = FakeEngine()
    _running(engine, "t_db", "t_app")
    engine.add_container("t_worker", state="exited")
    with clients_stopped(engine, desired, settings, Redactor(), "db") as paused:
        assert paused == ["app"]
    assert engine.calls == [("stop", "t_app"), ("start", "t_app")]
    assert engine.containers_["t_worker"].state == "exited"


def test_the_clients_start_again_when_the_restore_fails(tmp_path):
    desired, settings = _stack(tmp_path)
    engine = FakeEngine()
    _running(engine, "t_db", "t_app", "t_worker")
    with (
        pytest.raises(StepFailed, match="pg_restore failed"),
        clients_stopped(engine, desired, settings, Redactor(), "db"),
    ):
        raise StepFailed("pg_restore failed (exit 1) and was rolled back")
    assert [c for c in engine.calls if c[0] == "start"] == [("start", "t_app"), ("start", "t_worker")]
    assert engine.containers_["t_worker"].state == "running"


class _WorkerWillNotStart(FakeEngine):
    def start(self, name: str) -> None:
        super().start(name)
        if name == "t_worker":  # it exits at once, as a service with a bad config would
            self.containers_[name] = replace(self.containers_[name], state="exited", exit_code=1)


def test_a_client_that_does_not_start_again_is_named(tmp_path):
    desired, settings = _stack(tmp_path)
    engine = _WorkerWillNotStart()
    _running(engine, "t_db", "t_app", "t_worker")
    with pytest.raises(StepFailed) as failed, clients_stopped(engine, desired, settings, Redactor(), "db"):
        pass
    assert failed.value.message.startswith("after the restore, worker did not start again: ")
    assert "cdb-ops rebuild" in failed.value.remedy
    assert engine.containers_["t_app"].state == "running"


class _StopFails(FakeEngine):
    def stop(self, name: str, timeout: int = 10) -> None:
        super().stop(name, timeout)
        if name == "t_app":  # the engine stopped it, then the call failed (a timeout on the answer)
            raise StepFailed("the engine did not answer")


def test_a_stop_that_fails_half_way_still_brings_everything_back(tmp_path):
    desired, settings = _stack(tmp_path)
    engine = _StopFails()
    _running(engine, "t_db", "t_app", "t_worker")
    stopping = clients_stopped(engine, desired, settings, Redactor(), "db")
    with pytest.raises(StepFailed, match="did not answer"), stopping:
        raise AssertionError("the restore must not run when its clients did not stop")
    assert [c for c in engine.calls if c[0] == "start"] == [("start", "t_app"), ("start", "t_worker")]
    assert all(c.state == "running" for c in engine.containers_.values())
