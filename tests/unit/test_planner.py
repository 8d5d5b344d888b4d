"""The planner and the phases against an in-memory engine: what changes, what does not, and why."""

from __future__ import annotations

from pathlib import Path

import pytest

from cdb_ops.apply.context import RunOptions
from cdb_ops.apply.runner import execute
from cdb_ops.errors import Conflict, UsageError
from cdb_ops.load.desired import resolve
from cdb_ops.load.playbook import load_runbook, start_order
from cdb_ops.load.project import Project
from cdb_ops.load.settings import load_settings
from cdb_ops.model.labels import LABEL_SYSTEM
from cdb_ops.model.ports import PortBinding
from cdb_ops.plan.observe import observe
from cdb_ops.plan.planner import PlanOptions, plan_stack
from cdb_ops.redact import Redactor
from cdb_ops.report.progress import QuietProgress
from tests.unit.fake_engine import FakeEngine, FakeExitWatch

MUTATING = {
    "create",
    "start",
    "stop",
    "remove",
    "rename",
    "build",
    "pull",
    "create_network",
    "create_volume",
    "remove_network",
    "remove_volume",
}


def _desired(project_dir: Path, profiles: list[str] | None = None):
    project = Project(project_dir)
    book, stack = load_runbook(project.playbook("rebuild"))
    settings = load_settings(project.env_file)
    return project, book, settings, resolve(stack, settings, project, profiles)


def _plan(engine: FakeEngine, desired):
    """What `cdb-ops plan` prints: one observation, then the pure planner."""
    return plan_stack(desired, observe(engine, desired))


def _rebuild(project_dir: Path, engine: FakeEngine, profiles: list[str] | None = None, **opts):
    project, book, settings, desired = _desired(project_dir, profiles)
    return execute(
        command="rebuild",
        engine=engine,
        desired=desired,
        settings=settings,
        project=project,
        book=book,
        progress=QuietProgress(),
        options=RunOptions(**opts),
        redact=Redactor(settings.secret_values()),
    )


def _actions(plan) -> dict[str, str]:
    return {f"{c.resource}:{c.name}": c.action for c in plan.changes}


def test_plan_from_nothing_creates_everything(project_dir, engine):
    *_, desired = _desired(project_dir)
    actions = _actions(_plan(engine, desired))
    assert actions == {
        "network:t_net": "create",
        "volume:t_data": "create",
        "image:postgres:15-alpine": "pull",
        "container:t_db": "create",
        "image:t_app:latest": "build",
        "container:t_app": "create",
    }
    assert engine.calls == []  # planning changes nothing


def test_second_rebuild_changes_nothing(project_dir, engine):
    first = _rebuild(project_dir, engine)
    assert first.result == "ok", first.error
    assert {"t_db", "t_app"} <= set(engine.containers_)
    ids = {n: c.id for n, c in engine.containers_.items()}
    engine.calls.clear()

    second = _rebuild(project_dir, engine)
    assert second.result == "ok"
    assert second.changed == []
    assert [c for c in engine.calls if c[0] in MUTATING] == []
    assert {n: c.id for n, c in engine.containers_.items()} == ids
    *_, desired = _desired(project_dir)
    assert _plan(engine, desired).pending == []


def test_fallback_build_when_pull_fails_and_pull_preferred_when_possible(project_dir):
    offline = FakeEngine()
    result = _rebuild(project_dir, offline)
    assert ("pull", "postgres:15-alpine") in offline.calls
    assert ("build", "t/db:fallback") in offline.calls
    step = next(s for s in result.steps if s.name == "t/db:fallback")
    assert step.action == "build" and "could not be pulled" in step.detail
    # next run: the fallback is current, so no new pull attempt and no build
    offline.calls.clear()
    _rebuild(project_dir, offline)
    assert not [c for c in offline.calls if c[0] in ("pull", "build")]

    online = FakeEngine(pullable={"postgres:15-alpine"})
    _rebuild(project_dir, online)
    assert ("pull", "postgres:15-alpine") in online.calls
    assert ("build", "t/db:fallback") not in online.calls


def test_env_change_recreates_exactly_that_container(project_dir, engine):
    _rebuild(project_dir, engine)
    db_id = engine.containers_["t_db"].id
    env = (project_dir / ".env").read_text().replace("MIN_VOLUME=100000", "MIN_VOLUME=250000")
    (project_dir / ".env").write_text(env)

    *_, desired = _desired(project_dir)
    plan = _plan(engine, desired)
    pending = [(c.name, c.action, c.reason) for c in plan.pending]
    assert pending == [("t_app", "recreate", "changed: env")]

    engine.calls.clear()
    result = _rebuild(project_dir, engine)
    assert [(s.name, s.action) for s in result.changed] == [("t_app", "recreate")]
    assert engine.containers_["t_db"].id == db_id
    assert engine.containers_["t_app"].state == "running"
    assert not any("-replaced-" in n for n in engine.containers_)


