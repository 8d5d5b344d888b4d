"""The garbage collector's pauses, measured: `cdb_gc_pause_seconds{generation}`.

A collection stops the service's one event loop; a full (generation 2) one walks every object the service
holds (the signal engine's price windows, the screener's queue) and is where a tick-to-order tail can come
from that no handler explains.
"""

from __future__ import annotations

import gc
import time
from typing import Any

from prometheus_client import Histogram

GC_PAUSE = Histogram(
    "cdb_gc_pause_seconds",
    "Seconds the garbage collector stopped the service, per collection",
    ["generation"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)
_PAUSES = [GC_PAUSE.labels(str(generation)) for generation in range(3)]
_started = 0.0


def _measure(phase: str, info: dict[str, Any]) -> None:
    global _started
    if phase == "start":
        _started = time.perf_counter()
    else:
        _PAUSES[info["generation"]].observe(time.perf_counter() - _started)


def settle() -> None:
    """Once the service has started: collect, then move everything alive into the permanent generation
    (gc.freeze), which later collections never walk again. The modules, the metrics registry and the
    connections a service holds for its whole life are then no part of any full collection's pause."""
    gc.collect()
    gc.freeze()


def watch() -> None:
    """Measure every collection from now on (once per process)."""
    if _measure not in gc.callbacks:
        gc.callbacks.append(_measure)
