"""`status`: one row per stack container, with stats gathered concurrently so the command stays fast."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from cdb_ops.engine.api import ContainerReads
from cdb_ops.load.outline import OutlineService, StackOutline
from cdb_ops.model.facts import ContainerFacts, ContainerStats
from cdb_ops.model.labels import LABEL_IMAGE, LABEL_PRIORITY, LABEL_ROLE, LABEL_SERVICE
from cdb_ops.model.results import StatusRow

if TYPE_CHECKING:
    from cdb_ops.load.desired import DesiredStack
    from cdb_ops.load.settings import Settings


def outline_of(desired: DesiredStack, settings: Settings) -> StackOutline:
    """What `status` needs of the resolved stack (cached by `cdb_ops.load.outline` between runs)."""
    services = tuple(
        OutlineService(name, svc.container.name, svc.spec.role, svc.spec.priority)
        for name, svc in desired.services.items()
    )
    return StackOutline(desired.system_label, services, tuple(settings.secret_keys))


def gather(engine: ContainerReads, outline: StackOutline) -> list[StatusRow]:
    containers = {c.name: c for c in engine.containers(label=outline.system_label)}
    now = datetime.now(UTC)
    by_id = engine.stats_many([c.id for c in containers.values() if c.running])
    stats = {name: by_id.get(c.id) for name, c in containers.items()}
    rows: list[StatusRow] = []
    seen: set[str] = set()
    for svc in outline.services:
        c = containers.get(svc.container)
        seen.add(svc.container)
        rows.append(_row(svc.name, svc.container, c, stats.get(svc.container), now, svc.role, svc.priority))
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
    return _with_exit(
        c,
        StatusRow(
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
        ),
    )


def _with_exit(c: ContainerFacts, row: StatusRow) -> StatusRow:
    """The row with how the container's last run ended (OOMKilled, exit code) and its memory limit — all from
    the inspect `status` already made — plus the kernel's OOM kills in the current run from its cgroup (a
    file read on a local engine: a worker killed while the main process lives is flagged nowhere else)."""
    from dataclasses import replace

    from cdb_ops.engine.cgroups import oom_kills

    return replace(
        row,
        memory_limit=c.memory_limit or None,
        last_exit=c.last_exit,
        oom_kills=oom_kills(c.id) if c.running else None,
    )
