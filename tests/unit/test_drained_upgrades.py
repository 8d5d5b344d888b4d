"""The pure parts of drained upgrades and rollback (docs/upgrades.md), without Docker: the plan's drain step
(when a running consumer of the order flow is recreated, and only then), the wait for in-flight orders,
the replaced container kept as `<name>-previous` with its record, and the way back after a failed start.
tests/e2e/test_drained_upgrades.py proves the same on the real engine with a replay trading."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from cdb_ops.apply.drain import STREAM_GROUPS, in_flight, wait_until_clear
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


class _Groups:
    """XINFO GROUPS and XRANGE of a Redis holding the order flow's consumer groups as given."""

    def __init__(self, groups: dict[tuple[str, str], dict[str, object]], beyond: int = 0):
        self.groups, self.beyond = groups, beyond

    def xinfo_groups(self, stream: str) -> list[dict[str, object]]:
        import redis

        found = [{"name": g.encode(), **info} for (s, g), info in self.groups.items() if s == stream]
        if not found:
            raise redis.ResponseError("ERR no such key")
        return found

    def xrange(self, stream: str, min: str, max: str, count: int) -> list[object]:  # noqa: A002 (redis-py's names)
        assert min.startswith("(") and max == "+"
        return [object()] * self.beyond


class _NewOrders:
    def __init__(self, n: int):
        self.n = n

    def execute(self, sql: str) -> _NewOrders:
        assert "status = 'NEW'" in sql
        return self

    def fetchone(self) -> tuple[int]:
        return (self.n,)


RISK, EXECUTION = STREAM_GROUPS["risk"], STREAM_GROUPS["execution"]


def _flow(risk_pending: int = 0, exec_pending: int = 0, exec_lag: int | None = 0) -> _Groups:
    return _Groups(
        {
            RISK: {"pending": risk_pending, "lag": 0, "last-delivered-id": b"5-0"},
            EXECUTION: {"pending": exec_pending, "lag": exec_lag, "last-delivered-id": b"3-0"},
        }
    )


@pytest.mark.parametrize(
    ("flow", "why"),
    [
        (_flow(risk_pending=1), "risk has the signal: committed the order, not yet published it"),
        (_flow(exec_lag=1), "the order is on cdb:orders, not yet read by execution"),
        (_flow(exec_pending=1), "execution read the order and has not answered it yet"),
    ],
)
def test_a_new_order_a_consumer_may_hold_is_waited_for(flow, why):
    now = in_flight(_NewOrders(1), flow, [RISK, EXECUTION])
    assert (now.new_orders, now.stranded_orders, now.clear) == (1, 0, False), why


def test_a_new_order_no_consumer_holds_is_named_and_not_waited_for():
    """Every order entry read and answered, nothing pending: a NEW row (a restored dump's) is stranded."""
    now = in_flight(_NewOrders(2), _flow(), [RISK, EXECUTION])
    assert now.clear and (now.new_orders, now.stranded_orders) == (0, 2)
    assert now.describe() == "nothing in flight (2 NEW order(s) no consumer holds: they expire after ORDER_TTL_SECONDS)"
    assert now.to_dict() == {"pending": {"cdb:signals/risk_manager": 0, "cdb:orders/execution": 0}, "new_orders": 0,
                             "stranded_orders": 2}  # fmt: skip


def test_without_a_lag_from_redis_the_unread_entries_are_counted():
    """XINFO GROUPS reports no lag after deletions or trimming; the entries beyond the group's last delivered
    one are then counted, and one unread order entry means the NEW order may still be filled."""
    flow = _flow(exec_lag=None)
    flow.beyond = 1
    assert in_flight(_NewOrders(1), flow, [RISK]).new_orders == 1
    flow.beyond = 0
    assert in_flight(_NewOrders(1), flow, [RISK]).stranded_orders == 1


def test_a_flow_that_never_started_has_nothing_in_flight():
    now = in_flight(_NewOrders(0), _Groups({}), [RISK, EXECUTION])
    assert now.clear and now.pending == {"cdb:signals/risk_manager": 0, "cdb:orders/execution": 0}


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
