"""The pure parts of drained upgrades and rollback (docs/upgrades.md), without Docker: the plan's drain step
(when a running consumer of the order flow is recreated, and only then), the wait for in-flight orders,
the replaced container kept as `<name>-previous` with its record, and the way back after a failed start.
tests/e2e/test_drained_upgrades.py proves the same on the real engine with a replay trading."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from cdb_ops.apply.drain import wait_until_clear
from cdb_ops.errors import DrainTimeout
from cdb_ops.model.labels import LABEL_HASH
from cdb_ops.model.upgrade import InFlight
from tests.unit.fake_engine import FakeEngine
from tests.unit.test_planner import _actions, _desired, _plan, _rebuild


def _role(project_dir: Path, role: str) -> None:
    stack = project_dir / "playbooks" / "stack.yaml"
    stack.write_text(stack.read_text().replace("role: signal", f"role: {role}"))


def _change_env(project_dir: Path) -> None:
    env = (project_dir / ".env").read_text().replace("MIN_VOLUME=100000", "MIN_VOLUME=250000")
    (project_dir / ".env").write_text(env)


@pytest.mark.parametrize("role", ["risk", "execution"])
def test_recreating_a_running_consumer_of_the_order_flow_plans_a_drain(project_dir, engine, role):
    _role(project_dir, role)
    assert _rebuild(project_dir, engine).result == "ok"
    _change_env(project_dir)
    *_, desired = _desired(project_dir)
    plan = _plan(engine, desired)
    assert plan.drain is not None and plan.drained_services == ["app"]
    assert (plan.drain.resource, plan.drain.action, plan.drain.service) == ("book", "drain", None)
    assert "app is recreated (changed: env)" in plan.drain.reason and "REDUCING" in plan.drain.reason
    assert plan.drain in plan.pending  # the plan's summary counts it


def test_no_drain_for_other_roles_a_stopped_consumer_or_an_unchanged_one(project_dir, engine):
    assert _rebuild(project_dir, engine).result == "ok"
    _change_env(project_dir)
    *_, desired = _desired(project_dir)
    assert _plan(engine, desired).drain is None  # role signal: it consumes ticks, not the order flow

    _role(project_dir, "risk")
    *_, desired = _desired(project_dir)
    engine.stop("t_app")
    assert _plan(engine, desired).drain is None  # stopped: nothing in flight through it
    engine.start("t_app")
    assert _plan(engine, desired).drain is not None


def test_the_replaced_container_is_kept_stopped_with_a_record_for_rollback(project_dir, engine):
    assert _rebuild(project_dir, engine).result == "ok"
    old = engine.containers_["t_app"]
    _change_env(project_dir)
    result = _rebuild(project_dir, engine)
    assert result.result == "ok", result.error
    kept = engine.containers_["t_app-previous"]
    assert kept.id == old.id and kept.state == "exited"
    assert not any("-replaced-" in n for n in engine.containers_)
    record = json.loads((project_dir / ".cdb" / "last-upgrade.json").read_text())
    (swap,) = record["swaps"]
    assert swap["previous_image_id"] == old.image_id and swap["previous_config_hash"] == old.labels[LABEL_HASH]
    assert swap["new_config_hash"] == engine.containers_["t_app"].labels[LABEL_HASH] != swap["previous_config_hash"]
    assert result.to_dict()["upgrade"]["swaps"] == [swap]
    assert [s.action for s in result.steps if s.name == "t_app-previous"] == ["keep"]

    # the plan keeps it (no orphan, not removed by --remove-orphans); --clean removes it with the rest
    *_, desired = _desired(project_dir)
    assert _actions(_plan(engine, desired))["container:t_app-previous"] == "keep"
    assert _rebuild(project_dir, engine, remove_orphans=True).result == "ok"
    assert "t_app-previous" in engine.containers_
    assert _rebuild(project_dir, engine, clean=True).result == "ok"
    assert "t_app-previous" not in engine.containers_


class CrashingNewImage(FakeEngine):
    """The new version starts and exits at once (a configuration its service refuses)."""

    crash_image: str = ""

    def start(self, name: str) -> None:
        super().start(name)
        c = self.containers_[name]
        if self.crash_image and c.image_id == self.crash_image:
            self.containers_[name] = replace(c, state="exited", exit_code=3)


def test_a_failed_start_after_the_swap_puts_the_previous_container_back(project_dir):
    engine = CrashingNewImage()
    assert _rebuild(project_dir, engine).result == "ok"
    old = engine.containers_["t_app"]
    (project_dir / "images" / "app" / "main.py").write_text("print('v2')\n")  # a new image
    engine.crash_image = "will be set by build"
    original_build = engine.build

    def build(*args, **kwargs):  # the image the next run builds is the one that crashes
        facts = original_build(*args, **kwargs)
        engine.crash_image = facts.id
        return facts

    engine.build = build  # type: ignore[method-assign]
    result = _rebuild(project_dir, engine)
    assert result.result == "failed" and result.exit_code == 1
    message = result.error["message"]
    assert "t_app exited (code 3) while starting" in message
    assert f"rolled back: app (previous image {old.image_id[:19]}" in message
    back = engine.containers_["t_app"]
    assert (back.id, back.image_id, back.labels[LABEL_HASH], back.state) == (
        old.id,
        old.image_id,
        old.labels[LABEL_HASH],
        "running",
    )
    assert result.error["details"]["rolled_back"] == ["app"]
    assert [n for n in engine.containers_ if "-replaced-" in n or "-previous" in n] == []
    assert not (project_dir / ".cdb" / "last-upgrade.json").exists()
    # stop-first both ways: the new container was stopped before the previous one started again
    calls = [c for c in engine.calls if c[0] in ("stop", "remove", "start", "rename")]
    stop, remove, rename, start = calls[-4:]
    assert (stop, remove, start) == (("stop", "t_app"), ("remove", "t_app"), ("start", "t_app"))
    assert rename[0] == "rename" and rename[1].endswith("->t_app") and "-replaced-" in rename[1]


def test_the_drain_waits_until_nothing_is_in_flight_and_reports_progress():
    now = [0.0]
    states = iter([InFlight({"cdb:signals/risk_manager": 2}, 1)] * 30 + [InFlight({"cdb:signals/risk_manager": 0}, 0)])
    seen: list[str] = []
    done = wait_until_clear(
        lambda: next(states),
        60,
        lambda f, t: seen.append(f"{f.describe()} after {t:.0f} s"),
        clock=lambda: now[0],
        sleep=lambda s: now.__setitem__(0, now[0] + s),
    )
    assert done.clear
    assert seen and seen[0] == "2 pending on cdb:signals/risk_manager, 1 order(s) NEW after 2 s"


def test_a_drain_that_does_not_settle_times_out_naming_what_is_in_flight():
    now = [0.0]
    with pytest.raises(DrainTimeout) as err:
        wait_until_clear(
            lambda: InFlight({"cdb:orders/execution": 0}, 3),
            5,
            lambda f, t: None,
            clock=lambda: now[0],
            sleep=lambda s: now.__setitem__(0, now[0] + s),
        )
    assert "after 5 s of draining: 3 order(s) NEW" in err.value.message
    assert err.value.exit_code == 5 and "CDB_DRAIN_TIMEOUT" in err.value.remedy
    assert InFlight({"a/b": 0}, 0).describe() == "nothing in flight"
