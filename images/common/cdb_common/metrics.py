"""Prometheus metrics shared by every service (each service adds its own next to its code).

All names start with `cdb_`. Latency is measured from the moment the screener received the
originating exchange frame (`received_at`) to the moment a service handled the derived event.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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
