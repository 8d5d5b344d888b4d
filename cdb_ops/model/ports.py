"""A published port, as asked for (the desired spec) and as the engine reports it (a container's facts): a
module of its own so reading a container's facts does not define every spec class too."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PortBinding:
    bind: str
    host: int
    container: int
    protocol: str = "tcp"
