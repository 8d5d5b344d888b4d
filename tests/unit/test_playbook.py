"""Playbook loading refuses bad input with the file, the line and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from cdb_ops.errors import ConfigError, ExitCode
from cdb_ops.load.playbook import load_runbook, load_stack
from cdb_ops.load.specs import parse_duration
from tests.unit.conftest import STACK

REPO = Path(__file__).resolve().parents[2]


def _stack(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "stack.yaml"
    p.write_text(text)
    return p


def _error(tmp_path: Path, text: str) -> ConfigError:
    with pytest.raises(ConfigError) as exc:
        load_stack(_stack(tmp_path, text))
    assert exc.value.exit_code == ExitCode.CONFIG
    return exc.value


def test_shipped_playbooks_load():
    book, stack = load_runbook(REPO / "playbooks" / "rebuild.yaml")
    assert book.name == "rebuild"
    assert stack.system == "claire_de_binare"
    assert stack.network.name == "cdb_network"
    assert stack.services["postgres"].container == "cdb_postgres"
    assert all(p.bind is None for s in stack.services.values() for p in s.ports)  # so the 127.0.0.1 default applies
    assert stack.bind == "127.0.0.1"


def test_unknown_key_names_line_and_suggests(tmp_path):
    err = _error(tmp_path, STACK.replace('    ports: ["18001:8001"]', '    prots: ["18001:8001"]'))
    assert "stack.yaml:26" in err.message
    assert "unknown key 'services.app.prots'" in err.message
    assert "did you mean 'ports'?" in err.message


def test_wrong_type_names_line(tmp_path):
    text = STACK.replace('    ports: ["15432:5432"]', '    ports: ["15432:abc"]')
    err = _error(tmp_path, text)
    assert "stack.yaml:16" in err.message
    assert "services.db.ports[0]" in err.message and "host:container" in err.message


def test_wrong_priority_lists_the_choices(tmp_path):
    err = _error(tmp_path, STACK.replace("priority: high", "priority: urgent"))
    assert "stack.yaml:21" in err.message
    assert "'critical', 'high', 'medium' or 'optional'" in err.message


def test_unknown_dependency(tmp_path):
    err = _error(tmp_path, STACK.replace("depends_on: {db: healthy}", "depends_on: {dbb: healthy}"))
    assert "stack.yaml:25" in err.message
    assert "depends on unknown service 'dbb'" in err.message
    assert "use one of: app, db, extra" in err.remedy


def test_dependency_cycle(tmp_path):
    text = STACK.replace(
        "    ready: {probe: docker}\n  app:", "    depends_on: {app: started}\n    ready: {probe: docker}\n  app:"
    )
    err = _error(tmp_path, text)
    assert "dependency cycle" in err.message
    assert "app" in err.message and "db" in err.message
    assert "remove one depends_on" in err.remedy


def test_duplicate_host_port(tmp_path):
    err = _error(tmp_path, STACK.replace('ports: ["18001:8001"]', 'ports: ["15432:8001"]'))
    assert "host port 15432 is published by both 'db' and 'app'" in err.message
    assert "stack.yaml:26" in err.message


def test_duplicate_key_is_refused(tmp_path):
    err = _error(tmp_path, STACK.replace("    role: signal\n", "    role: signal\n    role: bus\n"))
    assert "key 'role' appears twice" in err.message
    assert "stack.yaml:21" in err.message


def test_yaml_syntax_error_has_line(tmp_path):
    err = _error(tmp_path, STACK.replace('ports: ["18001:8001"]', 'ports: ["18001:8001"'))
    assert "YAML syntax error" in err.message
    assert "stack.yaml:27" in err.message and "flow sequence started on line 26" in err.message


def test_undeclared_volume(tmp_path):
    err = _error(tmp_path, STACK.replace('volumes: ["t_data:/data"]', 'volumes: ["t_dta:/data"]'))
    assert "undeclared volume 't_dta'" in err.message
    assert "stack.yaml:15" in err.message


def test_several_problems_reported_at_once(tmp_path):
    text = STACK.replace("depends_on: {db: healthy}", "depends_on: {nope: healthy}").replace(
        'ports: ["18001:8001"]', 'ports: ["15432:8001"]'
    )
    err = _error(tmp_path, text)
    assert "2 problem(s)" in err.message


def test_secret_in_env_is_refused(tmp_path):
    err = _error(
        tmp_path,
        STACK.replace(
            'env: {POSTGRES_DB: "${POSTGRES_DB}"}', 'env: {POSTGRES_DB: "${POSTGRES_DB}", POSTGRES_PASSWORD: x}'
        ),
    )
    assert "listed both in env and secrets" in err.message


def test_not_a_mapping(tmp_path):
    err = _error(tmp_path, "- just\n- a list\n")
    assert "must be a YAML mapping" in err.message


def test_runbook_unknown_service_and_duplicate_phase(tmp_path):
    (tmp_path / "stack.yaml").write_text(STACK)
    book = tmp_path / "rebuild.yaml"
    book.write_text(
        "version: 1\nname: x\nphases:\n  - {name: a, kind: services, services: [dbx]}\n  - {name: a, kind: network}\n"
    )
    with pytest.raises(ConfigError) as exc:
        load_runbook(book)
    assert "rebuild.yaml:4" in exc.value.message and "unknown service 'dbx'" in exc.value.message
    assert "rebuild.yaml:5" in exc.value.message and "phase name 'a' is used twice" in exc.value.message


def test_runbook_unknown_phase_kind(tmp_path):
    (tmp_path / "stack.yaml").write_text(STACK)
    book = tmp_path / "rebuild.yaml"
    book.write_text("version: 1\nname: x\nphases:\n  - {name: a, kind: teleport}\n")
    with pytest.raises(ConfigError) as exc:
        load_runbook(book)
    assert "rebuild.yaml:4" in exc.value.message and "'cleanup', 'network'" in exc.value.message


@pytest.mark.parametrize(("text", "seconds"), [("5s", 5.0), ("500ms", 0.5), ("2m", 120.0), (30, 30.0), ("1.5s", 1.5)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["5 minutes", "-1", True, "abc"])
def test_bad_durations(bad):
    with pytest.raises(ValueError):
        parse_duration(bad)
