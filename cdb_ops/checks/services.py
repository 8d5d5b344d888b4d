"""validate's checks of the services themselves: each /health endpoint, Postgres (tables, migrations)
and Redis (PING, AOF) — probed from the host through the probe library."""

from __future__ import annotations

import json
from typing import Any

from cdb_ops.checks.context import CheckContext
from cdb_ops.checks.probes import HttpError, HttpProbe, PostgresProbe, RedisProbe
from cdb_ops.checks.resp import RedisError
from cdb_ops.load.desired import DesiredService
from cdb_ops.load.endpoints import host_address, postgres_conninfo
from cdb_ops.model.facts import ContainerFacts, human_mib, oom_remedy
from cdb_ops.model.results import CheckResult
from cdb_ops.model.tables import EXPECTED_TABLES

PUBLIC_TABLES = (
    "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
)


def exit_verdict(ctx: CheckContext, svc: DesiredService, c: ContainerFacts) -> CheckResult | None:
    """A container's check when its last run ended (it is down or restarting) or the OOM killer struck —
    naming OOMKilled, the exit code, the memory limit and the restarts; None when neither happened (or it
    merely restarted for another reason: the container check's warning says so)."""
    name = f"container {svc.container.name}"
    gone = c.last_exit
    killed_now = _oom_kills(ctx, c)
    facts = {
        "state": c.state,
        "health": c.health,
        "restarts": c.restart_count,
        "exit_code": c.exit_code,
        "oom_killed": c.oom_killed,
        "memory_limit_bytes": c.memory_limit or None,
        "oom_kills_this_run": killed_now,
        "last_exit": gone.to_dict() if gone else None,
    }
    if not c.running and gone is not None:
        return CheckResult(
            name,
            "fail",
            f"{c.state}: {gone.describe()}"
            if gone.killed
            else f"{c.state} (exit code {c.exit_code})"
            + (f", restarted {c.restart_count}×" if c.restart_count else ""),
            oom_remedy(svc.name, gone.oom_killed)
            if gone.killed
            else f"see `cdb-ops logs {svc.name}`; `cdb-ops rebuild` starts it again",
            facts,
        )
    if gone is not None and gone.oom_killed:
        return CheckResult(
            name, "fail", f"running again, but its last run ended {gone.describe()}", oom_remedy(svc.name, True), facts
        )
    if killed_now:
        limit = human_mib(c.memory_limit) if c.memory_limit else "no memory limit"
        return CheckResult(
            name,
            "fail",
            f"running, but the OOM killer ended {killed_now} of its processes in this run (memory limit {limit}; "
            "the cgroup's oom_kill counter — Docker flags only the main process as OOMKilled)",
            oom_remedy(svc.name, True),
            facts,
        )
    return None


def _oom_kills(ctx: CheckContext, c: ContainerFacts) -> int | None:
    """The kernel's OOM kills in the container's current run, from its cgroup (an engine on this host only)."""
    if not c.running or not ctx.observed.engine.local:
        return None
    from cdb_ops.engine.cgroups import oom_kills

    return oom_kills(c.id)


def check_health_endpoints(ctx: CheckContext) -> list[CheckResult]:
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
    ready = svc.spec.ready
    assert ready is not None
    addr = host_address(svc, ready.port)
    url = f"http://{addr[0]}:{addr[1]}{ready.path}"
    name = f"health {svc.name}"
    try:
        answer = HttpProbe(url, ready.path, timeout=3.0).once()
    except HttpError as exc:
        return CheckResult(
            name,
            "fail",
            f"GET {url}: {exc}",
            f"is {svc.container.name} running? `cdb-ops status`",
            {"url": url},
        )
    code, status, body = answer.facts["http_status"], answer.facts["status"], answer.facts["body"]
    facts = {"url": url, "http_status": code, "body": body}
    if answer.ok:
        return CheckResult(name, "pass", f"{code} {status or ''}".strip(), facts=facts)
    if code == 200:
        return CheckResult(name, "warn", f"{status}: {_failing_facts(body)}", f"see `cdb-ops logs {svc.name}`", facts)
    return CheckResult(
        name,
        "fail",
        f"{code} {status or ''}: {_failing_facts(body)}",
        f"see `cdb-ops logs {svc.name}` and `cdb-ops doctor`",
        facts,
    )


def _failing_facts(body: Any) -> str:
    if not isinstance(body, dict):
        return ""
    checks = body.get("checks") or {}
    bad = [k for k, v in checks.items() if isinstance(v, dict) and v.get("status") not in (None, "ok")]
    return ", ".join(bad) or json.dumps(checks)[:200]


def check_postgres(ctx: CheckContext) -> list[CheckResult]:
    import psycopg

    from cdb_ops.db.migrations import Migrator

    info = postgres_conninfo(ctx.desired, ctx.settings)
    probe = PostgresProbe(
        info["host"], info["port"], info["user"], info["password"], info["dbname"], timeout=3, query=PUBLIC_TABLES
    )
    try:
        tables = [str(t) for t in probe.once().facts["rows"]]
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


def check_redis(ctx: CheckContext) -> list[CheckResult]:
    svc = next((s for s in ctx.desired.services.values() if s.spec.ready and s.spec.ready.probe == "redis"), None)
    if svc is None:
        return []
    host, port = host_address(svc, None)
    try:
        aof = bool(
            RedisProbe(host, port, ctx.settings.get("REDIS_PASSWORD"), 3, persistence=True).once().facts["aof_enabled"]
        )
        return [
            CheckResult(
                "redis",
                "pass" if aof else "warn",
                f"PONG; AOF {'on' if aof else 'OFF'}",
                "" if aof else "the stack runs redis with --appendonly yes; rebuild",
                {"aof_enabled": aof},
            )
        ]
    except (RedisError, OSError) as exc:
        return [CheckResult("redis", "fail", ctx.redact(str(exc)), "see `cdb-ops logs redis`")]
