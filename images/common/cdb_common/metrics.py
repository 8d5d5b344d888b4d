"""Prometheus metrics shared by every service (each service adds its own next to its code).

Besides the pipeline's own, every service states what the alert rules (images/prometheus/rules/) judge
it by: its container's memory and OOM kills (cgroupmem), its process start time (prometheus_client's
process collector), its stream backlog, and the thresholds and risk limits from `.env` as it was started
with them, so a rule compares a metric with its limit and no number is written twice.

All names start with `cdb_`. Latency is measured from the moment the screener received the
originating exchange frame (`received_at`) to the moment a service handled the derived event.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from .cgroupmem import CGROUP_ROOT, read_memory
from .config import Settings, env_decimal, env_int
from .envrules import ALERT_KEYS, RULES

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

EVENT_LATENCY = Histogram(
    "cdb_event_latency_seconds",
    "Seconds from the screener receiving the originating frame to this service handling the event",
    ["stream"],
    buckets=LATENCY_BUCKETS,
)
EVENTS_CONSUMED = Counter("cdb_events_consumed_total", "Stream events handled and acknowledged", ["stream"])
EVENTS_PUBLISHED = Counter("cdb_events_published_total", "Events added to a stream", ["stream"])
EVENTS_INVALID = Counter(
    "cdb_events_invalid_total", "Stream entries that were not valid events (acked, skipped)", ["stream"]
)
EVENTS_RECLAIMED = Counter(
    "cdb_events_reclaimed_total", "Pending entries taken over from a dead consumer (XAUTOCLAIM)", ["stream"]
)
DEPENDENCY_UP = Gauge("cdb_dependency_up", "1 when the dependency answers, else 0", ["dependency"])
RECONNECTS = Counter("cdb_reconnects_total", "Failed attempts to reach a dependency", ["dependency"])

# The backlog of each consumer group this service reads (XINFO GROUPS, polled by Bus.monitor): `pending`
# were delivered and not acked yet, `lag` were added to the stream and not delivered to the group yet.
STREAM_PENDING = Gauge(
    "cdb_stream_pending_entries", "Entries delivered to the group, not acked yet", ["stream", "group"]
)
STREAM_LAG = Gauge(
    "cdb_stream_lag_entries", "Entries in the stream not delivered to the group yet", ["stream", "group"]
)
ALERT_THRESHOLD = Gauge(
    "cdb_alert_threshold", "An alert rule's threshold (ALERT_* in .env) as this service was started with it", ["key"]
)
LIMIT_MAX_DAILY_DRAWDOWN = Gauge(
    "cdb_limit_max_daily_drawdown_pct", "MAX_DAILY_DRAWDOWN (percent) as this service was started with it"
)
LIMIT_MAX_TOTAL_EXPOSURE = Gauge(
    "cdb_limit_max_total_exposure_pct", "MAX_TOTAL_EXPOSURE (percent of equity) as this service was started with it"
)


def export_settings(settings: Settings) -> None:
    """The ALERT_* thresholds and the risk limits as gauges: every service exports them with its own
    labels (job, instance), so a rule matches a metric with the limit its own service was started with."""
    for key in ALERT_KEYS:
        rule = RULES[key]
        if rule.kind == "integer":
            value = float(env_int(settings.env, key, int(rule.default or 0)))
        else:
            value = float(env_decimal(settings.env, key, rule.default or "0"))
        ALERT_THRESHOLD.labels(key).set(value)
    LIMIT_MAX_DAILY_DRAWDOWN.set(float(settings.limits.max_daily_drawdown_pct))
    LIMIT_MAX_TOTAL_EXPOSURE.set(float(settings.limits.max_total_exposure_pct))


class CgroupMemoryCollector:
    """cdb_container_memory_usage_bytes, _limit_bytes and cdb_container_oom_kills_total, read per scrape
    (three small files: cheaper than a thread keeping gauges fresh)."""

    def __init__(self, root: Path = CGROUP_ROOT) -> None:
        self.root = root

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        facts = read_memory(self.root)
        if facts is None:
            return
        if facts.usage_bytes is not None:
            yield GaugeMetricFamily(
                "cdb_container_memory_usage_bytes",
                "This container's memory working set (usage minus inactive file cache, as docker stats)",
                value=facts.usage_bytes,
            )
        if facts.limit_bytes is not None:
            yield GaugeMetricFamily(
                "cdb_container_memory_limit_bytes", "This container's memory limit (mem_limit)", value=facts.limit_bytes
            )
        if facts.oom_kills is not None:
            yield CounterMetricFamily(
                "cdb_container_oom_kills",
                "Processes of this container killed by the kernel's OOM killer (since the container started)",
                value=facts.oom_kills,
            )


REGISTRY.register(CgroupMemoryCollector())
