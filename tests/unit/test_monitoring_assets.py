"""Monitoring assets (profile `monitoring`), checked without Docker.

- images/grafana/dashboards/trading_pipeline.json parses, has the trading-pipeline panels, and every PromQL
  expression in it names only metrics the services really export (read from the prometheus_client
  Counter/Gauge/Histogram/... definitions in images/**/*.py, with the suffixes prometheus_client adds) and only
  labels those metrics carry.
- images/prometheus/prometheus.yml scrapes every service at /metrics on the port its image listens on.
- Grafana's provisioning points at prometheus:9090 and at the folder the Grafana Dockerfile copies the
  dashboards into.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "images"
PROMETHEUS_DIR = IMAGES / "prometheus"
GRAFANA_DIR = IMAGES / "grafana"
DASHBOARD = GRAFANA_DIR / "dashboards" / "trading_pipeline.json"
DATASOURCE = GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yaml"
PROVIDERS = GRAFANA_DIR / "provisioning" / "dashboards" / "dashboards.yaml"

DATASOURCE_UID = "cdb-prometheus"

# network alias (the service key in playbooks/stack.yaml) -> (port, image folder whose Dockerfile sets HTTP_PORT)
SERVICES = {
    "screener": (8000, "screener"),
    "signal": (8001, "signal_engine"),
    "risk": (8002, "risk_manager"),
    "execution": (8003, "execution"),
    "market_replay": (8010, "market_replay"),
}

# Labels Prometheus attaches to every scraped series (target labels) besides the metric's own.
TARGET_LABELS = {"job", "instance"}

# Series that exist without a definition in the service code:
# - `up` is written by Prometheus for every target;
# - the process_* series come from prometheus_client's default ProcessCollector, present because the
#   services serve the default REGISTRY (checked in test_services_serve_the_default_registry).
SYNTHETIC: dict[str, set[str]] = {"up": set()}
DEFAULT_COLLECTOR: dict[str, set[str]] = {
    name: set()
    for name in (
        "process_resident_memory_bytes",
        "process_virtual_memory_bytes",
        "process_cpu_seconds_total",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
    )
}

METRIC_CLASSES = {"Counter", "Gauge", "Histogram", "Summary", "Info", "Enum"}


# --------------------------------------------------------------------------- what the services export


@dataclass
class Exported:
    """Series names a scrape of the services can contain, each with its label names."""

    series: dict[str, set[str]] = field(default_factory=dict)
    defined_in: dict[str, str] = field(default_factory=dict)
    unresolved: list[str] = field(default_factory=list)

    def add(self, name: str, labels: set[str], where: str) -> None:
        self.series.setdefault(name, set()).update(labels)
        self.defined_in.setdefault(name, where)


def _str(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _labels(node: ast.AST | None) -> set[str] | None:
    if node is None:
        return set()
    if isinstance(node, ast.List | ast.Tuple):
        names = [_str(e) for e in node.elts]
        if all(n is not None for n in names):
            return {n for n in names if n is not None}
    return None


def exposed_series(kind: str, name: str) -> list[str]:
    """The sample names prometheus_client exposes for a metric defined with `name` (text format 0.0.4)."""
    if kind == "Counter":
        base = name.removesuffix("_total")  # prometheus_client strips a given _total and adds it back
        return [f"{base}_total", f"{base}_created"]
    if kind == "Histogram":
        return [f"{name}_bucket", f"{name}_sum", f"{name}_count", f"{name}_created"]
    if kind == "Summary":
        return [name, f"{name}_sum", f"{name}_count", f"{name}_created"]
    if kind == "Info":
        return [f"{name}_info"]
    return [name]  # Gauge, Enum


def series_labels(kind: str, name: str, series: str) -> set[str]:
    """Labels prometheus_client adds to one exposed series of a metric."""
    if kind == "Histogram" and series == f"{name}_bucket":
        return {"le"}
    if kind == "Summary" and series == name:
        return {"quantile"}
    if kind == "Enum":
        return {name}
    return set()


def _metric_aliases(tree: ast.Module) -> tuple[dict[str, str], set[str]]:
    """Local names bound to prometheus_client's metric classes, and names bound to the module itself."""
    classes: dict[str, str] = {}
    modules: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "prometheus_client":
            for alias in node.names:
                if alias.name in METRIC_CLASSES:
                    classes[alias.asname or alias.name] = alias.name
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "prometheus_client":
                    modules.add(alias.asname or alias.name)
    return classes, modules


