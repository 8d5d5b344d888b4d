"""Log caps and hardening (issue 23): bad values refused with file, line and fix; the layers (stack
default, role, service) resolved key by key; a changed cap recreates exactly the containers it applies
to; both exports carry the settings and name what a swarm cannot express; `doctor` reads the posture
of each container and names what deviates, with the fix."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from cdb_ops.checks.posture import posture
from cdb_ops.errors import ConfigError, ExitCode
from cdb_ops.load import hardening as h
from cdb_ops.load.desired import resolve
from cdb_ops.load.playbook import load_runbook, load_stack
from cdb_ops.load.project import Project
from cdb_ops.load.settings import load_settings
from cdb_ops.views.export import compose_export
from cdb_ops.views.export_swarm import swarm_export
from tests.helpers import make_project
from tests.unit.conftest import ENV, STACK
from tests.unit.fake_engine import FakeEngine
from tests.unit.test_planner import _desired as _planner_desired
from tests.unit.test_planner import _plan, _rebuild

REPO = Path(__file__).resolve().parents[2]
SHIPPED = (REPO / "playbooks" / "stack.yaml").read_text()

HARDENED = STACK.replace(
    "volumes:\n  t_data:",
    """logging: {driver: local, max_size: 10m, max_file: 3}
hardening:
  default: {cap_drop: [ALL], no_new_privileges: true, read_only: true, tmpfs: {/tmp: 16m}, pids_limit: 64}
  roles:
    database: {pids_limit: 256}
