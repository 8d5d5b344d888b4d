"""`status`: one row per stack container, with stats gathered concurrently so the command stays fast."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cdb_ops.desired import LABEL_IMAGE, LABEL_PRIORITY, LABEL_ROLE, LABEL_SERVICE, DesiredStack
from cdb_ops.engine import ContainerFacts, ContainerStats, Engine


@dataclass(frozen=True)
class StatusRow:
    service: str
    container: str
    state: str  # running | exited | ... | missing
    health: str | None
    uptime_seconds: float | None
    restarts: int
    ports: list[str]
    memory_bytes: int | None
    cpu_percent: float | None
    image: str
    role: str
    priority: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "container": self.container,
            "state": self.state,
            "health": self.health,
            "uptime_seconds": None if self.uptime_seconds is None else round(self.uptime_seconds, 1),
            "restarts": self.restarts,
            "ports": self.ports,
            "memory_bytes": self.memory_bytes,
            "cpu_percent": None if self.cpu_percent is None else round(self.cpu_percent, 2),
            "image": self.image,
            "role": self.role,
            "priority": self.priority,
        }


def gather(engine: Engine, desired: DesiredStack) -> list[StatusRow]:
    containers = {c.name: c for c in engine.containers(label=desired.system_label)}
    now = datetime.now(UTC)
    by_id = engine.stats_many([c.id for c in containers.values() if c.running])
    stats = {name: by_id.get(c.id) for name, c in containers.items()}
    rows: list[StatusRow] = []
    seen: set[str] = set()
    for name, svc in desired.services.items():
        c = containers.get(svc.container.name)
        seen.add(svc.container.name)
        rows.append(
            _row(name, svc.container.name, c, stats.get(svc.container.name), now, svc.spec.role, svc.spec.priority)
        )
    for cname, c in sorted(containers.items()):
        if cname not in seen:
            rows.append(
                _row(
                    c.labels.get(LABEL_SERVICE, "?"),
                    cname,
                    c,
                    stats.get(cname),
                    now,
                    c.labels.get(LABEL_ROLE, "?"),
                    c.labels.get(LABEL_PRIORITY, "?"),
                )
            )
    return rows


def _row(
    service: str,
    container: str,
    c: ContainerFacts | None,
    st: ContainerStats | None,
    now: datetime,
    role: str,
    priority: str,
) -> StatusRow:
    if c is None:
        return StatusRow(service, container, "missing", None, None, 0, [], None, None, "", role, priority)
    uptime = (now - c.started_at).total_seconds() if c.running and c.started_at else None
    ports = [f"{p.bind}:{p.host}->{p.container}/{p.protocol}" for p in c.ports]
    return StatusRow(
        service,
        container,
        c.state,
        c.health,
        uptime,
        c.restart_count,
        ports,
        st.memory_bytes if st else None,
        st.cpu_percent if st else None,
        c.labels.get(LABEL_IMAGE, c.image_ref),
        role,
        priority,
    )