def exported_metrics(images: Path = IMAGES) -> Exported:
    out = Exported()
    for path in sorted(images.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        classes, modules = _metric_aliases(tree)
        if not classes and not modules:
            continue
        where = str(path.relative_to(images.parent))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            if isinstance(func, ast.Name) and func.id in classes:
                kind = classes[func.id]
            elif (
                isinstance(func, ast.Attribute)
                and isinstance(func.value, ast.Name)
                and func.value.id in modules
                and func.attr in METRIC_CLASSES
            ):
                kind = func.attr
            else:
                continue
            kw = {k.arg: k.value for k in node.keywords if k.arg}
            name = _str(node.args[0] if node.args else kw.get("name"))
            labels = _labels(node.args[2] if len(node.args) > 2 else kw.get("labelnames"))
            parts = [_str(kw.get("namespace")) or "", _str(kw.get("subsystem")) or "", name or ""]
            unit = _str(kw.get("unit"))
            if (
                name is None
                or labels is None
                or any(k in kw and _str(kw[k]) is None for k in ("namespace", "subsystem"))
            ):
                out.unresolved.append(f"{where}:{node.lineno}")
                continue
            full = "_".join(p for p in parts if p)
            if unit and not full.endswith(f"_{unit}"):
                full = f"{full}_{unit}"
            for series in exposed_series(kind, full):
                out.add(series, labels | series_labels(kind, full, series), where)
    return out


# --------------------------------------------------------------------------- what the dashboard queries

PROMQL_KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
    "inf", "nan", "atan2",
}  # fmt: skip
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^()]*)\)", re.I)
_STRINGS = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*\{([^{}]*)\}")
_MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*("(?:\\.|[^"\\])*")')
_IDENT = re.compile(r"(?<![\w.$:])([a-zA-Z_:][a-zA-Z0-9_:]*)(?![\w:])(\s*\()?")


@dataclass
class Query:
    metrics: set[str]
    selectors: list[tuple[str | None, dict[str, tuple[str, str]]]]  # (metric or None, {label: (op, value)})
    grouping: set[str]


def parse_promql(expr: str) -> Query:
    """Metric names, label matchers and grouping labels of one PromQL expression (Grafana variables allowed).

    Not a full PromQL parser: enough for dashboard expressions, and strict in the direction that matters
    (an unknown identifier that is not a function call is reported as a metric)."""
    selectors = []
    for m in _SELECTOR.finditer(expr):
        matchers = {lbl: (op, json.loads(val)) for lbl, op, val in _MATCHER.findall(m.group(2))}
        selectors.append((m.group(1), matchers))
    grouping = {lbl.strip() for _, lbls in _GROUPING.findall(expr) for lbl in lbls.split(",") if lbl.strip()}
    text = _STRINGS.sub('""', expr)
    text = re.sub(r"\{[^{}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\[\]]*\]", "", text)  # ranges and subqueries: [5m], [$__rate_interval], [1h:1m]
    text = _GROUPING.sub(" ", text)
    text = re.sub(r"\boffset\s+-?[\w$]+", " ", text)
    text = re.sub(r"\$\{?\w+\}?", " ", text)  # Grafana variables outside brackets
    metrics = set()
    for m in _IDENT.finditer(text):
        word, call = m.group(1), m.group(2)
        if call or word.lower() in PROMQL_KEYWORDS:
            continue
        metrics.add(word)
    metrics |= {str(sel) for sel, _ in selectors if sel}
    for _, matchers in selectors:  # {__name__="x"}
        if "__name__" in matchers and matchers["__name__"][0] == "=":
            metrics.add(matchers["__name__"][1])
    return Query(metrics, selectors, grouping)


def variable_exprs(dashboard: dict[str, Any]) -> list[str]:
    """PromQL inside the dashboard's query variables: label_values(<selector>, label), query_result(<expr>)."""
    out = []
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("type") != "query":
            continue
        q = var.get("query")
        text = q.get("query", "") if isinstance(q, dict) else str(q or "")
        for candidate in (text, var.get("definition", "")):
            m = re.fullmatch(r"\s*label_values\((?:(.*),)?\s*(\w+)\s*\)\s*", candidate or "")
            if m:
                if m.group(1):
                    out.append(m.group(1))
                break
            m = re.fullmatch(r"\s*query_result\((.*)\)\s*", candidate or "")
            if m:
                out.append(m.group(1))
                break
    return out


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    flat = []
    for p in dashboard.get("panels", []):
        flat.append(p)
        flat.extend(p.get("panels", []))  # collapsed rows hold their panels
    return flat


