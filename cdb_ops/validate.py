"""`validate`: the memo's success criteria as named checks, each pass / warn / fail with the facts
and, on failure, the remedy — ending with an end-to-end probe through the real trading pipeline."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from cdb_ops.desired import LABEL_SYSTEM, DesiredService, DesiredStack
from cdb_ops.engine import ContainerFacts, Engine
from cdb_ops.errors import CdbError
from cdb_ops.settings import Redactor, Settings
from cdb_ops.stackinfo import EXPECTED_TABLES, host_address, postgres_conninfo

Status = Literal["pass", "warn", "fail", "skip"]
LOG_SCAN_LINES = 5000
# what a lost database connection looks like in our services' and in libpq's words
DB_CONNECTION_ERROR = re.compile(
    r"database connection|could not connect to server|connection to server at .* failed|"
    r"password authentication failed|server closed the connection unexpectedly|"
    r"could not translate host name",
    re.IGNORECASE,
)
PLAIN_ERROR = re.compile(r"\b(ERROR|FATAL|PANIC)\b")
# Postgres says FATAL to a client that connects while it starts or stops: readiness probes (ours and
# the services' reconnect loops) do exactly that, so these lines are expected, not a fault.
# A serialization failure (SQLSTATE 40001) is the contract of REPEATABLE READ: the risk manager retries
# its transaction when execution changed the portfolio under it; Postgres logs it anyway.
BENIGN = re.compile(
    r"the database system is (starting up|shutting down|in recovery mode|not yet accepting connections)|"
    r"terminating connection due to administrator command|"
    r"could not serialize access due to (concurrent update|read/write dependencies)"
)


@dataclass
class CheckResult:
    name: str
    status: Status
    detail: str
    remedy: str = ""
    facts: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "detail": self.detail,
            "remedy": self.remedy,
            "facts": self.facts,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class ValidateOptions:
    memory_budget_mb: float = 1536.0  # the memo: core services under 1.5 GB
    probe: bool = True
    probe_timeout: float = 30.0


@dataclass
class _Ctx:
    engine: Engine
    desired: DesiredStack
    settings: Settings
    options: ValidateOptions
    redact: Redactor
    containers: dict[str, ContainerFacts] = field(default_factory=dict)


def _service_containers(ctx: _Ctx) -> list[tuple[DesiredService, ContainerFacts | None]]:
    return [(svc, ctx.containers.get(svc.container.name)) for svc in ctx.desired.services.values()]


def _core(ctx: _Ctx) -> list[DesiredService]:
    return [s for s in ctx.desired.services.values() if "core" in s.spec.profiles]


# -- the checks, in the order a person would look -----------------------------------------------


def check_engine(ctx: _Ctx) -> list[CheckResult]:
    info = ctx.engine.info()
    return [
        CheckResult(
            "engine",
            "pass",
            f"Docker {info.version} (API {info.api_version}) answers",
            facts={"version": info.version, "api_version": info.api_version},
        )
    ]


def check_network(ctx: _Ctx) -> list[CheckResult]:
    net = ctx.engine.network(ctx.desired.network)
    name = f"network {ctx.desired.network}"
    if net is None:
        return [CheckResult(name, "fail", "does not exist", "run `cdb-ops rebuild`")]
    if net.labels.get(LABEL_SYSTEM) != ctx.desired.system:
        return [
            CheckResult(
                name,
                "fail",
                "exists but was not created by cdb-ops",
                "remove it after checking, then `cdb-ops rebuild`",
            )
        ]
    running = sorted(c.name for c in ctx.containers.values() if c.running)
    detached = [n for n in running if n not in net.containers]
    facts = {"members": list(net.containers), "running": running}
    if detached:
        return [
            CheckResult(
                name,
                "fail",
                f"running but not attached: {', '.join(detached)}",
                "run `cdb-ops rebuild` (it recreates containers that lost their network)",
                facts,
            )
        ]
    return [CheckResult(name, "pass", f"{len(net.containers)} member(s): {', '.join(net.containers)}", facts=facts)]


def check_volumes(ctx: _Ctx) -> list[CheckResult]:
    missing, foreign = [], []
    for vname in ctx.desired.volumes:
        vol = ctx.engine.volume(vname)
        if vol is None:
            missing.append(vname)
        elif vol.labels.get(LABEL_SYSTEM) != ctx.desired.system:
            foreign.append(vname)
    facts = {"volumes": list(ctx.desired.volumes), "missing": missing, "foreign": foreign}
    if missing or foreign:
        detail = "; ".join(
            p
            for p in (
                f"missing: {', '.join(missing)}" if missing else "",
                f"not ours: {', '.join(foreign)}" if foreign else "",
            )
            if p
        )
        return [CheckResult("volumes", "fail", detail, "run `cdb-ops rebuild` (it creates missing volumes)", facts)]
    return [CheckResult("volumes", "pass", f"{len(ctx.desired.volumes)} present", facts=facts)]


def check_containers(ctx: _Ctx) -> list[CheckResult]:
    out = []
    for svc, c in _service_containers(ctx):
        name = f"container {svc.container.name}"
        if c is None and svc.spec.priority == "optional":
            out.append(
                CheckResult(
                    name,
                    "warn",
                    "does not exist (optional service)",
                    "rebuild prints why it was skipped (e.g. its image cannot be pulled here)",
                )
            )
            continue
        if c is None:
            out.append(CheckResult(name, "fail", "does not exist", "run `cdb-ops rebuild`"))
            continue
        facts = {"state": c.state, "health": c.health, "restarts": c.restart_count, "exit_code": c.exit_code}
        if not c.running:
            out.append(
                CheckResult(
                    name,
                    "fail",
                    f"{c.state} (exit code {c.exit_code})",
                    f"see `cdb-ops logs {svc.name}`; `cdb-ops rebuild` starts it again",
                    facts,
                )
            )
        elif c.health == "unhealthy":
            out.append(
                CheckResult(
                    name,
                    "fail",
                    f"unhealthy: {ctx.redact(c.health_output)[:200]}",
                    f"see `cdb-ops logs {svc.name}` and `cdb-ops doctor`",
                    facts,
                )
            )
        elif c.restart_count:
            out.append(
                CheckResult(
                    name,
                    "warn",
                    f"running but restarted {c.restart_count} time(s)",
                    f"see `cdb-ops logs {svc.name} --errors` for why it crashed",
                    facts,
                )
            )
        elif c.health == "starting":
            out.append(
                CheckResult(
                    name,
                    "warn",
                    "running, Docker's health check has not passed yet",
                    "wait a few seconds and validate again",
                    facts,
                )
            )
        else:
            out.append(CheckResult(name, "pass", f"running, {c.health or 'no health check'}, 0 restarts", facts=facts))
    return out


def check_health_endpoints(ctx: _Ctx) -> list[CheckResult]:
    from concurrent.futures import ThreadPoolExecutor

    services = [
        s
        for s in ctx.desired.services.values()
        if s.spec.ready
        and s.spec.ready.probe == "http"
        and not (s.spec.priority == "optional" and s.container.name not in ctx.containers)
    ]
    if not services:
        return []
    with ThreadPoolExecutor(max_workers=len(services)) as pool:
        return list(pool.map(_health_endpoint, services))


def _health_endpoint(svc: DesiredService) -> CheckResult:
    import httpx

    ready = svc.spec.ready
    assert ready is not None
    addr = host_address(svc, ready.port)
    url = f"http://{addr[0]}:{addr[1]}{ready.path}"
    name = f"health {svc.name}"
    try:
        r = httpx.get(url, timeout=3.0)
    except httpx.HTTPError as exc:
        return CheckResult(
            name,
            "fail",
            f"GET {url}: {type(exc).__name__}",
            f"is {svc.container.name} running? `cdb-ops status`",
            {"url": url},
        )
    try:
        body = r.json()
    except ValueError:
        body = {"raw": r.text[:200]}
    status = body.get("status") if isinstance(body, dict) else None
    facts = {"url": url, "http_status": r.status_code, "body": body}
    if r.status_code == 200 and status in (None, "ok"):
        return CheckResult(name, "pass", f"{r.status_code} {status or ''}".strip(), facts=facts)
    if r.status_code == 200:
        return CheckResult(name, "warn", f"{status}: {_failing_facts(body)}", f"see `cdb-ops logs {svc.name}`", facts)
    return CheckResult(
        name,
        "fail",
        f"{r.status_code} {status or ''}: {_failing_facts(body)}",
        f"see `cdb-ops logs {svc.name}` and `cdb-ops doctor`",
        facts,
    )


def _failing_facts(body: Any) -> str:
    if not isinstance(body, dict):
        return ""
    checks = body.get("checks") or {}
    bad = [k for k, v in checks.items() if isinstance(v, dict) and v.get("status") not in (None, "ok")]
    return ", ".join(bad) or json.dumps(checks)[:200]


def check_postgres(ctx: _Ctx) -> list[CheckResult]:
    import psycopg

    from cdb_ops.migrations import Migrator

    info = postgres_conninfo(ctx.desired, ctx.settings)
    try:
        with psycopg.connect(**info, connect_timeout=3) as conn:
            tables = [
                r[0]
                for r in conn.execute(
                    "SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
                )
            ]
    except psycopg.Error as exc:
        return [
            CheckResult(
                "postgres",
                "fail",
                ctx.redact(str(exc).strip().splitlines()[-1] if str(exc) else "error"),
                "see `cdb-ops logs postgres`; `cdb-ops doctor` checks the usual causes",
            )
        ]
    missing = [t for t in EXPECTED_TABLES if t not in tables]
    states = Migrator(info, ctx.desired.project.schema_dir).status()
    behind = [f"{s.version:03d}_{s.name}: {s.state}" for s in states if s.state != "applied"]
    facts = {"tables": sorted(tables), "missing_tables": missing, "migrations": [s.to_dict() for s in states]}
    out = [CheckResult("postgres", "pass", f"ready at {info['host']}:{info['port']}", facts={"port": info["port"]})]
    if missing:
        out.append(
            CheckResult(
                "postgres tables",
                "fail",
                f"missing: {', '.join(missing)}",
                "`cdb-ops rebuild` re-creates them: it re-applies the migration that creates a missing table "
                "(its rows are gone; `cdb-ops restore` brings back a backup)",
                facts,
            )
        )
    else:
        out.append(
            CheckResult("postgres tables", "pass", f"all {len(EXPECTED_TABLES)} expected tables present", facts=facts)
        )
    if behind:
        out.append(CheckResult("migrations", "fail", "; ".join(behind), "run `cdb-ops schema migrate`", facts))
    else:
        out.append(CheckResult("migrations", "pass", f"{len(states)} applied, none pending", facts=facts))
    return out


def check_redis(ctx: _Ctx) -> list[CheckResult]:
    import redis

    svc = next((s for s in ctx.desired.services.values() if s.spec.ready and s.spec.ready.probe == "redis"), None)
    if svc is None:
        return []
    host, port = host_address(svc, None)
    client = redis.Redis(host=host, port=port, password=ctx.settings.get("REDIS_PASSWORD"), socket_timeout=3)
    try:
        client.ping()
        info = client.info("persistence")
        aof = bool(info.get("aof_enabled"))
        return [
            CheckResult(
                "redis",
                "pass" if aof else "warn",
                f"PONG; AOF {'on' if aof else 'OFF'}",
                "" if aof else "the stack runs redis with --appendonly yes; rebuild",
                {"aof_enabled": aof},
            )
        ]
    except redis.RedisError as exc:
        return [CheckResult("redis", "fail", ctx.redact(str(exc)), "see `cdb-ops logs redis`")]
    finally:
        client.close()


def error_lines(text: str) -> tuple[list[str], list[str]]:
    """(ERROR lines, database-connection error lines) of a log. Services log JSON lines with a
    `level`; Postgres and Redis log plain text."""
    errors, db_errors = [], []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        level = None
        if line.startswith("{"):
            try:
                level = str(json.loads(line).get("level", "")).upper()
            except (ValueError, AttributeError):
                level = None
        is_error = level in ("ERROR", "CRITICAL") if level is not None else bool(PLAIN_ERROR.search(line))
        if is_error and BENIGN.search(line):
            continue
        if is_error:
            errors.append(line)
        if DB_CONNECTION_ERROR.search(line) and (is_error or level is None):
            db_errors.append(line)
    return errors, db_errors


def _repaired_at(ctx: _Ctx) -> dict[str, datetime]:
    """Container -> when rebuild last repaired it in place: the database's lines before its last schema
    repair (a dropped table re-created) are the errors that repair fixed, not a fault now."""
    import psycopg

    from cdb_ops.migrations import Migrator
    from cdb_ops.stackinfo import postgres_service

    try:
        pg = ctx.desired.services.get(postgres_service(ctx.desired))
        at = Migrator(postgres_conninfo(ctx.desired, ctx.settings), ctx.desired.project.schema_dir).last_repair()
    except (CdbError, psycopg.Error):
        return {}  # the postgres checks say why
    return {pg.container.name: at} if pg is not None and at is not None else {}


def check_logs(ctx: _Ctx) -> list[CheckResult]:
    out = []
    repaired = _repaired_at(ctx)
    for svc, c in _service_containers(ctx):
        if c is None or c.started_at is None:
            continue
        since, since_what = c.started_at, "start"
        if repaired.get(svc.container.name, since) > since:
            since, since_what = repaired[svc.container.name], "the schema repair"
        text = ctx.redact(ctx.engine.logs(svc.container.name, tail=LOG_SCAN_LINES, since=since))
        errors, db_errors = error_lines(text)
        name = f"logs {svc.name}"
        facts = {
            "error_lines": len(errors),
            "db_connection_errors": len(db_errors),
            "first": errors[:3],
            "since": since.isoformat(),
        }
        if db_errors:
            out.append(
                CheckResult(
                    name,
                    "fail",
                    f"{len(db_errors)} database-connection error(s) since {since_what}: {db_errors[0][:200]}",
                    "`cdb-ops doctor` checks network, DNS and pg_isready",
                    facts,
                )
            )
        elif errors:
            out.append(
                CheckResult(
                    name,
                    "fail",
                    f"{len(errors)} ERROR line(s) since {since_what}: {errors[0][:200]}",
                    f"`cdb-ops logs {svc.name} --errors` shows them all",
                    facts,
                )
            )
        else:
            out.append(CheckResult(name, "pass", f"no ERROR lines since {since_what}", facts=facts))
    return out


def check_memory(ctx: _Ctx) -> list[CheckResult]:
    core = [s for s in _core(ctx)]
    ids = {
        s.name: ctx.containers[s.container.name].id
        for s in core
        if s.container.name in ctx.containers and ctx.containers[s.container.name].running
    }
    stats = ctx.engine.stats_many(list(ids.values()), cpu=False)
    per = {name: stats[cid].memory_bytes for name, cid in ids.items() if cid in stats}
    total_mb = sum(per.values()) / 1024 / 1024
    budget = ctx.options.memory_budget_mb
    facts = {
        "total_mb": round(total_mb, 1),
        "budget_mb": budget,
        "per_service_mb": {k: round(v / 1024 / 1024, 1) for k, v in per.items()},
    }
    detail = f"core services use {total_mb:.0f} MiB of {budget:.0f} MiB"
    if total_mb > budget:
        return [CheckResult("memory", "fail", detail, "see `cdb-ops status` for the largest service", facts)]
    return [CheckResult("memory", "pass", detail, facts=facts)]


def check_probe(ctx: _Ctx) -> list[CheckResult]:
    """Inject a synthetic market move at the screener and follow it through signal, risk decision,
    order and trade in Postgres. Probe rows are flagged and live in portfolio 'probe'."""
    import httpx
    import psycopg

    screener = next((s for s in ctx.desired.services.values() if s.spec.role == "screener"), None)
    if screener is None or not ctx.options.probe:
        return [
            CheckResult(
                "pipeline probe",
                "skip",
                "no screener in the selected services" if screener is None else "skipped (--no-probe)",
            )
        ]
    host, port = host_address(screener, None)
    threshold = Decimal(ctx.settings.get("SIGNAL_THRESHOLD") or "3")
    move = max(Decimal(5), threshold * 2)
    probe_id = uuid.uuid4()
    started = time.monotonic()
    try:
        r = httpx.post(
            f"http://{host}:{port}/probe", json={"probe_id": str(probe_id), "move_pct": float(move)}, timeout=5.0
        )
        r.raise_for_status()
        symbol = r.json()["symbol"]
    except (httpx.HTTPError, KeyError, ValueError) as exc:
        return [
            CheckResult(
                "pipeline probe",
                "fail",
                f"the screener did not accept the probe: {exc}",
                f"is {screener.container.name} healthy? `cdb-ops status`",
            )
        ]
    stages = ["signal", "risk decision", "order", "trade"]
    query = """
        SELECT s.signal_id, r.decision, r.reason, o.order_id, t.trade_id, t.price, t.portfolio
          FROM signals s
          LEFT JOIN risk_events r ON r.signal_id = s.signal_id
          LEFT JOIN orders o ON o.risk_event_id = r.risk_event_id
          LEFT JOIN trades t ON t.order_id = o.order_id
         WHERE s.symbol = %s AND s.is_probe
    """
    reached = -1
    row = None
    deadline = started + ctx.options.probe_timeout
    with psycopg.connect(**postgres_conninfo(ctx.desired, ctx.settings), connect_timeout=3, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(query, (symbol,)).fetchone()
            if row:
                reached = 0 + (row[1] is not None) + (row[3] is not None) + (row[4] is not None)
                if row[1] == "REJECTED" or reached == 3:
                    break
            time.sleep(0.1)
    took = time.monotonic() - started
    facts = {
        "probe_id": str(probe_id),
        "symbol": symbol,
        "move_pct": float(move),
        "seconds": round(took, 3),
        "reached": stages[reached] if reached >= 0 else None,
    }
    if row is not None and row[1] == "REJECTED":
        facts["reason"] = row[2]
        return [
            CheckResult(
                "pipeline probe",
                "fail",
                f"risk manager rejected the probe ({row[2]})",
                "the probe trades in its own portfolio; see `cdb-ops logs risk`",
                facts,
            )
        ]
    if reached == 3:
        facts["portfolio"] = row[6] if row else None
        return [
            CheckResult(
                "pipeline probe",
                "pass",
                f"screener → signal → risk → execution in {took * 1000:.0f} ms ({symbol})",
                facts=facts,
            )
        ]
    where = stages[reached + 1]
    owner = {"signal": "signal", "risk decision": "risk", "order": "risk", "trade": "execution"}[where]
    return [
        CheckResult(
            "pipeline probe",
            "fail",
            f"no {where} after {ctx.options.probe_timeout:.0f} s"
            + (f" (reached: {stages[reached]})" if reached >= 0 else ""),
            f"see `cdb-ops logs {owner}`",
            facts,
        )
    ]


CHECKS: list[Callable[[_Ctx], list[CheckResult]]] = [
    check_engine,
    check_network,
    check_volumes,
    check_containers,
    check_health_endpoints,
    check_postgres,
    check_redis,
    check_logs,
    check_memory,
    check_probe,
]


def run_checks(
    engine: Engine,
    desired: DesiredStack,
    settings: Settings,
    options: ValidateOptions,
    on_result: Callable[[CheckResult], None] | None = None,
) -> list[CheckResult]:
    redact = Redactor(settings.secret_values())
    containers = {c.name: c for c in engine.containers(label=desired.system_label)}
    ctx = _Ctx(engine, desired, settings, options, redact, containers)
    results: list[CheckResult] = []
    for check in CHECKS:
        started = time.monotonic()
        try:
            found = check(ctx)
        except CdbError as exc:
            found = [CheckResult(check.__name__.removeprefix("check_"), "fail", redact(exc.message), exc.remedy)]
        except Exception as exc:  # noqa: BLE001 - one broken check must not hide the others
            found = [
                CheckResult(
                    check.__name__.removeprefix("check_"),
                    "fail",
                    redact(f"{type(exc).__name__}: {exc}"),
                    "this looks like a bug in cdb-ops",
                )
            ]
        for r in found:
            r.seconds = r.seconds or (time.monotonic() - started) / max(1, len(found))
            if on_result:
                on_result(r)
        results.extend(found)
    return results
