"""What cdb-ops asks the engine for: container, port, mount and health-check specs (plain data)."""

from __future__ import annotations

from dataclasses import dataclass, field

from cdb_ops.model.ports import PortBinding


@dataclass(frozen=True)
class MountBinding:
    kind: str  # "volume" | "bind"
    source: str
    target: str
    read_only: bool = False


@dataclass(frozen=True)
class Healthcheck:
    test: tuple[str, ...]
    interval: float
    timeout: float
    retries: int
    start_period: float


@dataclass(frozen=True)
class LogConfig:
    """Docker's log driver and its options (`max-size`/`max-file`: the rotation that caps a log)."""

    driver: str
    options: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Hardening:
    """What a container may do beyond running its process (CIS Docker Benchmark §5)."""

    cap_drop: tuple[str, ...] = ()
    cap_add: tuple[str, ...] = ()
    security_opt: tuple[str, ...] = ()
    read_only: bool = False
    tmpfs: dict[str, str] = field(default_factory=dict)  # path -> mount options (size=16m)
    pids_limit: int | None = None


@dataclass(frozen=True)
class ContainerSpec:
    name: str
    image: str  # image id (sha256:...) or reference
    labels: dict[str, str]
    env: dict[str, str] = field(default_factory=dict)
    command: tuple[str, ...] | None = None
    ports: tuple[PortBinding, ...] = ()
    mounts: tuple[MountBinding, ...] = ()
    network: str | None = None
    aliases: tuple[str, ...] = ()
    healthcheck: Healthcheck | None = None
    restart: str = "unless-stopped"
    mem_limit: str | None = None
    user: str | None = None
    hostname: str | None = None
    logging: LogConfig | None = None  # None: the engine's default driver, uncapped
    hardening: Hardening | None = None  # None: the engine's defaults