def dashboard_exprs(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, expr) for every PromQL expression in panels and variables."""
    out = [
        (f"panel {p.get('title')!r} {t.get('refId')}", t["expr"])
        for p in panels(dashboard)
        for t in p.get("targets", [])
        if t.get("expr")
    ]
    out += [("variable", e) for e in variable_exprs(dashboard)]
    return out


def known_series(exported: Exported) -> dict[str, set[str]]:
    return {**exported.series, **SYNTHETIC, **DEFAULT_COLLECTOR}


def problems(dashboard: dict[str, Any], exported: Exported, jobs: set[str]) -> list[str]:
    """Every metric, label or job a dashboard query names that the stack does not produce."""
    known = known_series(exported)
    found = []
    for where, expr in dashboard_exprs(dashboard):
        q = parse_promql(expr)
        if not q.metrics:
            found.append(f"{where}: no metric in {expr!r}")
        for metric in sorted(q.metrics - known.keys()):
            found.append(f"{where}: metric {metric!r} is not exported by any service ({expr!r})")
        available = set(TARGET_LABELS)
        for metric in q.metrics & known.keys():
            available |= known[metric]
        for selected, matchers in q.selectors:
            labels = known[selected] | TARGET_LABELS if selected in known else available
            for label, (op, value) in matchers.items():
                if label != "__name__" and label not in labels:
                    found.append(f"{where}: label {label!r} is not on {selected or 'the selected series'} ({expr!r})")
                if label == "job" and "$" not in value and op in ("=", "=~"):
                    hit = value in jobs if op == "=" else any(re.fullmatch(value, j) for j in jobs)
                    if not hit:
                        found.append(f"{where}: job {op}{value!r} matches no scrape job in prometheus.yml")
        for label in sorted(q.grouping - available):
            found.append(f"{where}: grouping label {label!r} is on none of {sorted(q.metrics)}")
    return found


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def exported() -> Exported:
    return exported_metrics()


@pytest.fixture(scope="module")
def prom_config() -> dict[str, Any]:
    return yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def jobs(prom_config: dict[str, Any]) -> set[str]:
    return {j["job_name"] for j in prom_config["scrape_configs"]}


def by_title(dashboard: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["title"]: p for p in panels(dashboard) if p.get("type") != "row"}


def _duration_s(text: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    total = 0.0
    for num, unit in re.findall(r"(\d+)(ms|s|m|h|d)", text):
        total += int(num) * units[unit]
    assert total > 0, f"not a duration: {text!r}"
    return total


# --------------------------------------------------------------------------- the extraction itself


def test_service_metrics_are_found_with_prometheus_client_suffixes(exported: Exported) -> None:
    assert not exported.unresolved, f"metric definitions whose name/labels are not literals: {exported.unresolved}"
    s = exported.series
    # counter defined as "cdb_events_consumed_total" is exposed once as _total, not _total_total
    assert "cdb_events_consumed_total" in s and "cdb_events_consumed_total_total" not in s
    assert {"cdb_event_latency_seconds_bucket", "cdb_event_latency_seconds_count"} <= s.keys()
    assert "cdb_event_latency_seconds" not in s  # a histogram has no bare series
    assert s["cdb_event_latency_seconds_bucket"] == {"stream", "le"}
    assert s["cdb_signals_total"] == {"side"}
    assert s["cdb_risk_decisions_total"] == {"decision", "reason"}
    for service in ("screener", "signal_engine", "risk_manager", "execution", "market_replay"):
        assert any(w.startswith(f"images/{service}/") for w in exported.defined_in.values()), service


def test_exposed_series_naming() -> None:
    assert exposed_series("Counter", "x_total") == ["x_total", "x_created"]
    assert exposed_series("Counter", "x") == ["x_total", "x_created"]
    assert exposed_series("Gauge", "g") == ["g"]
    assert exposed_series("Histogram", "h_seconds")[:3] == ["h_seconds_bucket", "h_seconds_sum", "h_seconds_count"]


def test_extraction_reads_definitions_from_source(tmp_path: Path) -> None:
    svc = tmp_path / "images" / "svc"
    svc.mkdir(parents=True)
    (svc / "m.py").write_text(
        "import collections\n"
        "import prometheus_client as pc\n"
        "from prometheus_client import Counter as C, Histogram\n"
        "A = C('demo_events', 'doc', ['kind'])\n"
        "B = pc.Gauge('demo_level', 'doc', labelnames=('where',))\n"
        "H = Histogram('demo_latency', 'doc', namespace='cdb', unit='seconds')\n"
        "N = collections.Counter('not a metric')\n"
    )
    ex = exported_metrics(tmp_path / "images")
    assert ex.series["demo_events_total"] == {"kind"}
    assert ex.series["demo_level"] == {"where"}
    assert ex.series["cdb_demo_latency_seconds_bucket"] == {"le"}
    assert "not a metric" not in ex.series and not ex.unresolved


@pytest.mark.parametrize(
    ("expr", "metrics", "grouping"),
    [
        ('sum by (side) (rate(cdb_signals_total{side="BUY"}[$__rate_interval]))', {"cdb_signals_total"}, {"side"}),
        (
            "histogram_quantile(0.99, sum by (le, stream) (rate(cdb_event_latency_seconds_bucket[5m])))",
            {"cdb_event_latency_seconds_bucket"},
            {"le", "stream"},
        ),
        ('100 * a_total{job="x", p=~"$portfolio"} / on (p) b', {"a_total", "b"}, {"p"}),
        ("max(up) > bool 0 unless absent(z)", {"up", "z"}, set()),
        ("sum(rate(x_total[1h:1m] offset 5m)) by (job) * 1e3", {"x_total"}, {"job"}),
    ],
)
def test_promql_extraction(expr: str, metrics: set[str], grouping: set[str]) -> None:
    q = parse_promql(expr)
    assert q.metrics == metrics
    assert q.grouping == grouping


def test_a_bogus_metric_label_or_job_is_reported(dashboard: dict[str, Any], exported: Exported, jobs: set[str]) -> None:
    """The check must be able to fail: the same dashboard with one wrong name in a query is refused."""
    assert problems(dashboard, exported, jobs) == []
    cases = {
        "rate(cdb_bogus_ticks_total[1m])": "cdb_bogus_ticks_total",
        "rate(cdb_ticks_received[1m])": "cdb_ticks_received",  # counter without its _total
        "cdb_event_latency_seconds": "cdb_event_latency_seconds",  # histogram without _bucket
        'sum by (sid) (rate(cdb_signals_total{side="BUY"}[1m]))': "'sid'",
        'cdb_equity_usdt{portfolo="main"}': "'portfolo'",
        'cdb_equity_usdt{job="cdb_executor"}': "cdb_executor",
    }
    for expr, needle in cases.items():
        broken = json.loads(json.dumps(dashboard))
        first = next(p for p in panels(broken) if p.get("targets"))
        first["targets"].append(
            {"refId": "Z", "expr": expr, "datasource": {"type": "prometheus", "uid": DATASOURCE_UID}}
        )
        found = problems(broken, exported, jobs)
        assert len(found) == 1 and needle in found[0], (expr, found)


# --------------------------------------------------------------------------- the dashboard


def test_every_dashboard_query_names_exported_metrics(
    dashboard: dict[str, Any], exported: Exported, jobs: set[str]
) -> None:
    assert dashboard_exprs(dashboard), "the dashboard has no PromQL at all"
    assert problems(dashboard, exported, jobs) == []


def test_services_serve_the_default_registry() -> None:
    """process_* series (memory panel) exist only because /metrics serves prometheus_client's default REGISTRY."""
    sources = "\n".join(p.read_text(encoding="utf-8") for p in IMAGES.rglob("*.py"))
    assert re.search(r"generate_latest\(\s*REGISTRY\s*\)", sources)


