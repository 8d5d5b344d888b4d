"""What every validate check reads: the engine, the desired stack, the settings, the redactor and the
stack's containers (inspected once for all checks)."""

from __future__ import annotations

from dataclasses import dataclass, field

from cdb_ops.engine.api import EngineFacts
from cdb_ops.load.desired import DesiredService, DesiredStack
from cdb_ops.load.settings import Settings
from cdb_ops.model.facts import ContainerFacts
from cdb_ops.model.observed import ObservedStack
from cdb_ops.redact import Redactor


@dataclass
class ValidateOptions:
    memory_budget_mb: float = 1536.0  # the memo: core (with its default alerting) under 1.5 GB
    probe: bool = True
    probe_timeout: float = 30.0
    # the synthetic alert's whole path (checks/notify.py): `cdb-ops validate` only, never a rebuild's phase
    alert_path: bool = False
    alert_path_timeout: float = 120.0


@dataclass
class CheckContext:
    engine: EngineFacts
    desired: DesiredStack
    settings: Settings
    options: ValidateOptions
    redact: Redactor
    observed: ObservedStack  # network, volumes and who is attached: the run's one observation
    containers: dict[str, ContainerFacts] = field(default_factory=dict)  # the stack's, inspected


def service_containers(ctx: CheckContext) -> list[tuple[DesiredService, ContainerFacts | None]]:
    return [(svc, ctx.containers.get(svc.container.name)) for svc in ctx.desired.services.values()]


def default_services(ctx: CheckContext) -> list[DesiredService]:
    """What the README's `rebuild` runs (the playbook's default_profiles: core and alerting): the memo's
    memory budget covers all of it."""
    default = set(ctx.desired.stack.default_profiles)
    return [s for s in ctx.desired.services.values() if default & set(s.spec.profiles)]


# -- the checks, in the order a person would look -----------------------------------------------