def test_secret_change_recreates_the_service_that_reads_it(project_dir, engine):
    _rebuild(project_dir, engine)
    env = (project_dir / ".env").read_text().replace("unit-test-password-0123456789", "another-password-0123456789")
    (project_dir / ".env").write_text(env)
    *_, desired = _desired(project_dir)
    pending = [(c.name, c.action, c.reason) for c in _plan(engine, desired).pending]
    assert pending == [("t_db", "recreate", "changed: secrets")]


def test_build_context_change_rebuilds_image_and_recreates(project_dir, engine):
    _rebuild(project_dir, engine)
    (project_dir / "images" / "app" / "README.md").write_text("not copied into the image\n")
    *_, desired = _desired(project_dir)
    assert _plan(engine, desired).pending == []  # files the Dockerfile does not COPY do not count
    (project_dir / "images" / "app" / "main.py").write_text("print('v2')\n")
    *_, desired = _desired(project_dir)
    actions = _actions(_plan(engine, desired))
    assert actions["image:t_app:latest"] == "build"
    assert actions["container:t_app"] == "recreate"
    assert actions["container:t_db"] == "ok"


def test_foreign_container_with_our_name_refuses_run_and_changes_nothing(project_dir, engine):
    engine.add_container("t_app", labels={"owner": "someone-else"})
    engine.calls.clear()
    result = _rebuild(project_dir, engine)
    assert result.result == "failed"
    assert result.exit_code == Conflict.exit_code == 6
    assert "t_app" in result.error["message"] and "not part of testsys" in result.error["message"]
    assert [c for c in engine.calls if c[0] in MUTATING] == []


def test_port_published_by_foreign_container_is_a_conflict(project_dir, engine):
    engine.add_container("someone_db", ports=(PortBinding("0.0.0.0", 15432, 5432),))
    result = _rebuild(project_dir, engine)
    assert result.exit_code == 6
    assert "host port 15432 is published by container 'someone_db'" in result.error["message"]
    assert engine.networks_ == {}


def test_port_held_by_a_process_is_named(project_dir):
    import socket

    engine = FakeEngine(local=True)
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", 15432))
        s.listen()
        *_, desired = _desired(project_dir)
        # only db's port is ours to hold here; the machine may have other listeners on app's port
        conflicts = [c for c in _plan(engine, desired).conflicts if c.service == "db"]
    assert len(conflicts) == 1
    assert "127.0.0.1:15432 is held by" in conflicts[0].reason
    assert "python" in conflicts[0].reason.lower()  # psutil names this very test process


def test_orphans_are_reported_and_kept_unless_asked(project_dir):
    engine = FakeEngine(pullable={"t_extra:1"})
    _rebuild(project_dir, engine, profiles=["core", "monitoring"])
    assert "t_extra" in engine.containers_
    result = _rebuild(project_dir, engine)  # core only now
    assert "t_extra" in engine.containers_
    assert any(s.name == "t_extra" and s.action == "orphan" for s in result.steps)
    _rebuild(project_dir, engine, remove_orphans=True)
    assert "t_extra" not in engine.containers_


def test_clean_removes_only_labelled_containers(project_dir, engine):
    _rebuild(project_dir, engine)
    engine.add_container("bystander", labels={})
    engine.add_container("other_system", labels={LABEL_SYSTEM: "not_ours"})
    result = _rebuild(project_dir, engine, clean=True)
    assert result.result == "ok"
    removed = [c[1] for c in engine.calls if c[0] == "remove"]
    assert sorted(removed) == ["t_app", "t_db"]
    assert {"bystander", "other_system", "t_app", "t_db"} <= set(engine.containers_)
    assert "t_data" in engine.volumes_  # data volumes are kept by --clean


def test_each_removed_container_says_how_it_stopped(project_dir, engine):
    """A user sees from the steps whether the stop was graceful: exit 0, or killed after the grace time."""
    _rebuild(project_dir, engine)
    engine.stop_exit_codes["t_app"] = 137
    result = _rebuild(project_dir, engine, clean=True)
    details = {s.name: s.detail for s in result.steps if s.resource == "container" and s.action == "remove"}
    assert details["t_db"] == "--clean; stopped cleanly (exit 0)"
    assert details["t_app"] == "--clean; killed (exit 137: it did not stop within 10 s of SIGTERM)"


