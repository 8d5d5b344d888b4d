"""What the engine and the host report about the stack beyond its containers (networks, volumes, images,
the engine, host sockets), and `ObservedStack`: one snapshot of them taken once per run, from which the
planner decides without asking the engine again."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

from cdb_ops.model.facts import ContainerFacts


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
class EngineInfo:
    version: str
    api_version: str
    local: bool  # the engine runs on this host (so a port held here is held for it too)


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
    # How to list the host's sockets (None: not observed, the engine is not local). Read only when the
    # plan would create or start a container with a host port: listing them maps every socket to its
    # process, ~70 ms of /proc walking that a run changing nothing has no use for.
    read_listeners: Callable[[], tuple[Listener, ...]] | None = field(default=None, compare=False, repr=False)

    @cached_property
    def listeners(self) -> tuple[Listener, ...] | None:
        """The sockets processes on this host hold (TCP listening, UDP bound); None: not observed."""
        return self.read_listeners() if self.read_listeners is not None else None
