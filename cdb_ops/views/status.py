"""`status`: one row per stack container, with stats gathered concurrently so the command stays fast."""

from __future__ import annotations

from datetime import UTC, datetime

from cdb_ops.engine.api import EngineFacts
from cdb_ops.load.desired import DesiredStack
from cdb_ops.model.facts import ContainerFacts, ContainerStats
from cdb_ops.model.labels import LABEL_IMAGE, LABEL_PRIORITY, LABEL_ROLE, LABEL_SERVICE
from cdb_ops.model.results import StatusRow


def gather(engine: EngineFacts, desired: DesiredStack) -> list[StatusRow]:
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
