"""What the phases of a run share: the engine, the desired stack, the current plan (and the observation
it was made from), the run's options, and the steps recorded so far."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

from cdb_ops.apply.readiness import HealthWait
from cdb_ops.checks.context import ValidateOptions
from cdb_ops.engine.api import Engine
from cdb_ops.load.desired import DesiredStack
from cdb_ops.load.project import Project
from cdb_ops.load.settings import Settings
from cdb_ops.load.specs import PhaseSpec
from cdb_ops.model.observed import ObservedStack
from cdb_ops.model.plan import Plan
from cdb_ops.model.progress import Progress
from cdb_ops.model.results import CheckResult, StepResult
from cdb_ops.model.upgrade import Upgrade
from cdb_ops.plan.observe import observe
from cdb_ops.plan.planner import PlanOptions, plan_stack
from cdb_ops.redact import Redactor


@dataclass
class RunOptions:
    clean: bool = False
    wipe_data: bool = False
    remove_orphans: bool = False
    no_cache: bool = False
    yes: bool = False
    requested_by: tuple[str, str] = ("--clean", "--wipe-data")  # how plan reasons name the request
    validate: ValidateOptions = field(default_factory=ValidateOptions)

    def plan_options(self, project: Project, check_ports: bool = True) -> PlanOptions:
        """The planner's options for these options in `project` — made here only, so the run, `plan` and
        the preview `--wipe-data` confirms plan alike — with the rotation state under .cdb/ read now."""
        from cdb_ops.apply.rotate import known_passwords, pending_rotations

        return PlanOptions(
            pending_rotations=pending_rotations(project),
            known_passwords=known_passwords(project),
            remove_orphans=self.remove_orphans,
            no_cache=self.no_cache,
            clean=self.clean,
            wipe_data=self.wipe_data,
            requested_by=self.requested_by,
            check_ports=check_ports,
        )


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
    observed: ObservedStack
    plan: Plan
    plan_options: PlanOptions
    steps: list[StepResult] = field(default_factory=list)
    checks: list[CheckResult] = field(default_factory=list)  # filled by the validate phase
    skipped: dict[str, str] = field(default_factory=dict)  # optional services left out, and why
    ready: set[str] = field(default_factory=set)  # services converged and ready in this run
    set_aside: dict[str, str] = field(default_factory=dict)  # service -> old container kept until the new is ready
    obtained: set[str] = field(default_factory=set)  # image refs pulled or built in this run
    have_image: set[str] = field(default_factory=set)  # services whose image this run has seen to
    upgrade: Upgrade = field(default_factory=Upgrade)  # drain, swaps, migrations: kept or rolled back at the end
    command: str = "rebuild"  # the command running (who a drain's state change is recorded as)
    run_id: str = ""

    def replan(self) -> None:
        """Observe again and plan again: after removals, and once images exist (their ids are known only
        then). Cleanup's share is done by then, and ports were checked by the preflight."""
        fresh = frozenset(s.name for s in self.steps if s.resource == "volume" and s.action == "create")
        self.plan_options = replace(
            self.plan_options,
            clean=False,
            wipe_data=False,
            check_ports=False,
            obtained=frozenset(self.obtained),
            fresh_volumes=fresh,
        )
        self.observed = observe(self.engine, self.desired, host_ports=False)
        self.plan = plan_stack(self.desired, self.observed, self.plan_options)

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
