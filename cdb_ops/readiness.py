"""Readiness: probe a service actively (SELECT 1, PING, GET /health) instead of waiting for Docker's
health-check interval, and still report Docker's own status. A failed wait explains itself: the
probe's last answer, Docker's last health output and the container's last log lines."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass

from cdb_ops.desired import DesiredService
from cdb_ops.engine import ContainerFacts, Engine
from cdb_ops.errors import HealthTimeout, StepFailed
from cdb_ops.settings import Redactor, Settings
from cdb_ops.stackinfo import host_address

POLL_SECONDS = 0.25
LOG_LINES_ON_FAILURE = 20


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    detail: str


def probe_once(svc: DesiredService, settings: Settings) -> ProbeResult:
    """One active readiness probe from the host, by the service's `ready.probe` kind."""
    ready = svc.spec.ready
    if ready is None or ready.probe == "docker":
        return ProbeResult(True, "no active probe")
    if not svc.container.ports:
        return ProbeResult(False, "no published port to probe")
    host, port = host_address(svc, ready.port)
    # imported here: these clients cost ~0.3 s of start-up that status/plan never need
    import httpx
    import psycopg
    import redis

    try:
        if ready.probe == "postgres":
            with psycopg.connect(
                host=host,
                port=port,
                user=settings.get("POSTGRES_USER"),
                password=settings.get("POSTGRES_PASSWORD"),
                dbname=settings.get("POSTGRES_DB"),
                connect_timeout=2,
            ) as conn:
                conn.execute("SELECT 1")
            return ProbeResult(True, "SELECT 1 ok")
        if ready.probe == "redis":
            client = redis.Redis(
                host=host,
                port=port,
                password=settings.get("REDIS_PASSWORD"),
                socket_timeout=2,
                socket_connect_timeout=2,
            )
            try:
                return ProbeResult(bool(client.ping()), "PING -> PONG")
            finally:
                client.close()
        if ready.probe == "http":
            r = httpx.get(f"http://{host}:{port}{ready.path}", timeout=2.0)
            status = None
            try:
                body = r.json()
                status = body.get("status") if isinstance(body, dict) else None
                summary = str(status or "")
                if (r.status_code != 200 or status not in (None, "ok")) and isinstance(body, dict):
                    summary += " " + json.dumps(body.get("checks", body))[:500]  # say which facts are not ok
            except ValueError:
                summary = r.text.strip().replace("\n", " ")[:300]
            # `degraded` answers 200 (Docker's health check must not flag a passing blip), but a service
            # that just started and is degraded has not reached something it needs yet: not ready
            ok = r.status_code == 200 and status in (None, "ok")
            return ProbeResult(ok, f"GET {ready.path} -> {r.status_code} {summary}".strip())
    except (psycopg.Error, redis.RedisError, httpx.HTTPError, OSError) as exc:
        return ProbeResult(False, f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc) else ''}")
    return ProbeResult(False, f"unknown probe {ready.probe}")


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
        engine: Engine,
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
        has_probe = ready is not None and ready.probe != "docker"
        limit = timeout if timeout is not None else (ready.timeout if ready else 120.0)
        deadline = self.clock() + limit
        last = ProbeResult(False, "not probed yet")
        unhealthy_since: float | None = None
        while True:
            facts = self.engine.container(svc.container.name)
            if facts is not None and facts.state in ("exited", "dead"):
                raise self._failure(
                    StepFailed,
                    svc,
                    facts,
                    last,
                    f"{svc.container.name} exited (code {facts.exit_code}) while starting",
                )
            if facts is not None and facts.state == "running":
                last = probe_once(svc, self.settings) if has_probe else last
                if is_ready(facts, last, has_probe):
                    return last if has_probe else ProbeResult(True, f"docker: {facts.health or 'running'}")
                # Docker's verdict is authoritative only when we have no probe of our own;
                # otherwise give our probe a short grace period after Docker gave up.
                if facts.health == "unhealthy":
                    unhealthy_since = unhealthy_since or self.clock()
                    if not has_probe or self.clock() - unhealthy_since > 10:
                        raise self._failure(HealthTimeout, svc, facts, last, f"{svc.container.name} is unhealthy")
            if self.clock() >= deadline:
                raise self._failure(
                    HealthTimeout,
                    svc,
                    facts,
                    last,
                    f"{svc.container.name} was not ready after {limit:.0f} s",
                )
            self.sleep(POLL_SECONDS)

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
        msg.append(f"  last {len(lines)} log lines of {svc.container.name}:")
        msg += [f"    {ln}" for ln in lines] or ["    (no output)"]
        text = self.redact("\n".join(msg))
        return cls(
            text,
            f"read the log lines above (`docker logs {svc.container.name}` shows all), fix the cause, "
            "then run rebuild again",
            details={
                "service": svc.name,
                "container": svc.container.name,
                "probe": self.redact(last.detail),
                "docker_health": docker_health,
                "health_output": self.redact(facts.health_output if facts else ""),
                "log_tail": [self.redact(ln) for ln in lines],
            },
        )
