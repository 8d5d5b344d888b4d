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


def _oom_looping(engine, name: str, restarts: int, state: str = "restarting"):
    engine.containers_[name] = replace(
        engine.containers_[name],
        state=state,
        oom_killed=True,
        exit_code=137 if state != "running" else 0,
        restart_count=restarts,
        memory_limit=12 * 1024 * 1024,
    )


def test_an_oom_kill_while_starting_fails_at_once_naming_it(project_dir):
    """Docker restarting the container after the kernel's OOM kill: no 30 s of waiting, no 'no output'."""
    svc, engine, waiter, clock = _setup(project_dir)
    engine.add_container(svc.container.name)
    _oom_looping(engine, svc.container.name, restarts=2)
    with pytest.raises(StepFailed, match="was OOM-killed while starting") as err:
        waiter.wait(svc, timeout=30)
    assert clock.now == 0.0
    assert "last exit: OOMKilled (exit code 137, memory limit 12 MiB), restarted 2×" in err.value.message
    assert "mem_limit" in err.value.remedy and svc.name in err.value.remedy
    assert err.value.details["last_exit"] == {
        "oom_killed": True,
        "exit_code": 137,
        "memory_limit_bytes": 12 * 1024 * 1024,
        "restarts": 2,
        "finished_at": None,
    }


def test_an_oom_kill_of_an_earlier_run_does_not_fail_a_wait_that_succeeds(project_dir):
    """OOMKilled stays true while a container Docker restarted runs again: only a kill during the wait counts."""
    svc, engine, waiter, _ = _setup(project_dir)
    engine.add_container(svc.container.name)
    _oom_looping(engine, svc.container.name, restarts=1, state="running")
    engine.containers_[svc.container.name] = replace(engine.containers_[svc.container.name], health="healthy")
    assert waiter.wait(svc).detail == "docker: healthy"


def test_a_timeout_names_the_last_exit(project_dir):
    svc, engine, waiter, _ = _setup(project_dir)
    engine.add_container(svc.container.name)
    _oom_looping(engine, svc.container.name, restarts=1, state="running")
    engine.containers_[svc.container.name] = replace(engine.containers_[svc.container.name], health="starting")
    with pytest.raises(HealthTimeout, match="was not ready after 5 s") as err:
        waiter.wait(svc, timeout=5)
    # running again: Docker zeroed ExitCode, but OOMKilled of the last run says what the code was
    assert "last exit: OOMKilled (exit code 137, memory limit 12 MiB), restarted 1×" in err.value.message


def test_a_sigkill_the_engine_did_not_flag_fails_at_once_too(project_dir):
    """Exit 137 with OOMKilled false (some cgroup v2 setups): named as a SIGKILL, with the OOM fix."""
    svc, engine, waiter, clock = _setup(project_dir)
    engine.add_container(svc.container.name)
    _oom_looping(engine, svc.container.name, restarts=1)
    engine.containers_[svc.container.name] = replace(engine.containers_[svc.container.name], oom_killed=False)
    with pytest.raises(StepFailed, match=r"was killed \(SIGKILL\) while starting") as err:
        waiter.wait(svc, timeout=30)
    assert clock.now == 0.0
    assert "killed by SIGKILL — the OOM killer or `docker kill` (exit code 137, memory limit 12 MiB)" in str(
        err.value.message
    )
    assert "exit 137 is a SIGKILL" in err.value.remedy and "mem_limit" in err.value.remedy
