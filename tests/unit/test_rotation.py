"""Secret rotation without Docker: when the plan says a data volume keeps an old password (from facts
alone), how the password is set in place, what a renamed role tells the user, `init --rotate`'s .env,
and the order the stack is stopped in before its volumes are archived."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from cdb_ops.apply.archive import stop_order
from cdb_ops.apply.rotate import pending_rotations, set_role_password
from cdb_ops.errors import ConfigError, ExitCode
from cdb_ops.load.envrotate import rotate_secrets
from cdb_ops.load.settings import load_settings
from cdb_ops.model.labels import LABEL_SERVICE
from cdb_ops.plan.observe import observe
from cdb_ops.plan.planner import PlanOptions, plan_stack
from cdb_ops.redact import Redactor
from tests.unit.fake_engine import FakeEngine
from tests.unit.test_planner import _desired, _rebuild

OLD_PW = "unit-test-password-0123456789"


def _with_role(project_dir: Path) -> None:
    stack = project_dir / "playbooks" / "stack.yaml"
    old = 'env: {POSTGRES_DB: "${POSTGRES_DB}"}'
    stack.write_text(stack.read_text().replace(old, old[:-1] + ', POSTGRES_USER: "${POSTGRES_USER}"}'))


def _postgres_probed(project_dir: Path) -> None:
    """The conftest stack probes its db through Docker; the rotation is for the service probed as postgres
    (the `ready` spec is not part of the container's config, so nothing is recreated by this)."""
    stack = project_dir / "playbooks" / "stack.yaml"
    old = '    ports: ["15432:5432"]\n    ready: {probe: docker}'
    stack.write_text(stack.read_text().replace(old, old.replace("docker", "postgres")))


def _set_env(project_dir: Path, key: str, value: str) -> None:
    env = project_dir / ".env"
    env.write_text(re.sub(rf"^{key}=.*$", f"{key}={value}", env.read_text(), flags=re.M))


def _converged(project_dir: Path, engine: FakeEngine) -> None:
    engine.pullable.add("postgres:15-alpine")
    _with_role(project_dir)
    assert _rebuild(project_dir, engine).result == "ok"
    _postgres_probed(project_dir)


def _rotations(project_dir: Path, engine: FakeEngine, options: PlanOptions | None = None):
    *_, desired = _desired(project_dir)
    plan = plan_stack(desired, observe(engine, desired), options)
    return plan, [c for c in plan.changes if c.action == "rotate"]


def test_a_changed_password_on_a_kept_volume_is_planned_as_a_rotation(project_dir, engine):
    _converged(project_dir, engine)
    assert _rotations(project_dir, engine)[1] == []  # converged: nothing to rotate
    _set_env(project_dir, "POSTGRES_PASSWORD", "a-brand-new-password-9876543210")
    plan, rotations = _rotations(project_dir, engine)
    assert len(rotations) == 1
    r = rotations[0]
    assert (r.resource, r.name, r.service) == ("secret", "POSTGRES_PASSWORD", "db")
    assert "password of role claire" in r.reason and "t_data keeps the password it was initialised with" in r.reason
    assert "POSTGRES_PASSWORD changed" in r.reason
    assert plan.rotations["db"] is r and plan.containers["db"].action == "recreate"
    assert "a-brand-new-password" not in str(plan)


def test_no_rotation_for_changes_the_volume_does_not_remember(project_dir, engine):
    _converged(project_dir, engine)
    _set_env(project_dir, "MIN_VOLUME", "5")  # the app's env: the db container is untouched
    assert _rotations(project_dir, engine)[1] == []
    # a fresh volume (made by this run) was initialised with .env's password by Postgres itself
    _set_env(project_dir, "POSTGRES_PASSWORD", "a-brand-new-password-9876543210")
    assert _rotations(project_dir, engine, PlanOptions(fresh_volumes=frozenset({"t_data"})))[1] == []
    # --wipe-data: the volume goes
    assert _rotations(project_dir, engine, PlanOptions(wipe_data=True))[1] == []
    # no volume: nothing kept
    engine.remove_container("t_db")
    engine.volumes_.pop("t_data")
    assert _rotations(project_dir, engine)[1] == []


def test_a_container_gone_but_its_volume_kept_means_the_password_is_not_known(project_dir, engine):
    _converged(project_dir, engine)
    engine.remove_container("t_db")  # e.g. after `down`, or a second clone of the project
    rotations = _rotations(project_dir, engine)[1]
    assert len(rotations) == 1 and "not known" in rotations[0].reason


def test_a_changed_role_name_is_planned_too(project_dir, engine):
    _converged(project_dir, engine)
    _set_env(project_dir, "POSTGRES_USER", "somebody_else")
    rotations = _rotations(project_dir, engine)[1]
    assert len(rotations) == 1 and "changed: env" in rotations[0].reason and "somebody_else" in rotations[0].reason


@dataclasses.dataclass
class ScriptedEngine(FakeEngine):
    """Answers the two commands rotation runs inside the container as a real one would."""

    answer: tuple[int, str] = (0, "cdb-rotate: ok\n")
    execs: list[list[str]] = dataclasses.field(default_factory=list)

    def exec(self, name: str, cmd: list[str]) -> tuple[int, str]:
        self.execs.append(cmd)
        return (0, "") if "pg_isready" in cmd[-1] else self.answer


def test_the_password_is_set_with_nothing_secret_on_the_command_line(project_dir):
    engine = ScriptedEngine()
    engine.add_container("t_db")
    settings = load_settings(project_dir / ".env")
    done = set_role_password(engine, "t_db", settings, "t_data", Redactor(settings.secret_values()))
    assert "password of role claire set in place" in done
    script = engine.execs[-1]
    assert script[:2] == ["sh", "-c"]
    assert OLD_PW not in " ".join(script)  # read from the mounted file inside, never passed in
    assert "$POSTGRES_PASSWORD_FILE" in script[2] and "ALTER ROLE" in script[2]
    assert "log_min_error_statement = 'panic'" in script[2]  # a failing statement is not logged with its text


def test_a_role_the_volume_does_not_hold_is_named_as_the_cause(project_dir):
    engine = ScriptedEngine(
        answer=(
            2,
            'psql: error: connection to server on socket "/var/run/postgresql/.s.PGSQL.5432" failed: '
            'FATAL:  role "somebody_else" does not exist\n',
        )
    )
    engine.add_container("t_db")
    _set_env(project_dir, "POSTGRES_USER", "somebody_else")
    settings = load_settings(project_dir / ".env")
    with pytest.raises(ConfigError) as err:
        set_role_password(engine, "t_db", settings, "t_data", Redactor(settings.secret_values()))
    assert err.value.exit_code == ExitCode.CONFIG
    assert 'role "somebody_else" does not exist in the data volume t_data' in err.value.message
    assert ".env:2" in err.value.message  # the file and line of POSTGRES_USER
    assert "POSTGRES_USER" in err.value.remedy and "--wipe-data" in err.value.remedy
    assert err.value.details["cause"] == "volume_mismatch"  # so the run is not recorded with that role


def test_init_rotate_changes_only_the_secret_values():
    text = (
        "# database\nPOSTGRES_DB=claire\nPOSTGRES_PASSWORD=old-one # keep this note\n"
        "export REDIS_PASSWORD='old-two'\r\nGRAFANA_PASSWORD=admin-pw\nLOG_LEVEL=INFO\n"
    )
    new, rotated = rotate_secrets(text)
    assert rotated == ["POSTGRES_PASSWORD", "REDIS_PASSWORD"]  # Grafana keeps its own: not rotated
    old_lines, new_lines = text.splitlines(keepends=True), new.splitlines(keepends=True)
    assert len(old_lines) == len(new_lines)
    for before, after in zip(old_lines, new_lines, strict=True):
        if before.startswith(("POSTGRES_PASSWORD", "export REDIS_PASSWORD")):
            assert after != before and after.endswith(before[-2:] if before.endswith("\r\n") else "\n")
        else:
            assert after == before
    assert new_lines[2].endswith(" # keep this note\n") and "old-one" not in new
    assert re.match(r"^export REDIS_PASSWORD=[A-Za-z0-9_-]{40,}\r\n$", new_lines[3])


def _facts(name: str, service: str | None):
    engine = FakeEngine()
    return engine.add_container(name, {LABEL_SERVICE: service} if service else {})


def test_the_stack_stops_services_first_databases_last(project_dir):
    *_, desired = _desired(project_dir)
    running = [_facts("t_db", "db"), _facts("t_app", "app"), _facts("stray", None)]
    assert [c.name for c in stop_order(desired, running)] == ["stray", "t_app", "t_db"]


def _phase_context(project_dir: Path, engine: FakeEngine):
    from cdb_ops.apply.context import PhaseContext, RunOptions
    from cdb_ops.apply.readiness import HealthWait
    from cdb_ops.report.progress import QuietProgress

    project, _, settings, desired = _desired(project_dir)
    observed = observe(engine, desired)
    redact = Redactor(settings.secret_values())
    return PhaseContext(
        engine=engine,
        desired=desired,
        settings=settings,
        project=project,
        progress=QuietProgress(),
        redact=redact,
        options=RunOptions(),
        waiter=HealthWait(engine, settings, redact),
        observed=observed,
        plan=plan_stack(desired, observed),
        plan_options=PlanOptions(),
    )


def test_the_phase_carries_out_the_planned_rotation_and_records_it(project_dir):
    from cdb_ops.apply.phases import services

    engine = ScriptedEngine()
    _converged(project_dir, engine)
    _set_env(project_dir, "POSTGRES_PASSWORD", "a-brand-new-password-9876543210")
    ctx = _phase_context(project_dir, engine)
    svc = ctx.desired.services["db"]
    assert services.converge_one(ctx, svc, "db") == "recreate"
    assert pending_rotations(ctx.project) == {"db"}  # recorded before the container changed
    services._rotate(ctx, svc, "db", ctx.plan.rotations["db"])
    assert pending_rotations(ctx.project) == frozenset()
    step = ctx.steps[-1]
    assert (step.resource, step.name, step.action, step.changed) == ("secret", "POSTGRES_PASSWORD", "rotate", True)
    assert "initialised with" in step.detail and "a-brand-new-password" not in step.detail


def test_a_rotation_that_cannot_be_applied_puts_the_old_container_back(project_dir):
    from cdb_ops.apply.phases import services

    engine = ScriptedEngine(answer=(2, 'FATAL:  role "somebody_else" does not exist\n'))
    _converged(project_dir, engine)
    old_id = engine.containers_["t_db"].id
    _set_env(project_dir, "POSTGRES_USER", "somebody_else")
    ctx = _phase_context(project_dir, engine)
    svc = ctx.desired.services["db"]
    assert services.converge_one(ctx, svc, "db") == "recreate"
    assert engine.containers_["t_db"].id != old_id
    with pytest.raises(ConfigError):
        services._rotate(ctx, svc, "db", ctx.plan.rotations["db"])
    assert engine.containers_["t_db"].id == old_id and engine.containers_["t_db"].running
    assert pending_rotations(ctx.project) == frozenset()  # the old container agrees with the volume
    assert [n for n in engine.containers_ if n.startswith("t_db")] == ["t_db"]  # nothing left aside


def test_a_rotation_an_interrupted_run_left_undone_is_planned_again(project_dir, engine):
    from cdb_ops.apply.rotate import mark_pending
    from cdb_ops.load.project import Project

    _converged(project_dir, engine)
    project = Project(project_dir)
    assert _rotations(project_dir, engine)[1] == []
    assert mark_pending(project, "db") == {"db"} == pending_rotations(project)
    rotations = _rotations(project_dir, engine, PlanOptions(pending_rotations=pending_rotations(project)))[1]
    assert len(rotations) == 1 and "stopped before it set the password" in rotations[0].reason
    assert mark_pending(project, "db", done=True) == frozenset() == pending_rotations(project)
    assert not (project.state_dir / "rotation-pending.json").exists()


def test_after_down_the_password_a_kept_volume_holds_is_known(project_dir, engine):
    """`down` (or --clean) records what the removed Postgres container was created with, against the
    volume's identity: a cold start onto that very volume sets no password — unless .env changed since,
    or the volume is another one of the same name."""
    from cdb_ops.apply.phases import cleanup
    from cdb_ops.apply.rotate import known_passwords
    from cdb_ops.load.playbook import load_runbook
    from cdb_ops.model.labels import LABEL_VOLUME_ID
    from cdb_ops.model.observed import VolumeFacts

    _converged(project_dir, engine)
    volume_id = engine.volumes_["t_data"].labels[LABEL_VOLUME_ID]
    assert len(volume_id) == 32  # random, set when the volumes phase created it
    ctx = _phase_context(project_dir, engine)
    ctx.plan = plan_stack(ctx.desired, ctx.observed, PlanOptions(clean=True))
    book, _ = load_runbook(ctx.project.playbook("rebuild"))
    cleanup.run(ctx, next(p for p in book.phases if p.name == "cleanup"))
    assert "t_db" not in engine.containers_
    known = known_passwords(ctx.project)
    assert set(known) == {"t_data"} and known["t_data"]["volume_id"] == volume_id
    assert OLD_PW not in (ctx.project.state_dir / "volume-passwords.json").read_text()
    assert _rotations(project_dir, engine, PlanOptions(known_passwords=known))[1] == []
    # without the record (another clone of the project): not known, set in place as before
    assert "not known" in _rotations(project_dir, engine)[1][0].reason
    # .env changed since the container was removed
    _set_env(project_dir, "POSTGRES_PASSWORD", "a-brand-new-password-9876543210")
    rotations = _rotations(project_dir, engine, PlanOptions(known_passwords=known))[1]
    assert len(rotations) == 1 and "POSTGRES_PASSWORD changed" in rotations[0].reason
    # a volume of the same name created by someone else: the record is not about it
    _set_env(project_dir, "POSTGRES_PASSWORD", OLD_PW)
    engine.volumes_["t_data"] = VolumeFacts("t_data", {**engine.volumes_["t_data"].labels, LABEL_VOLUME_ID: "other"})
    assert "not known" in _rotations(project_dir, engine, PlanOptions(known_passwords=known))[1][0].reason
