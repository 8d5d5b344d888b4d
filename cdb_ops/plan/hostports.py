"""Host ports: who holds one (read once per run from the OS), and the one decision whether a port the
stack wants is in conflict — used by the planner and by `doctor`."""

from __future__ import annotations

import socket
from collections.abc import Iterable

from cdb_ops.model.facts import ContainerFacts
from cdb_ops.model.labels import owned
from cdb_ops.model.observed import Listener
from cdb_ops.model.ports import PortBinding

WILDCARDS = ("0.0.0.0", "::", "")


def ports_overlap(a: PortBinding | Listener, b: PortBinding | Listener) -> bool:
    """Two bindings collide: same port and protocol, and the same address or a wildcard on either side."""
    port_a = a.host if isinstance(a, PortBinding) else a.port
    port_b = b.host if isinstance(b, PortBinding) else b.port
    return (
        port_a == port_b
        and a.protocol == b.protocol
        and (a.bind == b.bind or a.bind in WILDCARDS or b.bind in WILDCARDS)
    )


def _holder(pid: int | None) -> str:
    if not pid:
        return "an unknown process"
    import psutil

    try:
        return f"{psutil.Process(pid).name()} (pid {pid})"
    except psutil.Error:
        return f"pid {pid}"


def _bind_is_free(bind: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((bind, port))
        except OSError:
            return False
    return True


def host_listeners(wanted: Iterable[PortBinding]) -> tuple[Listener, ...]:
    """The sockets processes on this host hold: one listing of the OS's table (TCP listening, UDP bound).
    Where the OS does not let us list them, a bind test of each port in `wanted` stands in."""
    import psutil

    try:
        conns = psutil.net_connections(kind="inet")
    except (psutil.AccessDenied, PermissionError):
        return tuple(
            Listener(w.bind, w.host, w.protocol, "another process") for w in wanted if not _bind_is_free(w.bind, w.host)
        )
    out: dict[tuple[str, int, str], Listener] = {}
    for c in conns:
        if not c.laddr:
            continue
        proto = "tcp" if c.type == socket.SOCK_STREAM else "udp"
        if proto == "tcp" and c.status != psutil.CONN_LISTEN:
            continue
        key = (c.laddr.ip, c.laddr.port, proto)
        if key not in out:
            out[key] = Listener(c.laddr.ip, c.laddr.port, proto, _holder(c.pid))
    return tuple(out.values())


def port_conflict(
    want: PortBinding,
    system: str,
    containers: Iterable[ContainerFacts],
    listeners: Iterable[Listener] | None,
) -> tuple[str, str] | None:
    """Whether something outside `system` holds a host port the stack wants: (what holds it, why), or
    None when it is free or held by the stack itself (the container being replaced, or its twin)."""
    running = [c for c in containers if c.running]
    foreign = next(
        (c for c in running if not owned(c.labels, system) and any(ports_overlap(want, p) for p in c.ports)), None
    )
    if foreign is not None:
        return (
            foreign.name,
            f"host port {want.host} is published by container {foreign.name!r}, which is not part of the stack",
        )
    if any(owned(c.labels, system) and any(ports_overlap(want, p) for p in c.ports) for c in running):
        return None
    holder = next((ln for ln in listeners or () if ports_overlap(want, ln)), None)
    if holder is not None:
        return holder.holder, f"host port {want.bind}:{want.host} is held by {holder.holder}"
    return None
