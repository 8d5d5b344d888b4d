"""The one probe library: is a Postgres, Redis or HTTP endpoint answering — from the host, or from inside
a container on the stack's network. One class per kind on a base that owns the timeout and the polling
(as testcontainers' wait strategies do); readiness waits, `validate` and `doctor` all probe through it."""

from __future__ import annotations

import functools
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cdb_ops.checks.resp import RedisConnection, RedisError, info_fields
from cdb_ops.engine.api import EngineActions
from cdb_ops.load.desired import DesiredService
from cdb_ops.load.endpoints import host_address
from cdb_ops.load.settings import Settings

if TYPE_CHECKING:
    import urllib3


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    detail: str
    facts: dict[str, Any] = field(default_factory=dict)


class Probe:
    """One kind of check. `once` asks one time (bounded by `timeout`); `wait` polls until it succeeds."""

    timeout: float = 2.0
    interval: float = 0.25

    def once(self) -> ProbeResult:
        raise NotImplementedError

    def __call__(self) -> ProbeResult:
        """`once`, with the errors a probe can meet turned into a failed result (never raised)."""
        try:
            return self.once()
        except Exception as exc:  # noqa: BLE001 - only the errors of a probe's own kind, below
            if not _probe_error(exc):
                raise
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            return ProbeResult(False, f"{type(exc).__name__}: {text}")

    def wait(
        self,
        deadline: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> ProbeResult:
        """Poll until the probe passes or `deadline` (on `clock`) has passed; the last result either way."""
        while True:
            result = self()
            if result.ok or clock() >= deadline:
                return result
            sleep(self.interval)


@dataclass
class PostgresProbe(Probe):
    host: str
    port: int
    user: str | None
    password: str | None
    dbname: str | None
    timeout: float = 2.0
    query: str = "SELECT 1"

    def once(self) -> ProbeResult:
        import psycopg

        with psycopg.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            dbname=self.dbname,
            connect_timeout=max(1, int(self.timeout)),
            application_name="cdb_ops",  # the stack's own session in Postgres' log (validate's log check)
        ) as conn:
            rows = conn.execute(self.query).fetchall()  # type: ignore[call-overload]
        return ProbeResult(True, f"{self.query} ok", {"rows": [r[0] for r in rows]})


@dataclass
class RedisProbe(Probe):
    host: str
    port: int
    password: str | None
    timeout: float = 2.0
    persistence: bool = False  # also read INFO persistence (validate's AOF check)

    def once(self) -> ProbeResult:
        with RedisConnection(self.host, self.port, self.password, self.timeout) as r:
            answer = r.command("PING")
            facts: dict[str, Any] = {}
            if self.persistence:
                facts["aof_enabled"] = info_fields(r.command("INFO", "persistence")).get("aof_enabled") == "1"
        return ProbeResult(answer == "PONG", f"PING -> {answer}", facts)


def _probe_error(exc: BaseException) -> bool:
    """An error a probe reports as its result: the endpoint refused, timed out or answered wrongly.
    psycopg's errors count only once a Postgres probe has imported it (an HTTP probe never does)."""
    if isinstance(exc, (RedisError, HttpError, OSError)):
        return True
    psycopg = sys.modules.get("psycopg")
    return psycopg is not None and isinstance(exc, psycopg.Error)