REQUIRED_PANELS = {
    # title: (metrics that must be queried, grouping labels that must be used)
    "Service up": ({"up"}, set()),
    "Ticks/s": ({"cdb_ticks_received_total", "cdb_ticks_published_total"}, set()),
    "Signals by side": ({"cdb_signals_total"}, {"side"}),
    "Risk decisions: approved vs rejected by reason": ({"cdb_risk_decisions_total"}, {"reason"}),
    "Fills": ({"cdb_orders_filled_total"}, set()),
    "Equity": ({"cdb_equity_usdt"}, set()),
    "Exposure": ({"cdb_exposure_usdt"}, set()),
    "Drawdown": ({"cdb_drawdown_pct", "cdb_daily_drawdown_pct"}, set()),
    "Event latency p50 / p99": ({"cdb_event_latency_seconds_bucket"}, {"le"}),
}


@pytest.mark.parametrize("title", sorted(REQUIRED_PANELS))
def test_dashboard_has_the_pipeline_panels(dashboard: dict[str, Any], title: str) -> None:
    panel = by_title(dashboard).get(title)
    assert panel is not None, f"no panel titled {title!r}; have {sorted(by_title(dashboard))}"
    metrics, grouping = REQUIRED_PANELS[title]
    queries = [parse_promql(t["expr"]) for t in panel["targets"]]
    assert metrics <= set().union(*(q.metrics for q in queries))
    assert grouping <= set().union(*(q.grouping for q in queries))


