"""What the engine and the host report (facts, read-only), and `ObservedStack`: one snapshot of them
taken once per run, from which the planner decides without asking the engine again."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cdb_ops.model.resources import PortBinding


@dataclass(frozen=True)
class ContainerPosture:
    """A container's security posture as `docker inspect` reports it (what CIS Docker Benchmark §5
    checks): read from HostConfig and Config, compared with the playbook by `doctor`."""

    user: str  # Config.User: "" is the image's default, root unless the image says otherwise
    cap_drop: tuple[str, ...]
    cap_add: tuple[str, ...]
    security_opt: tuple[str, ...]
    read_only: bool
    tmpfs: tuple[str, ...]  # mount points
    pids_limit: int  # 0: none
    memory: int  # bytes; 0: none
    log_driver: str
    log_options: dict[str, str]


@dataclass(frozen=True)
class ContainerFacts:
    id: str
    name: str
    image_id: str
    image_ref: str
    labels: dict[str, str]
    state: str  # created | running | restarting | exited | paused | dead
    health: str | None  # starting | healthy | unhealthy | None (no health check)
    started_at: datetime | None
    restart_count: int
    exit_code: int
    networks: tuple[str, ...]
    ports: tuple[PortBinding, ...]
    volumes: tuple[str, ...]
    health_output: str = ""  # the last health check's output
    network_ids: tuple[str, ...] = ()
    posture: ContainerPosture | None = None  # from inspect only (the list endpoint has none of it)

    @property
    def running(self) -> bool:
        return self.state == "running"


@dataclass(frozen=True)
class NetworkFacts:
    id: str
    name: str
    driver: str
    labels: dict[str, str]
    containers: tuple[str, ...]  # container names attached


@dataclass(frozen=True)
class VolumeFacts:
    name: str
    labels: dict[str, str]
    driver: str = "local"


@dataclass(frozen=True)
class ImageFacts:
    id: str
    tags: tuple[str, ...]
    labels: dict[str, str]
    size: int = 0
    digests: tuple[str, ...] = ()  # repo@sha256:... references of this image


@dataclass(frozen=True)
class ContainerStats:
    memory_bytes: int
    memory_limit: int
    cpu_percent: float | None


@dataclass(frozen=True)
class EngineInfo:
    version: str
    api_version: str
    local: bool  # the engine runs on this host (so a port held here is held for it too)


@dataclass(frozen=True)
class ContainerExit:
    """A container's main process ended (the engine's `die` event: before Docker tears down its network
    and mounts, which a `docker stop` waits for too)."""

    name: str
    exit_code: int


@dataclass(frozen=True)
class Listener:
    """A socket some process on this host has bound (TCP: listening)."""

    bind: str
    port: int
    protocol: str
    holder: str  # "postgres (pid 12)", "pid 12" or "an unknown process"


@dataclass(frozen=True)
class ObservedStack:
    """Everything the planner may know, read in one pass: one list call per kind."""

    engine: EngineInfo
    containers: dict[str, ContainerFacts]  # every container on the engine, by name (list endpoint)
    networks: dict[str, NetworkFacts]  # by name; members derived from the containers
    volumes: dict[str, VolumeFacts]  # by name
    images: dict[str, ImageFacts]  # the image references the desired stack names -> the image present
    listeners: tuple[Listener, ...] | None = None  # host sockets; None: not observed (engine not local)