def test_removals_name_the_command_that_asked_for_them(project_dir, engine):
    """`down` reuses --clean's plan; its reasons must say `down`, not a flag the user never typed."""
    _rebuild(project_dir, engine)
    *_, desired = _desired(project_dir)
    observed = observe(engine, desired)
    down = plan_stack(desired, observed, PlanOptions(clean=True, requested_by=("down", "down --volumes")))
    assert {c.reason for c in down.removals} == {"down"}
    wipe = plan_stack(desired, observed, PlanOptions(wipe_data=True, requested_by=("down", "down --volumes")))
    assert {c.reason for c in wipe.removals if c.resource == "container"} == {"down --volumes"}
    assert {c.reason for c in wipe.removals if c.resource == "volume"} <= {
        "down --volumes (backed up first)",
        "down --volumes (scratch: nothing to keep)",
    }
    assert {c.reason for c in plan_stack(desired, observed, PlanOptions(clean=True)).removals} == {"--clean"}


def test_wiping_removes_scratch_volumes_too_without_a_backup(project_dir, engine):
    """`down --volumes` leaves none of the stack's volumes behind: a scratch volume (`data: false`, e.g.
    Postgres' /tmp) goes as well, named as scratch, and only the data volumes are backed up first."""
    _rebuild(project_dir, engine)
    *_, desired = _desired(project_dir)
    data = next(v for v in engine.volumes_.values() if v.labels.get("cdb.data") == "true")
    engine.create_volume("t_scratch", {**data.labels, "cdb.data": "false"})
    wipe = plan_stack(
        desired, observe(engine, desired), PlanOptions(wipe_data=True, requested_by=("down", "down --volumes"))
    )
    reasons = {c.name: c.reason for c in wipe.removals if c.resource == "volume"}
    assert reasons["t_scratch"] == "down --volumes (scratch: nothing to keep)"
    assert reasons[data.name] == "down --volumes (backed up first)"


def test_leftover_of_interrupted_recreate_is_removed(project_dir, engine):
    _rebuild(project_dir, engine)
    labels = dict(engine.containers_["t_app"].labels)
    engine.add_container("t_app-replaced-1700000000", labels=labels, state="exited")
    *_, desired = _desired(project_dir)
    assert _actions(_plan(engine, desired))["container:t_app-replaced-1700000000"] == "remove"
    _rebuild(project_dir, engine)
    assert "t_app-replaced-1700000000" not in engine.containers_


def test_stopped_container_is_started_not_recreated(project_dir, engine):
    _rebuild(project_dir, engine)
    cid = engine.containers_["t_db"].id
    engine.stop("t_db")
    *_, desired = _desired(project_dir)
    assert _actions(_plan(engine, desired))["container:t_db"] == "start"
    _rebuild(project_dir, engine)
    assert engine.containers_["t_db"].id == cid and engine.containers_["t_db"].state == "running"


def test_missing_network_is_recreated_with_its_members(project_dir, engine):
    _rebuild(project_dir, engine)
    engine.networks_.clear()
    *_, desired = _desired(project_dir)
    actions = _actions(_plan(engine, desired))
    assert actions["network:t_net"] == "create"
    assert actions["container:t_db"] == "recreate"


def test_unknown_profile_is_a_usage_error(project_dir):
    with pytest.raises(UsageError, match="unknown profile 'monitorin'"):
        _desired(project_dir, ["monitorin"])


def test_start_order_puts_dependencies_first(project_dir):
    *_, desired = _desired(project_dir, ["core", "monitoring"])
    assert start_order(desired.stack, ["app", "db", "extra"]) == [["db", "extra"], ["app"]]


def test_secrets_reach_the_container_only_as_files(project_dir, engine):
    _rebuild(project_dir, engine)
    db = engine.containers_["t_db"]
    *_, desired = _desired(project_dir)
    spec = desired.services["db"].container
    assert spec.env["POSTGRES_PASSWORD_FILE"] == "/run/secrets/postgres_password"
    assert "unit-test-password-0123456789" not in repr(spec.env) + repr(db.labels)
    secret = project_dir / ".cdb" / "secrets" / "postgres_password"
    assert secret.read_text() == "unit-test-password-0123456789"
    assert oct(secret.stat().st_mode & 0o777) == "0o444"
    assert oct(secret.parent.stat().st_mode & 0o777) == "0o700"


