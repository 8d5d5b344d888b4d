"""The plan: every change a run would make, each with its cause — what `plan` prints and `rebuild` does."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

from cdb_ops.model.observed import ImageFacts
from cdb_ops.model.resources import ContainerSpec

Action = Literal[
    "create", "recreate", "start", "remove", "build", "pull", "ok", "conflict", "orphan", "rotate", "drain", "keep"
]
Resource = Literal["network", "volume", "image", "container", "secret", "book"]


@dataclass(frozen=True)
class Change:
    resource: Resource
    name: str
    action: Action
    reason: str = ""
    service: str | None = None

    @property
    def changes_something(self) -> bool:
        return self.action not in ("ok", "orphan", "conflict", "keep")

    def to_dict(self) -> dict[str, object]:
        return {k: v for k, v in asdict(self).items()}

    def __str__(self) -> str:
        return f"{self.resource}:{self.name} {self.action}" + (f" ({self.reason})" if self.reason else "")


@dataclass(frozen=True)
class ImageChoice:
    """The image a service will run, as far as it can be known without pulling or building."""

    action: Literal["ok", "pull", "build"]
    ref: str  # the image reference that will be used
    image: ImageFacts | None
    reason: str = ""
    fallback: bool = False


@dataclass
class Plan:
    changes: list[Change] = field(default_factory=list)
    # the same changes, indexed for the phases that carry them out
    network: Change | None = None
    volumes: dict[str, Change] = field(default_factory=dict)  # volume -> its change
    images: dict[str, ImageChoice] = field(default_factory=dict)  # service -> the image it will run
    containers: dict[str, Change] = field(default_factory=dict)  # service -> its container's change
    specs: dict[str, ContainerSpec] = field(default_factory=dict)  # service -> the exact container to create
    removals: list[Change] = field(default_factory=list)  # cleanup's share: remove (or keep, as orphan)
    # service -> a secret its data volume keeps from its first start, to be set in place (ALTER ROLE)
    rotations: dict[str, Change] = field(default_factory=dict)
    # books put into REDUCING and drained of in-flight orders before risk/execution are swapped (apply/drain.py)
    drain: Change | None = None
    drained_services: list[str] = field(default_factory=list)  # the services whose swap needs the drain
    notes: list[str] = field(default_factory=list)  # what a person should know, changing nothing

    @property
    def conflicts(self) -> list[Change]:
        return [c for c in self.changes if c.action == "conflict"]

    @property
    def pending(self) -> list[Change]:
        return [c for c in self.changes if c.changes_something]

    def __str__(self) -> str:
        return "\n".join(str(c) for c in self.changes)