def test_rate_panels_use_rate_and_latency_panel_has_p50_and_p99(dashboard: dict[str, Any]) -> None:
    p = by_title(dashboard)
    ticks = " ".join(t["expr"] for t in p["Ticks/s"]["targets"])
    assert "rate(cdb_ticks_received_total[" in ticks and "rate(cdb_ticks_published_total[" in ticks
    decisions = " ".join(t["expr"] for t in p["Risk decisions: approved vs rejected by reason"]["targets"])
    assert '"APPROVED"' in decisions and '"REJECTED"' in decisions
    latency = [t["expr"].replace(" ", "") for t in p["Event latency p50 / p99"]["targets"]]
    assert any(e.startswith("histogram_quantile(0.5,") for e in latency)
    assert any(e.startswith("histogram_quantile(0.99,") for e in latency)
    assert p["Event latency p50 / p99"]["fieldConfig"]["defaults"]["unit"] == "s"


def test_dashboard_is_well_formed_for_file_provisioning(dashboard: dict[str, Any]) -> None:
    raw = DASHBOARD.read_text(encoding="utf-8")
    assert "__inputs" not in dashboard and "${DS_" not in raw, "import placeholders do not work in file provisioning"
    assert dashboard.get("id") in (None, 0), "a provisioned dashboard must not carry a database id"
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,40}", dashboard["uid"])
    assert dashboard["title"] and isinstance(dashboard["schemaVersion"], int)
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for p in panels(dashboard):
        g = p["gridPos"]
        assert g["x"] >= 0 and g["w"] > 0 and g["x"] + g["w"] <= 24 and g["h"] > 0, p["title"]
        if p["type"] == "row":
            continue
        assert p["datasource"] == {"type": "prometheus", "uid": DATASOURCE_UID}, p["title"]
        refs = [t["refId"] for t in p["targets"]]
        assert refs and len(refs) == len(set(refs)), p["title"]
        for t in p["targets"]:
            assert t["datasource"]["uid"] == DATASOURCE_UID and t["expr"].strip(), p["title"]
    for var in dashboard["templating"]["list"]:
        if var.get("type") == "query":
            assert var["datasource"]["uid"] == DATASOURCE_UID


def test_dashboard_variables_query_exported_metrics(dashboard: dict[str, Any], exported: Exported) -> None:
    exprs = variable_exprs(dashboard)
    assert exprs, "the portfolio variable should be a label_values() query"
    for e in exprs:
        assert parse_promql(e).metrics <= known_series(exported).keys()


# --------------------------------------------------------------------------- prometheus.yml and its image


