"""The alert rules' unit tests and Alertmanager's routing, checked by the real tools inside the real
images (issue 24 item 3): building images/prometheus runs `promtool test rules` over every rule, so a
broken rule fails the build; promtool inside the built image passes the shipped rules and fails a broken
one, naming the alert; amtool inside images/alertmanager accepts the shipped routing and refuses a route
to an unknown receiver.

The images are built here under test tags (the layers are shared with the stack's fallback images, so
after the first build this takes seconds):
    python3 -m pytest tests/integration/test_alert_rules.py -q
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import docker
import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS = REPO / "images" / "prometheus"
ALERTMANAGER = REPO / "images" / "alertmanager"
PROM_TAG = "cdb_alert_test/prometheus:rules"
AM_TAG = "cdb_alert_test/alertmanager:routes"


def _build(context: Path, tag: str) -> tuple[bool, str]:
    """(built?, the build's output) — the legacy builder's stream, as Docker 20.10 speaks it."""
    client = docker.from_env()
    out = []
    for chunk in client.api.build(path=str(context), tag=tag, rm=True, forcerm=True, decode=True):
        out.append(chunk.get("stream") or chunk.get("error") or "")
        if "error" in chunk:
            return False, "".join(out)
    return True, "".join(out)


def _run(image: str, command: list[str], mount: Path) -> tuple[int, str]:
    client = docker.from_env()
    container = client.containers.create(
        image, command=command, entrypoint=[], volumes={str(mount): {"bind": "/r", "mode": "ro"}}, network_mode="none"
    )
    try:
        container.start()
        code = container.wait(timeout=120)["StatusCode"]
        return code, container.logs().decode()
    finally:
        container.remove(force=True)


@pytest.fixture(scope="module")
def prometheus_image() -> str:
    built, out = _build(PROMETHEUS, PROM_TAG)
    assert built, out[-3000:]  # (from the cache when the rules are unchanged: test_a_broken_rule_... builds anew)
    return PROM_TAG


def _broken_copy(tmp_path: Path) -> Path:
    """images/prometheus with ServiceDown's threshold turned around: it fires on healthy services."""
    copy = tmp_path / "prometheus"
    shutil.copytree(PROMETHEUS, copy)
    rules = copy / "rules" / "cdb.rules.yml"
    text = rules.read_text()
    assert 'up{job=~"cdb_.*"} == 0' in text
    rules.write_text(text.replace('up{job=~"cdb_.*"} == 0', 'up{job=~"cdb_.*"} >= 0'))
    return copy


def test_promtool_passes_the_shipped_rules_inside_the_image(prometheus_image: str) -> None:
    code, out = _run(prometheus_image, ["sh", "-c", "cd /r/tests && promtool test rules *.test.yml"], PROMETHEUS)
    assert code == 0, out
    assert out.count("SUCCESS") == len(list((PROMETHEUS / "tests").glob("*.test.yml")))


def test_promtool_fails_a_broken_rule_inside_the_image(prometheus_image: str, tmp_path: Path) -> None:
    broken = _broken_copy(tmp_path)
    code, out = _run(prometheus_image, ["sh", "-c", "cd /r/tests && promtool test rules *.test.yml"], broken)
    assert code != 0, out
    assert re.search(r"FAILED:\s+alertname: ServiceDown", out), out


def test_a_broken_rule_fails_the_image_build(prometheus_image: str, tmp_path: Path) -> None:
    broken = _broken_copy(tmp_path)
    built, out = _build(broken, "cdb_alert_test/prometheus:broken")
    assert not built, "the image built although a rule's unit test fails"
    assert "alertname: ServiceDown" in out, out[-3000:]


def test_amtool_checks_the_routing_inside_the_image(tmp_path: Path) -> None:
    built, out = _build(ALERTMANAGER, AM_TAG)
    assert built, out[-3000:]
    code, out = _run(AM_TAG, ["amtool", "check-config", "/r/alertmanager.yml"], ALERTMANAGER)
    assert code == 0 and "SUCCESS" in out, out
    broken = tmp_path / "am"
    broken.mkdir()
    text = (ALERTMANAGER / "alertmanager.yml").read_text()
    (broken / "alertmanager.yml").write_text(text.replace("receiver: watchdog", "receiver: nobody_listens"))
    code, out = _run(AM_TAG, ["amtool", "check-config", "/r/alertmanager.yml"], broken)
    assert code != 0 and "nobody_listens" in out, out