class HttpError(Exception):
    """An HTTP request to a stack endpoint failed: refused, timed out, or answered 4xx/5xx when the
    caller asked for success. Carries urllib3's own error as its cause."""


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    data: bytes

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body as JSON (ValueError when it is none)."""
        return json.loads(self.data)


@functools.cache
def http_pool() -> urllib3.PoolManager:
    """One connection pool per process, shared by every probe and thread. urllib3, not httpx: docker-py
    has imported it already (through requests), while httpx and its TLS context would add about 0.35 s
    to every rebuild and validate on this machine for plain-HTTP GETs to loopback. No retries: a probe
    that fails says so at once, and the caller decides whether to poll."""
    import urllib3

    return urllib3.PoolManager(num_pools=32, maxsize=8, retries=False)


def http_request(method: str, url: str, *, timeout: float, json_body: Any = None, ok_only: bool = False) -> HttpAnswer:
    """One request to a stack endpoint; any failure (and with `ok_only` a 4xx/5xx answer) is HttpError."""
    import urllib3

    body = None if json_body is None else json.dumps(json_body).encode()
    headers = {"Content-Type": "application/json"} if body is not None else None
    try:
        r = http_pool().request(method, url, body=body, headers=headers, timeout=urllib3.Timeout(total=timeout))
    except urllib3.exceptions.HTTPError as exc:
        # urllib3 prefixes the connection object ("<HTTPConnection object at 0x…>: Failed to …")
        reason = str(exc).split(">: ", 1)[-1] if str(exc).startswith("<") else str(exc)
        raise HttpError(f"{type(exc).__name__}: {reason}") from exc
    if ok_only and r.status >= 400:
        raise HttpError(f"{method} {url} -> {r.status}")
    return HttpAnswer(r.status, r.data)


@dataclass
class HttpProbe(Probe):
    """GET a /health endpoint: ready only on 200 with status ok (or no status at all). `degraded` answers
    200 so Docker's health check does not flag a passing blip, but a service that just started and is
    degraded has not reached something it needs yet: not ready."""

    url: str
    path: str = "/health"
    timeout: float = 2.0

    def once(self) -> ProbeResult:
        r = http_request("GET", self.url, timeout=self.timeout)
        status = None
        body: Any
        try:
            body = r.json()
            status = body.get("status") if isinstance(body, dict) else None
            summary = str(status or "")
            if (r.status != 200 or status not in (None, "ok")) and isinstance(body, dict):
                summary += " " + json.dumps(body.get("checks", body))[:500]  # say which facts are not ok
        except ValueError:
            body = {"raw": r.text[:200]}
            summary = r.text.strip().replace("\n", " ")[:300]
        ok = r.status == 200 and status in (None, "ok")
        return ProbeResult(
            ok,
            f"GET {self.path} -> {r.status} {summary}".strip(),
            {"url": self.url, "http_status": r.status, "status": status, "body": body},
        )


@dataclass
class InContainerTcpProbe(Probe):
    """From inside `container` (so through the stack's network and its DNS): does host:port accept TCP?"""

    engine: EngineActions
    container: str
    host: str
    port: int

    _SCRIPT = (
        "import socket,sys\ntry:\n  socket.create_connection((sys.argv[1], int(sys.argv[2])), 3).close(); print('ok')\n"
        "except OSError as e:\n  print(type(e).__name__, e); sys.exit(1)\n"
    )

    def once(self) -> ProbeResult:
        code, text = self.engine.exec(self.container, ["python3", "-c", self._SCRIPT, self.host, str(self.port)])
        return ProbeResult(code == 0, text.strip(), {"exit_code": code, "output": text})


@dataclass
class PgIsReadyProbe(Probe):
    """`pg_isready` inside the Postgres container, against its own network name (TCP, not the socket)."""

    engine: EngineActions
    container: str
    user: str

    def once(self) -> ProbeResult:
        code, text = self.engine.exec(
            self.container, ["pg_isready", "-h", self.container, "-p", "5432", "-U", self.user]
        )
        return ProbeResult(code == 0, text.strip() or f"exit {code}", {"exit_code": code})


def readiness_probe(svc: DesiredService, settings: Settings) -> Probe | None:
    """The host-side probe a service's `ready.probe` names (None: Docker's own health check decides)."""
    ready = svc.spec.ready
    if ready is None or ready.probe == "docker" or not svc.container.ports:
        return None
    host, port = host_address(svc, ready.port)
    if ready.probe == "postgres":
        return PostgresProbe(
            host,
            port,
            settings.get("POSTGRES_USER"),
            settings.get("POSTGRES_PASSWORD"),
            settings.get("POSTGRES_DB"),
        )
    if ready.probe == "redis":
        return RedisProbe(host, port, settings.get("REDIS_PASSWORD"))
    return HttpProbe(f"http://{host}:{port}{ready.path}", ready.path)
