"""The exported Compose / stack documents, built from the real playbooks (no Docker): each container gets
exactly the env cdb-ops gives it, migrations run as a one-shot service the trading services wait for, and
the swarm file keeps no key `docker stack deploy` ignores — each one left out is named in the notes."""

from __future__ import annotations

from pathlib import Path

import pytest

from cdb_ops.load.desired import DesiredStack, resolve
from cdb_ops.load.playbook import load_runbook
from cdb_ops.load.project import Project
from cdb_ops.load.settings import load_settings
from cdb_ops.views.export import MIGRATE, build_jobs, compose_export
from cdb_ops.views.export_swarm import swarm_export
from tests.helpers import make_project
from tests.unit.conftest import ENV

TRADING = ("screener", "signal", "risk", "execution")
# keys `docker stack deploy` ignores or refuses (docs: "Compose file deploy reference", stack deploy)
SWARM_IGNORED = {"container_name", "build", "depends_on", "mem_limit", "restart", "profiles", "cpus", "env_file"}


def _desired(tmp_path: Path, feed: str) -> DesiredStack:
    root = make_project(tmp_path / "p", "cdb_unit", prefix="cdbu_", init=False)
    (root / ".env").write_text(ENV + f"CDB_FEED={feed}\n")
    project = Project(root)
    _, stack = load_runbook(project.playbook("rebuild"))
    return resolve(stack, load_settings(project.env_file), project)


@pytest.mark.parametrize("feed", ["replay", "live"])
def test_every_container_gets_exactly_the_env_cdb_ops_gives_it(tmp_path: Path, feed: str):
    desired = _desired(tmp_path, feed)
    for doc in (compose_export(desired, tmp_path).doc, swarm_export(desired, tmp_path).doc):
        for name, svc in desired.services.items():
            expected = {k: v.replace("$", "$$") for k, v in svc.container.env.items()}
            assert doc["services"][name].get("environment", {}) == expected, name
        for name in TRADING:
            assert doc["services"][name]["environment"]["CDB_FEED"] == feed  # the book it trades in


def test_compose_runs_the_migrations_once_before_the_trading_services(tmp_path: Path):
    desired = _desired(tmp_path, "replay")
    doc = compose_export(desired, tmp_path / "out").doc
    migrate = doc["services"][MIGRATE]
    assert migrate["restart"] == "no" and migrate["image"] == "cdbu_migrate:latest"
    assert migrate["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert migrate["volumes"] == ["../p/schema:/schema:ro"]  # the project's own files: cdb-ops' checksums
    assert migrate["environment"]["POSTGRES_PASSWORD_FILE"] == "/run/secrets/postgres_password"
    for name in TRADING:
        assert doc["services"][name]["depends_on"][MIGRATE] == {"condition": "service_completed_successfully"}
    assert "depends_on" not in doc["services"]["market_replay"] or MIGRATE not in doc["services"]["market_replay"]
    assert {j.service for j in build_jobs(desired, offline=False)} == {
        *TRADING,
        "market_replay",
        "backup",
        "notifier",
        MIGRATE,
    }
    assert {j.tag for j in build_jobs(desired, offline=True)} >= {"cdb_ops/postgres:15-fallback"}


def test_swarm_file_keeps_no_ignored_key_and_names_each_one_left_out(tmp_path: Path):
    desired = _desired(tmp_path, "replay")
    result = swarm_export(desired, tmp_path, offline=True)
    doc, notes = result.doc, "\n".join(result.notes)
    for name, svc in doc["services"].items():
        assert not (SWARM_IGNORED & set(svc)), (name, SWARM_IGNORED & set(svc))
        assert svc["deploy"]["replicas"] == 1 and svc["deploy"]["endpoint_mode"] == "dnsrr"
        assert all(p["mode"] == "host" for p in svc.get("ports", []))
        assert all(Path(v["source"]).is_absolute() for v in svc.get("volumes", []) if v["type"] == "bind")
    for key in ("build", "container_name", "depends_on", "mem_limit", "restart", "ports bound to 127.0.0.1"):
        assert key in notes, key
    assert doc["services"]["postgres"]["image"] == "cdb_ops/postgres:15-fallback"
    assert doc["services"]["postgres"]["deploy"]["placement"] == {"constraints": ["node.role == manager"]}
    assert doc["services"]["execution"]["deploy"]["resources"] == {"limits": {"memory": "160M", "pids": 64}}
    assert doc["services"]["execution"]["deploy"]["restart_policy"]["condition"] == "any"
    assert doc["networks"]["cdbu_network"] | {"labels": None} == {
        "name": "cdbu_network",
        "driver": "overlay",
        "attachable": True,
        "labels": None,
    }
    migrate = doc["services"][MIGRATE]
    assert migrate["deploy"]["restart_policy"]["condition"] == "on-failure"  # runs once
    shipped = sorted(p.name for p in (desired.project.schema_dir).glob("*.sql"))
    assert sorted(Path(c["target"]).name for c in migrate["configs"]) == shipped
    assert set(doc["configs"]) == {c["source"] for c in migrate["configs"]}
    # the notifier's URLs are secrets too (empty files when .env sets none)
    assert set(doc["secrets"]) == {"postgres_password", "redis_password", "notify_urls", "notify_heartbeat_url"}
    assert all(Path(s["file"]).is_absolute() for s in doc["secrets"].values())


def test_a_changed_migration_gets_a_new_swarm_config_name(tmp_path: Path):
    """Swarm configs are immutable: a new content must come under a new name, or deploy refuses it."""
    desired = _desired(tmp_path, "replay")
    before = swarm_export(desired, tmp_path).doc["configs"]
    last = sorted(desired.project.schema_dir.glob("*.sql"))[-1]
    last.write_text(last.read_text() + "\n-- a comment changes the checksum too\n")
    after = swarm_export(desired, tmp_path).doc["configs"]
    changed = [k for k in before if before[k]["name"] != after[k]["name"]]
    assert changed == [f"schema_{last.name[:3]}"]
