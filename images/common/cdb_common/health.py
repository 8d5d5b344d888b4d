"""Health verdicts from facts: each dependency's state plus service-specific checks, free of I/O."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

STATUS_ORDER = {"ok": 0, "degraded": 1, "unhealthy": 2}


def _json_default(value: Any) -> Any:
    return format(value, "f") if isinstance(value, Decimal) else repr(value)


@dataclass
class HealthReport:
    status: str = "ok"
    checks: dict[str, Any] = field(default_factory=dict)

    def worsen(self, status: str) -> None:
        """Raise the verdict to `status` unless it is already worse."""
        if STATUS_ORDER[status] > STATUS_ORDER[self.status]:
            self.status = status

    @staticmethod
    def dumps(body: Any) -> str:
        return json.dumps(body, default=_json_default)


def dependency_verdict(connected: bool, outage_seconds: float, grace_seconds: float) -> str:
    """ok when connected; degraded while a reconnect is within its grace period; then unhealthy."""
    if connected:
        return "ok"
    return "degraded" if outage_seconds <= grace_seconds else "unhealthy"