def test_editing_a_mounted_config_file_recreates_its_container(project_dir):
    engine = FakeEngine(pullable={"t_extra:1"})
    _rebuild(project_dir, engine, profiles=["core", "monitoring"])
    (project_dir / "conf" / "extra.yml").write_text("scrape_interval: 10s\n")
    *_, desired = _desired(project_dir, ["core", "monitoring"])
    pending = [(c.name, c.action, c.reason) for c in _plan(engine, desired).pending]
    assert pending == [("t_extra", "recreate", "changed: files")]


def test_a_missing_mounted_file_is_a_config_error(project_dir):
    from cdb_ops.errors import ConfigError

    (project_dir / "conf" / "extra.yml").unlink()
    with pytest.raises(ConfigError, match="mounts ./conf/extra.yml, which does not exist"):
        _desired(project_dir, ["core", "monitoring"])


def _did(result) -> list[tuple[str, str, str]]:
    return sorted((s.resource, s.name, s.action) for s in result.changed)


def test_what_plan_prints_is_what_rebuild_does(project_dir):
    """`plan` and `rebuild` share one planner: every change the plan lists is a step of the rebuild,
    and the rebuild makes no change the plan did not list."""
    engine = FakeEngine(pullable={"postgres:15-alpine"})
    *_, desired = _desired(project_dir)
    planned = sorted((c.resource, c.name, c.action) for c in _plan(engine, desired).pending)
    assert _did(_rebuild(project_dir, engine)) == planned

    (project_dir / ".env").write_text((project_dir / ".env").read_text().replace("MIN_VOLUME=100000", "MIN_VOLUME=7"))
    *_, desired = _desired(project_dir)
    planned = sorted((c.resource, c.name, c.action) for c in _plan(engine, desired).pending)
    assert planned == [("container", "t_app", "recreate")]
    assert _did(_rebuild(project_dir, engine)) == planned


def test_clean_stops_dependents_first_and_removes_every_container(project_dir, engine):
    """app depends on db: app is stopped before db is; each container is removed once it stopped."""
    _rebuild(project_dir, engine)
    engine.calls.clear()
    result = _rebuild(project_dir, engine, clean=True)
    assert result.result == "ok"
    stops = [c[1] for c in engine.calls if c[0] == "stop"]
    assert stops.index("t_app") < stops.index("t_db")
    removed = [c[1] for c in engine.calls if c[0] == "remove"]
    assert sorted(removed[:2]) == ["t_app", "t_db"]
    for name in ("t_app", "t_db"):
        assert engine.calls.index(("stop", name)) < engine.calls.index(("remove", name))


def test_clean_stops_a_dependency_once_its_dependents_exited_not_once_docker_tore_them_down(project_dir, engine):
    """db is stopped as soon as app's process has exited (the engine's exit event), while Docker is still
    tearing app's container down — not after app's stop returned. Its watch is closed at the end."""
    import threading

    _rebuild(project_dir, engine)
    db_stop_asked = threading.Event()
    db_asked_while_app_torn_down: list[bool] = []
    engine.after_exit["t_db"] = db_stop_asked.set
    engine.after_exit["t_app"] = lambda: db_asked_while_app_torn_down.append(db_stop_asked.wait(5))
    result = _rebuild(project_dir, engine, clean=True)
    assert result.result == "ok"
    assert db_asked_while_app_torn_down == [True]
    assert engine.watches and all(w.closed.is_set() for w in engine.watches)
    removed = sorted(s.name for s in result.steps if s.action == "remove" and s.resource == "container")
    assert removed == ["t_app", "t_db"]


@pytest.mark.parametrize("stream", ["silent", "refused"])
def test_clean_without_exit_events_still_stops_dependents_first(project_dir, engine, stream):
    """When the engine's event stream yields nothing, or cannot be opened, a stop's return releases its
    level."""
    from cdb_ops.errors import EngineUnavailable

    def refused(label: str) -> FakeExitWatch:
        raise EngineUnavailable("events: connection refused", "")

    _rebuild(project_dir, engine)
    engine.watch_exits = (lambda label: FakeExitWatch(label)) if stream == "silent" else refused  # type: ignore[method-assign]
    engine.calls.clear()
    result = _rebuild(project_dir, engine, clean=True)
    assert result.result == "ok"
    stops = [c[1] for c in engine.calls if c[0] == "stop"]
    assert stops.index("t_app") < stops.index("t_db")
