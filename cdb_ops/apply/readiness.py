"""Readiness: probe a service actively (SELECT 1, PING, GET /health, through the probe library) instead
of waiting for Docker's health-check interval, and still report Docker's own status. A failed wait
explains itself: the probe's last answer, Docker's last health output and the container's last log lines."""

from __future__ import annotations

import time
from collections.abc import Callable

from cdb_ops.checks.probes import Probe, ProbeResult, readiness_probe
from cdb_ops.engine.api import EngineFacts
from cdb_ops.errors import HealthTimeout, StepFailed
from cdb_ops.load.desired import DesiredService
from cdb_ops.load.settings import Settings
from cdb_ops.model.facts import SIGKILL_EXIT, ContainerFacts, oom_remedy
from cdb_ops.redact import Redactor

POLL_SECONDS = 0.1  # a refused connection costs nothing; an inspect a few ms of the engine
LOG_LINES_ON_FAILURE = 20


def is_ready(facts: ContainerFacts | None, probe: ProbeResult, has_probe: bool) -> bool:
    if facts is None or facts.state != "running":
        return False
    if has_probe:
        return probe.ok
    if facts.health is not None:  # no active probe: Docker's health check decides
        return facts.health == "healthy"
    return True


class HealthWait:
    """Wait until one service is ready, failing fast when it exits or Docker calls it unhealthy."""

    def __init__(
        self,
        engine: EngineFacts,
        settings: Settings,
        redact: Redactor,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.engine = engine
        self.settings = settings
        self.redact = redact
        self.clock = clock
        self.sleep = sleep

    def wait(self, svc: DesiredService, timeout: float | None = None) -> ProbeResult:
        ready = svc.spec.ready
        limit = timeout if timeout is not None else (ready.timeout if ready else 120.0)
        check = ContainerReady(self, svc, readiness_probe(svc, self.settings))
        result = check.wait(self.clock() + limit, self.clock, self.sleep)
        if not result.ok:
            raise self._failure(
                HealthTimeout, svc, check.facts, check.last, f"{svc.container.name} was not ready after {limit:.0f} s"
            )
        return result

    def _failure(
        self,
        cls: type[StepFailed] | type[HealthTimeout],
        svc: DesiredService,
        facts: ContainerFacts | None,
        last: ProbeResult,
        headline: str,
    ) -> StepFailed | HealthTimeout:
        logs = self.engine.logs(svc.container.name, tail=LOG_LINES_ON_FAILURE)
        lines = [ln for ln in logs.splitlines() if ln.strip()][-LOG_LINES_ON_FAILURE:]
        docker_health = facts.health if facts else "absent"
        msg = [headline, f"  probe ({svc.spec.ready.probe if svc.spec.ready else 'docker'}): {last.detail}"]
        msg.append(
            f"  docker health: {docker_health}" + (f" — {facts.health_output}" if facts and facts.health_output else "")
        )
        gone = facts.last_exit if facts else None
        if gone is not None:
            msg.append(f"  last exit: {gone.describe()}")
        msg.append(f"  last {len(lines)} log lines of {svc.container.name}:")
        msg += [f"    {ln}" for ln in lines] or ["    (no output)"]
        text = self.redact("\n".join(msg))
        remedy = (
            f"read the log lines above (`docker logs {svc.container.name}` shows all), fix the cause, "
            "then run rebuild again"
        )
        if gone is not None and gone.killed:
            remedy = oom_remedy(svc.name, gone.oom_killed)
        return cls(
            text,
            remedy,
            details={
                "service": svc.name,
                "container": svc.container.name,
                "probe": self.redact(last.detail),
                "docker_health": docker_health,
                "health_output": self.redact(facts.health_output if facts else ""),
                "log_tail": [self.redact(ln) for ln in lines],
                "last_exit": gone.to_dict() if gone else None,
            },
        )


class ContainerReady(Probe):
    """One service's readiness as a probe (polled by the probe base): its container runs, and its own
    probe answers — or, without one, Docker's health check says healthy. An exit, or Docker's lasting
    `unhealthy`, fails at once instead of waiting out the timeout."""

    interval = POLL_SECONDS

    def __init__(self, owner: HealthWait, svc: DesiredService, active: Probe | None):
        self.owner, self.svc, self.active = owner, svc, active
        self.facts: ContainerFacts | None = None
        self.last = ProbeResult(False, "not probed yet")
        self.unhealthy_since: float | None = None
        self.restarts_at_start: int | None = None

    def once(self) -> ProbeResult:
        svc, owner = self.svc, self.owner
        facts = self.facts = owner.engine.container(svc.container.name)
        if facts is not None and facts.state in ("exited", "dead"):
            raise owner._failure(
                StepFailed,
                svc,
                facts,
                self.last,
                f"{svc.container.name} exited (code {facts.exit_code}) while starting",
            )
        if facts is not None:
            if self.restarts_at_start is None:
                self.restarts_at_start = facts.restart_count
            # OOM-killed while we wait (Docker restarting it, or restarted it since): a loop that waiting out
            # the timeout would only hide; an OOM kill from before this wait (restarts unchanged) is not one.
            # `restarting` means it has just exited, so its flag and code are this exit's: a SIGKILL (137) the
            # engine did not flag as OOMKilled (some cgroup v2 setups) is the same loop.
            if facts.oom_killed and (facts.state == "restarting" or facts.restart_count > self.restarts_at_start):
                raise owner._failure(
                    StepFailed, svc, facts, self.last, f"{svc.container.name} was OOM-killed while starting"
                )
            if facts.state == "restarting" and facts.exit_code == SIGKILL_EXIT:
                raise owner._failure(
                    StepFailed, svc, facts, self.last, f"{svc.container.name} was killed (SIGKILL) while starting"
                )
        if facts is None or facts.state != "running":
            return ProbeResult(False, f"container {facts.state if facts else 'absent'}")
        has_probe = self.active is not None
        if self.active is not None:
            self.last = self.active()
        if is_ready(facts, self.last, has_probe):
            return self.last if has_probe else ProbeResult(True, f"docker: {facts.health or 'running'}")
        # Docker's verdict is authoritative only when we have no probe of our own;
        # otherwise give our probe a short grace period after Docker gave up.
        if facts.health == "unhealthy":
            self.unhealthy_since = self.unhealthy_since or owner.clock()
            if not has_probe or owner.clock() - self.unhealthy_since > 10:
                raise owner._failure(HealthTimeout, svc, facts, self.last, f"{svc.container.name} is unhealthy")
        return ProbeResult(False, self.last.detail)
