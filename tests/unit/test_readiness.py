"""Readiness waits on the probe base's polling: ready when Docker says so (no probe of our own), an exit
fails at once, and a container that never gets ready times out with its facts — on a fake clock."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from cdb_ops.apply.readiness import HealthWait
from cdb_ops.errors import HealthTimeout, StepFailed
from cdb_ops.load.desired import resolve
from cdb_ops.load.playbook import load_runbook
from cdb_ops.load.project import Project
from cdb_ops.load.settings import load_settings
from cdb_ops.redact import Redactor
from tests.unit.fake_engine import FakeEngine


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def _setup(project_dir: Path):
    project = Project(project_dir)
    _, stack = load_runbook(project.playbook("rebuild"))
    settings = load_settings(project.env_file)
    desired = resolve(stack, settings, project)
    engine = FakeEngine()
    clock = FakeClock()
    return desired.services["app"], engine, HealthWait(engine, settings, Redactor(), clock, clock.sleep), clock


def test_docker_healthy_is_ready(project_dir):
    svc, engine, waiter, _ = _setup(project_dir)
    engine.add_container(svc.container.name)
    engine.containers_[svc.container.name] = replace(engine.containers_[svc.container.name], health="healthy")
    assert waiter.wait(svc).detail == "docker: healthy"


def test_an_exit_fails_at_once(project_dir):
    svc, engine, waiter, clock = _setup(project_dir)
    engine.add_container(svc.container.name, state="exited")
    with pytest.raises(StepFailed, match="exited"):
        waiter.wait(svc, timeout=60)
    assert clock.now == 0.0


def test_never_ready_times_out_with_its_facts(project_dir):
    svc, engine, waiter, clock = _setup(project_dir)
    engine.add_container(svc.container.name)
    engine.containers_[svc.container.name] = replace(engine.containers_[svc.container.name], health="starting")
    with pytest.raises(HealthTimeout, match="was not ready after 5 s") as err:
        waiter.wait(svc, timeout=5)
    assert 5.0 <= clock.now < 5.5
    assert err.value.details["docker_health"] == "starting"
