"""The container's own memory, read from its cgroup at each scrape: what the memory and OOM alerts use.

Docker mounts a container's own memory cgroup at /sys/fs/cgroup (v1: the `memory` controller's
directory; v2: the unified hierarchy), so a service reads its container's numbers without the Docker
socket. Usage is the working set, as `docker stats` shows it: usage minus the inactive file cache the
kernel drops before it OOM-kills anything. The OOM-kill counter lives in the cgroup: it counts kills of
any process in the container for as long as the container runs; Docker (runc) makes a new cgroup when
it restarts a container, so a killed main process shows as a restart (ServiceRestarting), and
`cdb-ops status` names the OOM kill from Docker's own state.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
# cgroup v1 reports "no limit" as the largest page-aligned int64; anything this large is no limit
UNLIMITED = 1 << 60


@dataclass(frozen=True)
class MemoryFacts:
    usage_bytes: int | None
    limit_bytes: int | None  # None: no limit set
    oom_kills: int | None  # None: the kernel does not count them (cgroup v1 before Linux 4.13)


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    if text == "max":
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _keyed(path: Path) -> dict[str, int]:
    """'key value' lines (memory.stat, memory.oom_control, memory.events)."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return {}
    out: dict[str, int] = {}
    for line in lines:
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            out[parts[0]] = int(parts[1])
    return out


def read_memory(root: Path = CGROUP_ROOT) -> MemoryFacts | None:
    """This container's memory facts, cgroup v1 or v2; None when neither is mounted (not in a container)."""
    v1 = root / "memory"
    if (v1 / "memory.usage_in_bytes").exists():
        usage = _read_int(v1 / "memory.usage_in_bytes")
        stat = _keyed(v1 / "memory.stat")
        inactive = stat.get("total_inactive_file", stat.get("inactive_file", 0))
        limit = _read_int(v1 / "memory.limit_in_bytes")
        return MemoryFacts(
            None if usage is None else max(usage - inactive, 0),
            None if limit is None or limit >= UNLIMITED else limit,
            _keyed(v1 / "memory.oom_control").get("oom_kill"),
        )
    if (root / "memory.current").exists():
        usage = _read_int(root / "memory.current")
        inactive = _keyed(root / "memory.stat").get("inactive_file", 0)
        limit = _read_int(root / "memory.max")
        return MemoryFacts(
            None if usage is None else max(usage - inactive, 0),
            None if limit is None or limit >= UNLIMITED else limit,
            _keyed(root / "memory.events").get("oom_kill"),
        )
    return None
