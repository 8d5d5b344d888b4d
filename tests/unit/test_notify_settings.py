"""cdb-ops' side of the notifier: NOTIFY_URLS is a secret that is never generated, never echoed and reaches
the container only as a file (an empty one when unset); status's notification lines; validate's verdict
on a receipt; init's one hint."""

from __future__ import annotations

from pathlib import Path

import pytest

from cdb_ops.checks.notify import _verdict, destination_hint, direct_payload, notify_lines
from cdb_ops.errors import ConfigError
from cdb_ops.load.desired import DesiredStack, resolve
from cdb_ops.load.playbook import load_runbook
from cdb_ops.load.project import Project
from cdb_ops.load.settings import load_settings, render_env_from_example
from tests.helpers import make_project
from tests.unit.conftest import ENV

REPO = Path(__file__).resolve().parents[2]
URLS = "tgram://123456789:AAE-secret-bot-token/-1001234,json://receiver:9000/hook-secret-path"


def _desired(tmp_path: Path, extra: str = "") -> DesiredStack:
    root = make_project(tmp_path / "p", "cdb_unit", prefix="cdbu_", init=False)
    (root / ".env").write_text(ENV + "CDB_FEED=replay\n" + extra)
    project = Project(root)
    _, stack = load_runbook(project.playbook("rebuild"))
    return resolve(stack, load_settings(project.env_file), project)


def test_unset_urls_become_an_empty_secret_file_and_the_stack_still_resolves(tmp_path: Path):
    notifier = _desired(tmp_path).services["notifier"]
    # a line end only: "none" to the notifier, and not empty (Swarm refuses an empty secret)
    assert notifier.secret_files["notify_urls"] == b"\n" and notifier.secret_files["notify_heartbeat_url"] == b"\n"
    env = notifier.container.env
    assert env["NOTIFY_URLS_FILE"] == "/run/secrets/notify_urls" and "NOTIFY_URLS" not in env
    assert "core" in notifier.spec.profiles and notifier.spec.role == "notify"


def test_urls_reach_the_container_only_as_a_file(tmp_path: Path):
    desired = _desired(tmp_path, f"NOTIFY_URLS={URLS}\n")
    notifier = desired.services["notifier"]
    assert notifier.secret_files["notify_urls"] == URLS.encode()
    for svc in desired.services.values():  # in no container's environment, labels or command
        text = repr((svc.container.env, svc.container.labels, svc.container.command))
        assert "secret-bot-token" not in text and "hook-secret-path" not in text


def test_a_changed_url_changes_the_notifiers_config_hash_only(tmp_path: Path):
    from cdb_ops.load.desired import config_parts

    def parts(d: DesiredStack, name: str) -> dict[str, str]:
        svc = d.services[name]
        return config_parts(svc.container, svc.secret_files, svc.file_digests)

    a = _desired(tmp_path / "a", "NOTIFY_URLS=json://rx:9000/a\n")
    b = _desired(tmp_path / "b", "NOTIFY_URLS=json://rx:9000/b\n")
    assert parts(a, "notifier")["secrets"] != parts(b, "notifier")["secrets"]
    assert parts(a, "risk")["secrets"] == parts(b, "risk")["secrets"]  # (mounts differ: two project folders)
    assert parts(a, "risk")["env"] == parts(b, "risk")["env"]


def test_a_bad_url_is_refused_naming_its_position_never_its_text(tmp_path: Path):
    with pytest.raises(ConfigError) as err:
        _desired(tmp_path, "NOTIFY_URLS=json://ok:1/x,secret-bot-token-without-scheme\n")
    text = f"{err.value.message} {err.value.remedy}"
    assert "NOTIFY_URLS" in text and "item 2" in text and "secret-bot-token" not in text


def test_every_url_is_redacted_on_its_own(tmp_path: Path):
    from cdb_ops.redact import Redactor

    desired = _desired(tmp_path, f"NOTIFY_URLS={URLS}\n")
    redact = Redactor(load_settings(desired.project.env_file).secret_values())
    assert redact("sent to json://receiver:9000/hook-secret-path") == "sent to ***"
    assert "secret-bot-token" not in redact(f"all: {URLS}")


def test_init_never_generates_the_traders_own_urls():
    text = render_env_from_example((REPO / ".env.example").read_text(), ["NOTIFY_URLS", "POSTGRES_PASSWORD"])
    lines = dict(ln.split("=", 1) for ln in text.splitlines() if "=" in ln and not ln.startswith("#"))
    assert lines["NOTIFY_URLS"] == "" and lines["NOTIFY_HEARTBEAT_URL"] == "" and len(lines["POSTGRES_PASSWORD"]) > 30


def test_init_and_validate_say_how_to_add_a_destination():
    hint = destination_hint({"NOTIFY_URLS": ""})
    assert hint is not None and "NOTIFY_URLS=" in hint and "cdb-ops rebuild" in hint
    assert destination_hint({"NOTIFY_URLS": "json://a:1/b"}) is None


def test_status_lines():
    assert notify_lines(None) == []
    assert "not running" in notify_lines({"running": False})[0]
    assert "no notification destination" in notify_lines({"running": True, "destinations": 0, "sent": 0})[0]
    lines = notify_lines(
        {
            "running": True,
            "destinations": 2,
            "sent": 5,
            "failed": 3,
            "dropped": 1,
            "failing": ["json#2"],
            "hung": [],
            "last_errors": {"json#2": "error=500"},
            "heartbeat": {"configured": True, "failures": 0},
        }
    )
    assert lines[0] == "notifications: 2 destination(s), 5 sent, 3 failed, 1 dropped"
    assert lines[1].startswith("  json#2 FAILING: error=500")


def test_validate_verdict_on_a_receipt():
    ok = {"destinations": {"json#1": {"ok": True}}, "expected": ["json#1"], "via": "alertmanager"}
    assert _verdict(ok, "hops", {}).status == "pass"
    half = {"destinations": {"json#1": {"ok": True}, "json#2": {"ok": False, "error": "500"}}, "expected": []}
    assert _verdict(half, "hops", {}).status == "warn"
    assert _verdict({"destinations": {}, "expected": ["json#1"]}, "hops", {}).status == "fail"


def test_direct_payload_is_an_alertmanager_v4_webhook():
    p = direct_payload("abc")
    assert p["version"] == "4" and p["alerts"][0]["labels"]["test_id"] == "abc"
    assert p["alerts"][0]["labels"]["alertname"] == "CdbValidateAlertPath"
