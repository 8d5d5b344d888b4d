"""Raw engine replies about containers (docker-py dicts, or the socket reader's JSON) -> facts. Networks,
volumes and images are mapped where they are read (engine/docker_networks.py, docker_images.py)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from cdb_ops.model.facts import ContainerFacts, ContainerPosture, ContainerStats
from cdb_ops.model.ports import PortBinding


def parse_docker_time(value: str | None) -> datetime | None:
    if not value or value.startswith("0001-"):
        return None
    # Docker reports nanoseconds; Python keeps microseconds.
    value = re.sub(r"(\.\d{6})\d+", r"\1", value).replace("Z", "+00:00")
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def summary_facts(s: dict[str, Any]) -> ContainerFacts:
    """From the list endpoint: no start time, restart count or health log (one call for all containers)."""
    status = s.get("Status", "")
    health = next((h for h in ("unhealthy", "healthy") if f"({h})" in status), None)
    if "health: starting" in status:
        health = "starting"
    nets = (s.get("NetworkSettings") or {}).get("Networks") or {}
    ports = {
        PortBinding(p.get("IP") or "0.0.0.0", int(p["PublicPort"]), int(p["PrivatePort"]), p.get("Type", "tcp"))
        for p in s.get("Ports") or []
        if p.get("PublicPort")
    }
    return ContainerFacts(
        id=s["Id"],
        name=(s.get("Names") or ["/?"])[0].lstrip("/"),
        image_id=s.get("ImageID", ""),
        image_ref=s.get("Image", ""),
        labels=s.get("Labels") or {},
        state=s.get("State", "unknown"),
        health=health,
        started_at=None,
        restart_count=0,
        exit_code=0,
        networks=tuple(sorted(nets)),
        ports=tuple(sorted(ports, key=lambda p: (p.host, p.container, p.bind))),
        volumes=tuple(sorted(m["Name"] for m in s.get("Mounts") or [] if m.get("Type") == "volume")),
        network_ids=tuple(sorted(n.get("NetworkID", "") for n in nets.values())),
    )


def inspect_facts(c: dict[str, Any]) -> ContainerFacts:
    """From `inspect`: everything, including the last health-check output."""
    state = c.get("State", {})
    health = state.get("Health") or {}
    log = health.get("Log") or []
    ports: list[PortBinding] = []
    for key, binds in (c.get("HostConfig", {}).get("PortBindings") or {}).items():
        cport, _, proto = key.partition("/")
        for b in binds or []:
            if b.get("HostPort"):
                ports.append(PortBinding(b.get("HostIp") or "0.0.0.0", int(b["HostPort"]), int(cport), proto))
    nets = c.get("NetworkSettings", {}).get("Networks") or {}
    return ContainerFacts(
        id=c["Id"],
        name=c["Name"].lstrip("/"),
        image_id=c["Image"],
        image_ref=c.get("Config", {}).get("Image", ""),
        labels=c.get("Config", {}).get("Labels") or {},
        state=state.get("Status", "unknown"),
        health=health.get("Status"),
        started_at=parse_docker_time(state.get("StartedAt")),
        restart_count=int(c.get("RestartCount", 0)),
        exit_code=int(state.get("ExitCode", 0)),
        networks=tuple(sorted(nets.keys())),
        ports=tuple(sorted(ports, key=lambda p: (p.host, p.container))),
        volumes=tuple(sorted(m["Name"] for m in c.get("Mounts") or [] if m.get("Type") == "volume")),
        health_output=(log[-1].get("Output") or "").strip() if log else "",
        network_ids=tuple(sorted(n.get("NetworkID", "") for n in nets.values())),
        oom_killed=bool(state.get("OOMKilled")),
        memory_limit=int(c.get("HostConfig", {}).get("Memory") or 0),
        finished_at=parse_docker_time(state.get("FinishedAt")),
        posture=posture_facts(c),
    )


def posture_facts(c: dict[str, Any]) -> ContainerPosture:
    """The security posture from `inspect` (HostConfig and Config), as docker-bench-security reads it."""
    host = c.get("HostConfig") or {}
    log = host.get("LogConfig") or {}
    return ContainerPosture(
        user=str((c.get("Config") or {}).get("User") or ""),
        cap_drop=tuple(host.get("CapDrop") or ()),
        cap_add=tuple(host.get("CapAdd") or ()),
        security_opt=tuple(host.get("SecurityOpt") or ()),
        read_only=bool(host.get("ReadonlyRootfs")),
        tmpfs=tuple(sorted(host.get("Tmpfs") or {})),
        pids_limit=max(int(host.get("PidsLimit") or 0), 0),  # -1 and 0 both mean none
        memory=int(host.get("Memory") or 0),
        log_driver=str(log.get("Type") or ""),
        log_options=dict(log.get("Config") or {}),
    )


def api_stats(s: dict[str, Any]) -> ContainerStats:
    """The stats endpoint's reply, computed like `docker stats`."""
    mem = s.get("memory_stats") or {}
    usage = int(mem.get("usage", 0))
    # like `docker stats`: page cache that can be dropped is not the service's memory
    st = mem.get("stats") or {}
    usage -= int(st.get("inactive_file", st.get("total_inactive_file", 0)))
    cpu = None
    cs, ps = s.get("cpu_stats") or {}, s.get("precpu_stats") or {}
    try:
        delta = cs["cpu_usage"]["total_usage"] - ps["cpu_usage"]["total_usage"]
        sys_delta = cs["system_cpu_usage"] - ps["system_cpu_usage"]
        if sys_delta > 0:
            cpu = delta / sys_delta * int(cs.get("online_cpus", 1)) * 100.0
    except (KeyError, TypeError):
        pass
    return ContainerStats(max(usage, 0), cpu)