def test_prometheus_config_scrapes_every_service(prom_config: dict[str, Any]) -> None:
    g = prom_config["global"]
    assert _duration_s(g["scrape_interval"]) == 5
    assert _duration_s(g.get("scrape_timeout", "10s")) <= 5
    targets: dict[str, tuple[str, str]] = {}
    for job in prom_config["scrape_configs"]:
        assert job.get("scheme", "http") == "http"
        for sc in job.get("static_configs", []):
            for t in sc["targets"]:
                targets[t] = (job["job_name"], job.get("metrics_path", "/metrics"))
        for sd in job.get("dns_sd_configs", []):  # a profile's service: a target only while its name resolves
            assert sd.get("type") == "A", job["job_name"]
            for name in sd["names"]:
                targets[f"{name}:{sd['port']}"] = (job["job_name"], job.get("metrics_path", "/metrics"))
    for container, (port, _) in SERVICES.items():
        assert f"{container}:{port}" in targets, f"{container}:{port} is not scraped"
        assert targets[f"{container}:{port}"][1] == "/metrics"
    assert targets.get("localhost:9090", (None,))[0] == "prometheus"
    assert len({job for job, _ in targets.values()}) == len(prom_config["scrape_configs"])


@pytest.mark.parametrize("container", sorted(SERVICES))
def test_scrape_port_is_the_port_the_service_image_listens_on(container: str) -> None:
    port, folder = SERVICES[container]
    dockerfile = (IMAGES / folder / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(rf"^ENV\s+HTTP_PORT={port}\s*$", dockerfile, re.M), f"images/{folder}/Dockerfile"
    assert re.search(rf"^EXPOSE\s+{port}\b", dockerfile, re.M)


def test_prometheus_fallback_image_matches_the_official_interface() -> None:
    d = (PROMETHEUS_DIR / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^FROM debian:bookworm-slim\s*$", d, re.M)
    assert re.search(r"apt-get install -y --no-install-recommends prometheus wget", d)
    assert re.search(r"^COPY prometheus\.yml /etc/prometheus/prometheus\.yml\s*$", d, re.M)
    assert re.search(r"^VOLUME /prometheus\s*$", d, re.M)
    assert re.search(r"^EXPOSE 9090\s*$", d, re.M)
    user = re.findall(r"^USER\s+(\S+)", d, re.M)
    assert user and user[-1] not in ("root", "0", "0:0")
    cmd = re.search(r"^CMD\s+(\[.*?\])\s*$", d, re.M | re.S)
    assert cmd
    flags = json.loads(cmd.group(1).replace("\\\n", ""))
    assert {
        "--config.file=/etc/prometheus/prometheus.yml",
        "--storage.tsdb.path=/prometheus",
        "--web.listen-address=:9090",
    } <= set(flags)
    assert any(f.startswith("--storage.tsdb.retention.time=") for f in flags)
    assert re.search(r'^ENTRYPOINT \["(/usr)?/bin/prometheus"\]\s*$', d, re.M)


# --------------------------------------------------------------------------- Grafana provisioning


def test_grafana_datasource_points_at_the_stack_prometheus(prom_config: dict[str, Any]) -> None:
    doc = yaml.safe_load(DATASOURCE.read_text(encoding="utf-8"))
    assert doc["apiVersion"] == 1
    sources = doc["datasources"]
    assert [s["uid"] for s in sources if s.get("isDefault")] == [DATASOURCE_UID]
    ds = next(s for s in sources if s["uid"] == DATASOURCE_UID)
    assert ds["type"] == "prometheus" and ds["access"] == "proxy"
    assert ds["url"] == "http://prometheus:9090"
    # $__rate_interval is 4 x this: it must be the real scrape interval
    assert _duration_s(ds["jsonData"]["timeInterval"]) == _duration_s(prom_config["global"]["scrape_interval"])


def test_grafana_dashboard_provider_reads_where_the_image_puts_dashboards() -> None:
    doc = yaml.safe_load(PROVIDERS.read_text(encoding="utf-8"))
    assert doc["apiVersion"] == 1
    (provider,) = doc["providers"]
    assert provider["type"] == "file"
    path = provider["options"]["path"].rstrip("/")
    assert path in ("/etc/grafana/dashboards", "/var/lib/grafana/dashboards")
    d = (GRAFANA_DIR / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^FROM grafana/grafana:10\.4\.2\s*$", d, re.M)
    copies = dict(re.findall(r"^COPY\s+(\S+)\s+(\S+)\s*$", d, re.M))
    assert copies.get("dashboards/", "").rstrip("/") == path
    assert copies.get("provisioning/datasources/", "").rstrip("/") == "/etc/grafana/provisioning/datasources"
    assert copies.get("provisioning/dashboards/", "").rstrip("/") == "/etc/grafana/provisioning/dashboards"
    for src in copies:
        assert (GRAFANA_DIR / src).exists(), src