volumes:
  t_data:""",
).replace("    ready: {probe: docker}\n  app:", "    ready: {probe: docker}\n    mem_limit: 256m\n  app:")
HARDENED = HARDENED.replace(
    '    ports: ["18001:8001"]\n', '    ports: ["18001:8001"]\n    mem_limit: 160m\n    user: "10001"\n'
)
HARDENED = HARDENED.replace("    image: t_extra:1\n", "    image: t_extra:1\n    mem_limit: 64m\n")


def _error(tmp_path: Path, text: str) -> ConfigError:
    path = tmp_path / "stack.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_stack(path)
    assert exc.value.exit_code == ExitCode.CONFIG
    return exc.value


def _line(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), start=1) if needle in line)


def test_the_shipped_playbook_hardens_every_service_and_caps_every_log(tmp_path):
    stack = load_stack(REPO / "playbooks" / "stack.yaml")
    root = make_project(tmp_path / "p", "cdb_unit", prefix="cdbu_", init=False)
    (root / ".env").write_text(ENV + "GRAFANA_PASSWORD=unit-test-grafana-0123456789\n")
    project = Project(root)
    desired = resolve(stack, load_settings(project.env_file), project, ["core", "replay", "monitoring"])
    assert set(desired.services) == set(stack.services)
    for name, svc in desired.services.items():
        c = svc.container
        assert c.logging is not None and c.logging.driver == "local", name
        assert c.logging.options == {"max-size": "10m", "max-file": "3"}, name
        h = c.hardening
        assert h is not None and h.cap_drop == ("ALL",) and h.cap_add == (), name
        assert h.security_opt == ("no-new-privileges:true",) and h.read_only, name
        assert h.pids_limit and c.mem_limit, name
        assert h.tmpfs, name  # somewhere to write, in memory the limit bounds
    pg, rd = desired.services["postgres"].container, desired.services["redis"].container
    assert pg.user == "70:70" and rd.user == "999:1000"  # their own users: no capability needed
    assert "/tmp" not in (pg.hardening.tmpfs if pg.hardening else {})  # a volume: backups stage dumps there
    assert any(m.target == "/tmp" and m.kind == "volume" for m in pg.mounts)
    assert "--maxmemory 128mb --maxmemory-policy noeviction" in " ".join(rd.command or ())
    core = [s.container.mem_limit for s in desired.services.values() if "core" in s.spec.profiles]
    assert sum(int(m[:-1]) for m in core if m) <= 1536  # the memo: core RAM under 1.5 GB


def test_layers_apply_key_by_key_stack_then_role_then_service(tmp_path):
    text = HARDENED.replace(
        "    ready: {probe: docker}\n    mem_limit: 256m",
        "    ready: {probe: docker}\n    mem_limit: 256m\n"
        "    hardening: {cap_add: [chown]}\n    logging: {max_size: 50m}",
    )
    path = tmp_path / "stack.yaml"
    path.write_text(text)
    stack = load_stack(path)
    db = h.hardening(h.effective(stack.hardening, "database", stack.services["db"].hardening))
    app = h.hardening(h.effective(stack.hardening, "signal", stack.services["app"].hardening))
    assert db.cap_add == ("CHOWN",) and db.cap_drop == ("ALL",) and db.pids_limit == 256  # service, default, role
    assert app.cap_add == () and app.pids_limit == 64 and app.tmpfs == {"/tmp": "size=16m"}
    assert h.log_config(stack.logging, stack.services["db"].logging).options == {"max-size": "50m", "max-file": "3"}
    assert h.log_config(stack.logging, None).driver == "local"


# (id, old text, new text, line needle, message part, fix part)
BAD = [
    ("log-driver", "driver: local, max_size", "driver: syslog, max_size", "driver: syslog", "logging.driver", "one of"),
    ("log-size", "max_size: 10m", "max_size: 10 MB", "max_size: 10 MB", "'10 MB' is not a size", "e.g. 10m"),
    ("log-size-zero", "max_size: 10m", "max_size: 0m", "max_size: 0m", "cap nothing", "at least 1k"),
    ("log-files", "max_file: 3", "max_file: 0", "max_file: 0", "logging.max_file", "within the bound"),
    ("capability", "cap_drop: [ALL]", "cap_drop: [CAP_CHWON]", "CAP_CHWON", "unknown capability", "'CHOWN'"),
    ("pids", "pids_limit: 256", "pids_limit: 0", "pids_limit: 0", "roles.database.pids_limit", "within the bound"),
    ("tmpfs-path", "tmpfs: {/tmp: 16m}", "tmpfs: {tmp: 16m}", "tmpfs: {tmp", "not a mount point", "absolute path"),
    ("tmpfs-size", "tmpfs: {/tmp: 16m}", "tmpfs: {/tmp: lots}", "/tmp: lots", "'lots' is not a size", "e.g. 10m"),
    ("unknown-key", "read_only: true", "readonly: true", "readonly", "unknown key", "did you mean 'read_only'?"),
    ("unknown-role", "    database: {pids", "    databse: {pids", "databse", "unknown role 'databse'", "database"),
    ("add-all", "cap_drop: [ALL],", "cap_drop: [ALL], cap_add: [ALL],", "cap_add: [ALL]", "every capability", "only"),
]


@pytest.mark.parametrize(("old", "new", "needle", "message", "fix"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_log_and_hardening_values_are_refused_with_line_and_fix(tmp_path, old, new, needle, message, fix):
    assert old in HARDENED
    text = HARDENED.replace(old, new, 1)
    err = _error(tmp_path, text)
    assert f"stack.yaml:{_line(text, needle)}:" in err.message, err.message
    assert message in err.message, err.message
    assert fix in (err.remedy or "") + err.message, (err.message, err.remedy)


def test_a_tmpfs_over_a_volume_and_a_tmpfs_without_memory_limit_are_refused(tmp_path):
    text = HARDENED.replace("    database: {pids_limit: 256}", "    database: {pids_limit: 256, tmpfs: {/data: 1m}}")
    err = _error(tmp_path, text)
    assert "both a volume and a tmpfs at /data" in err.message and "remove /data" in err.message + err.remedy
    err = _error(tmp_path, HARDENED.replace("    mem_limit: 160m\n", ""))
    assert "tmpfs mounts but no mem_limit" in err.message and "mem_limit:" in err.message + err.remedy
    assert f"stack.yaml:{_line(HARDENED, '  app:')}:" in err.message


def test_the_shipped_playbook_refuses_a_bad_cap_through_the_cli_path(tmp_path):
    """The real playbook, one value broken: the error names its line in the real file."""
    text = SHIPPED.replace("  max_size: 10m", "  max_size: ten", 1)
    err = _error(tmp_path, text)
    assert (
        f"stack.yaml:{_line(text, 'max_size: ten')}:" in err.message
        and "fix: write a whole number with k, m or g, e.g. 10m" in err.message
    )


@pytest.fixture
def hardened(tmp_path: Path) -> Path:
    from tests.unit.conftest import RUNBOOK

    (tmp_path / "playbooks").mkdir()
    (tmp_path / "playbooks" / "stack.yaml").write_text(HARDENED)
    (tmp_path / "playbooks" / "rebuild.yaml").write_text(RUNBOOK)
    for ctx in ("images/db", "images/app"):
        (tmp_path / ctx).mkdir(parents=True)
        (tmp_path / ctx / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "extra.yml").write_text("a: 1\n")
    (tmp_path / ".env").write_text(ENV)
    return tmp_path


def test_a_changed_log_cap_or_hardening_recreates_exactly_the_containers_it_applies_to(hardened):
    engine = FakeEngine(pullable={"postgres:15-alpine"})
    _rebuild(hardened, engine)
    stack = hardened / "playbooks" / "stack.yaml"
    stack.write_text(HARDENED.replace("max_size: 10m", "max_size: 20m"))
    plan = _plan(engine, _planner_desired(hardened)[-1])
    assert sorted((c.name, c.reason) for c in plan.pending) == [
        ("t_app", "changed: logging"),
        ("t_db", "changed: logging"),
    ]
    _rebuild(hardened, engine)
    stack.write_text(HARDENED.replace("max_size: 10m", "max_size: 20m").replace("pids_limit: 256", "pids_limit: 300"))
    plan = _plan(engine, _planner_desired(hardened)[-1])
    assert [(c.name, c.reason) for c in plan.pending] == [("t_db", "changed: hardening")]  # role database only


def test_doctor_names_each_deviation_with_its_fix(hardened):
    engine = FakeEngine(pullable={"postgres:15-alpine"})
    _rebuild(hardened, engine)
    desired = _planner_desired(hardened)[-1]
    found = {f.name: f for f in posture(engine, desired)}
    assert found["posture t_app"].verdict == "ok", found["posture t_app"]
    # t_db runs as the image's default user (root): below the baseline, and the fix is the playbook
    db = found["posture t_db"]
    assert db.verdict == "problem" and "user (image default: root)" in db.diagnosis
    assert f"stack.yaml:{_line(HARDENED, 'hardening:')}" in db.fix
    # a container created before the hardening (as by an older cdb-ops): every item, fix `rebuild`
    old = engine.containers_["t_app"]
    assert old.posture is not None
    engine.containers_["t_app"] = replace(
        old,
        posture=replace(
            old.posture,
            cap_drop=(),
            security_opt=(),
            read_only=False,
            pids_limit=0,
            log_driver="json-file",
            log_options={},
        ),
    )
    app = {f.name: f for f in posture(engine, desired)}["posture t_app"]
    assert app.verdict == "problem" and "rebuild" in app.fix
    for item in ("capabilities dropped", "no-new-privileges", "read-only root filesystem", "pids limit", "log cap"):
        assert item in app.facts["deviations"], item
    assert "memory limit" not in app.facts["deviations"]


def test_both_exports_carry_the_caps_and_the_swarm_notes_name_what_it_cannot_express(tmp_path):
    root = make_project(tmp_path / "p", "cdb_unit", prefix="cdbu_", init=False)
    (root / ".env").write_text(ENV + "CDB_FEED=replay\n")
    project = Project(root)
    _, stack = load_runbook(project.playbook("rebuild"))
    desired = resolve(stack, load_settings(project.env_file), project)
    compose = compose_export(desired, tmp_path).doc["services"]
    swarm = swarm_export(desired, tmp_path)
    notes = "\n".join(swarm.notes)
    for name, svc in desired.services.items():
        c, s = compose[name], swarm.doc["services"][name]
        for doc in (c, s):
            assert doc["logging"] == {"driver": "local", "options": {"max-size": "10m", "max-file": "3"}}, name
            assert doc["cap_drop"] == ["ALL"] and doc["read_only"] is True, name
            assert "cap_add" not in doc, name
        assert c["security_opt"] == ["no-new-privileges:true"] and c["pids_limit"] > 0, name
        assert c["tmpfs"] == [f"{p}:{o}" for p, o in (svc.container.hardening.tmpfs or {}).items()], name
        assert "security_opt" not in s and "tmpfs" not in s and "pids_limit" not in s, name  # a swarm drops them
        assert s["deploy"]["resources"]["limits"]["pids"] == c["pids_limit"], name
        tmpfs = [v for v in s["volumes"] if v["type"] == "tmpfs"]
        assert tmpfs and all(v["tmpfs"]["size"] > 0 for v in tmpfs), name
    assert "security_opt no-new-privileges:true" in notes and "NOT EXPRESSIBLE" in notes and "41371" in notes
    assert compose["postgres"]["user"] == "70:70" and compose["postgres"]["tmpfs"] == ["/var/run/postgresql:size=1m"]
    assert swarm.doc["services"]["postgres"]["deploy"]["resources"]["limits"] == {"memory": "384M", "pids": 256}
