"""The alert rules and their routing, checked without Docker (promtool runs them at image build and in
tests/integration/test_alert_rules.py):

- every metric a rule names is one the services export (the dashboard check's extraction, plus the
  series of cdb_common.metrics' cgroup collector) or one Prometheus/the process collector makes;
- every ALERT_* key a rule reads is in cdb_common.envrules (and reaches every service in the playbook);
- every rule has a promtool unit test that makes it fire, and a documented runbook entry;
- Alertmanager's routes and inhibitions name alerts that exist;
- the cgroup reader understands v1 and v2 and reports no limit as none.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from cdb_common import envrules
from cdb_common.cgroupmem import read_memory

from tests.unit.test_monitoring_assets import exported_metrics, known_series, parse_promql

ROOT = Path(__file__).resolve().parents[2]
RULES_DIR = ROOT / "images" / "prometheus" / "rules"  # every *.yml there is loaded by prometheus.yml
TESTS = ROOT / "images" / "prometheus" / "tests"
ALERTMANAGER = ROOT / "images" / "alertmanager" / "alertmanager.yml"
DOC = ROOT / "docs" / "alerting.md"
METRICS_PY = ROOT / "images" / "common" / "cdb_common" / "metrics.py"

# series of the custom collector in cdb_common/metrics.py (not Counter/Gauge calls the extraction finds)
COLLECTOR = {
    "cdb_container_memory_usage_bytes": set(),
    "cdb_container_memory_limit_bytes": set(),
    "cdb_container_oom_kills_total": set(),
}


def rules() -> list[dict[str, Any]]:
    out = []
    for path in sorted(RULES_DIR.glob("*.yml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        out += [r for g in doc["groups"] for r in g["rules"]]
    return out


def alert_names() -> set[str]:
    return {r["alert"] for r in rules()}


def test_collector_series_are_the_ones_metrics_py_yields() -> None:
    source = METRICS_PY.read_text(encoding="utf-8")
    for name in COLLECTOR:
        assert f'"{name.removesuffix("_total")}"' in source, name


def test_every_rule_names_exported_metrics_and_labels() -> None:
    known = known_series(exported_metrics()) | COLLECTOR
    for rule in rules():
        q = parse_promql(rule["expr"])
        unknown = q.metrics - known.keys() - {"time", "vector"}
        assert not unknown, f"{rule['alert']}: {sorted(unknown)} exported by no service"
        targets = {"job", "instance", "role"}  # what prometheus.yml gives every scraped series
        for selected, matchers in q.selectors:
            on_series = known.get(selected or "", set()) | targets
            for label in matchers:
                assert label in on_series, f"{rule['alert']}: label {label!r} is not on {selected}"


def test_every_threshold_key_is_an_env_rule_every_service_gets() -> None:
    read = set()
    for rule in rules():
        read |= set(re.findall(r'key="(ALERT_[A-Z_]+)"', rule["expr"]))
    assert read == set(envrules.ALERT_KEYS), "a rule reads an unknown key, or a key is read by no rule"
    stack = yaml.safe_load((ROOT / "playbooks" / "stack.yaml").read_text(encoding="utf-8"))
    for name, svc in stack["services"].items():
        if "build" in svc:  # our Python services (cdb_common) export the thresholds; fallback builds do not
            assert set(envrules.ALERT_KEYS) <= set(svc.get("env", {})), f"{name} is not given the ALERT_* keys"


def _fired_in_tests() -> set[str]:
    fired = set()
    for path in TESTS.glob("*.test.yml"):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        loaded = {f"../rules/{p.name}" for p in RULES_DIR.glob("*.yml")}
        assert doc["rule_files"] and set(doc["rule_files"]) <= loaded, path.name
        for test in doc["tests"]:
            for case in test.get("alert_rule_test", []):
                if case.get("exp_alerts"):
                    fired.add(case["alertname"])
    return fired


def test_every_rule_has_a_unit_test_that_makes_it_fire() -> None:
    missing = alert_names() - _fired_in_tests()
    assert not missing, f"rules without a promtool test that fires them: {sorted(missing)}"


def test_every_rule_is_labelled_and_documented() -> None:
    doc = DOC.read_text(encoding="utf-8")
    for rule in rules():
        name = rule["alert"]
        assert rule["labels"]["severity"] in ("critical", "warning", "none"), name
        assert rule["annotations"]["runbook"] == f"docs/alerting.md#{name.lower()}", name
        assert re.search(rf"^### {name}\s*$", doc, re.M), f"docs/alerting.md has no section for {name}"


def test_alertmanager_routes_and_inhibitions_name_real_alerts() -> None:
    am = yaml.safe_load(ALERTMANAGER.read_text(encoding="utf-8"))
    names = alert_names()
    receivers = {r["name"] for r in am["receivers"]}
    route = am["route"]
    assert route["receiver"] in receivers
    for sub in route["routes"]:
        assert sub["receiver"] in receivers
    watchdog = next(r for r in route["routes"] if r["matchers"] == ['alertname="Watchdog"'])
    assert watchdog["receiver"] == "watchdog" and "Watchdog" in names
    for inhibit in am["inhibit_rules"]:
        for m in inhibit["source_matchers"] + inhibit["target_matchers"]:
            key, value = re.fullmatch(r'(\w+)=~?"([^"]*)"', m).groups()  # type: ignore[union-attr]
            if key == "alertname":
                for alt in value.split("|"):
                    assert alt in names, f"inhibit rule names unknown alert {alt!r}"
    urls = [w["url"] for r in am["receivers"] for w in r.get("webhook_configs", [])]
    assert urls == ["http://notifier:8030/alerts", "http://notifier:8030/watchdog"]


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_cgroup_memory_is_read_from_either_hierarchy(tmp_path: Path, version: str) -> None:
    if version == "v1":
        mem = tmp_path / "memory"
        mem.mkdir()
        (mem / "memory.usage_in_bytes").write_text("52428800\n")
        (mem / "memory.stat").write_text("cache 100\ntotal_inactive_file 2097152\n")
        (mem / "memory.limit_in_bytes").write_text("167772160\n")
        (mem / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    else:
        (tmp_path / "memory.current").write_text("52428800\n")
        (tmp_path / "memory.stat").write_text("anon 1\ninactive_file 2097152\n")
        (tmp_path / "memory.max").write_text("167772160\n")
        (tmp_path / "memory.events").write_text("low 0\nhigh 0\nmax 4\noom 2\noom_kill 2\n")
    facts = read_memory(tmp_path)
    assert facts is not None
    assert facts.usage_bytes == 50 * 2**20 - 2 * 2**20  # the working set, as docker stats shows it
    assert facts.limit_bytes == 160 * 2**20 and facts.oom_kills == 2


def test_cgroup_without_limit_or_outside_a_container(tmp_path: Path) -> None:
    assert read_memory(tmp_path) is None  # nothing mounted: no numbers, not zeros
    mem = tmp_path / "memory"
    mem.mkdir()
    (mem / "memory.usage_in_bytes").write_text("4096\n")
    (mem / "memory.limit_in_bytes").write_text("9223372036854771712\n")  # v1's "no limit"
    facts = read_memory(tmp_path)
    assert facts is not None and facts.limit_bytes is None and facts.oom_kills is None
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "memory.current").write_text("4096\n")
    (v2 / "memory.max").write_text("max\n")
    facts = read_memory(v2)
    assert facts is not None and facts.usage_bytes == 4096 and facts.limit_bytes is None
