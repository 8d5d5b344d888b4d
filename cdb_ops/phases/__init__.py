"""The phases of a run. Each module does one job and returns what it did; the runner sequences them."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

from cdb_ops.desired import DesiredStack
from cdb_ops.engine import Engine, ImageFacts
from cdb_ops.playbook import PhaseSpec
from cdb_ops.progress import Progress
from cdb_ops.project import Project
from cdb_ops.readiness import HealthWait
from cdb_ops.settings import Redactor, Settings
from cdb_ops.validate import CheckResult, ValidateOptions

# what a step did to the engine or the database; everything else (ok, wait, orphan, check verdicts) is a report
CHANGING_ACTIONS = frozenset({"create", "recreate", "start", "remove", "build", "pull", "migrate", "backup"})


@dataclass
class StepResult:
    phase: str
    resource: str
    name: str
    action: str  # create | recreate | start | remove | build | pull | ok | orphan | migrate | wait
    detail: str = ""
    seconds: float = 0.0
    service: str | None = None

    @property
    def changed(self) -> bool:
        return self.action in CHANGING_ACTIONS

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["seconds"] = round(self.seconds, 3)
        return d


@dataclass
class RunOptions:
    clean: bool = False
    wipe_data: bool = False
    remove_orphans: bool = False
    no_cache: bool = False
    yes: bool = False
    validate: ValidateOptions = field(default_factory=ValidateOptions)


@dataclass
class PhaseContext:
    engine: Engine
    desired: DesiredStack
    settings: Settings
    project: Project
    progress: Progress
    redact: Redactor
    options: RunOptions
    waiter: HealthWait
    images: dict[str, ImageFacts] = field(default_factory=dict)  # service -> the image it runs
    steps: list[StepResult] = field(default_factory=list)
    checks: list[CheckResult] = field(default_factory=list)  # filled by the validate phase
    skipped: dict[str, str] = field(default_factory=dict)  # optional services left out, and why
    ready: set[str] = field(default_factory=set)  # services converged and ready in this run
    set_aside: dict[str, str] = field(default_factory=dict)  # service -> old container kept until the new is ready

    def record(
        self,
        phase: str,
        resource: str,
        name: str,
        action: str,
        detail: str = "",
        seconds: float = 0.0,
        service: str | None = None,
    ) -> StepResult:
        step = StepResult(phase, resource, name, action, self.redact(detail), seconds, service)
        self.steps.append(step)
        self.progress.step(phase, resource, name, action, step.detail, seconds)
        return step

    @contextmanager
    def timed(self) -> Iterator[Callable[[], float]]:
        start = time.monotonic()
        yield lambda: time.monotonic() - start


PhaseFn = Callable[[PhaseContext, PhaseSpec], None]


def registry() -> dict[str, PhaseFn]:
    from cdb_ops.phases import cleanup, images, network, schema, services, validate, volumes

    return {
        "cleanup": cleanup.run,
        "network": network.run,
        "volumes": volumes.run,
        "images": images.run,
        "services": services.run,
        "schema": schema.run,
        "validate": validate.run,
    }
