"""`validate`: the memo's success criteria as named checks, each pass / warn / fail with the facts
and, on failure, the remedy — ending with an end-to-end probe through the real trading pipeline."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from cdb_ops.checks.backups import check_backups
from cdb_ops.checks.context import CheckContext, ValidateOptions, default_services, service_containers
from cdb_ops.checks.disk import check_disk
from cdb_ops.checks.logscan import check_logs
from cdb_ops.checks.notify import check_notifications
from cdb_ops.checks.pipeline import check_probe
from cdb_ops.checks.services import check_health_endpoints, check_postgres, check_redis, exit_verdict
from cdb_ops.engine.api import EngineFacts
from cdb_ops.errors import CdbError
from cdb_ops.load.desired import DesiredStack
from cdb_ops.load.settings import Settings
from cdb_ops.model.labels import owned
from cdb_ops.model.observed import ObservedStack
from cdb_ops.model.results import CheckResult
from cdb_ops.plan.observe import observe
from cdb_ops.redact import Redactor

# -- the checks, in the order a person would look -----------------------------------------------


def check_engine(ctx: CheckContext) -> list[CheckResult]:
    info = ctx.engine.info()
    return [
        CheckResult(
            "engine",
            "pass",
            f"Docker {info.version} (API {info.api_version}) answers",
            facts={"version": info.version, "api_version": info.api_version},
        )
    ]


def check_network(ctx: CheckContext) -> list[CheckResult]:
    net = ctx.observed.networks.get(ctx.desired.network)
    name = f"network {ctx.desired.network}"
    if net is None:
        return [CheckResult(name, "fail", "does not exist", "run `cdb-ops rebuild`")]
    if not owned(net.labels, ctx.desired.system):
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


def check_volumes(ctx: CheckContext) -> list[CheckResult]:
    missing, foreign = [], []
    for vname in ctx.desired.volumes:
        vol = ctx.observed.volumes.get(vname)
        if vol is None:
            missing.append(vname)
        elif not owned(vol.labels, ctx.desired.system):
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


def check_containers(ctx: CheckContext) -> list[CheckResult]:
    out = []
    for svc, c in service_containers(ctx):
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
        ended = exit_verdict(ctx, svc, c)  # down, or OOM-killed: named with exit code, limit and restarts
        if ended is not None:
            out.append(ended)
        elif not c.running:
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
                    f"running but restarted {c.restart_count} time(s), not OOM-killed "
                    "(Docker keeps no exit code once it runs again)",
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


def check_memory(ctx: CheckContext) -> list[CheckResult]:
    core = default_services(ctx)
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
    profiles = " and ".join(ctx.desired.stack.default_profiles)
    detail = f"{profiles} services use {total_mb:.0f} MiB of {budget:.0f} MiB"
    if total_mb > budget:
        return [CheckResult("memory", "fail", detail, "see `cdb-ops status` for the largest service", facts)]
    return [CheckResult("memory", "pass", detail, facts=facts)]


CHECKS: list[Callable[[CheckContext], list[CheckResult]]] = [
    check_engine,
    check_network,
    check_volumes,
    check_containers,
    check_health_endpoints,
    check_postgres,
    check_redis,
    check_logs,
    check_memory,
    check_disk,
    check_backups,
    check_probe,
    check_notifications,
]


def _one_check(
    check: Callable[[CheckContext], list[CheckResult]], ctx: CheckContext, redact: Redactor
) -> list[CheckResult]:
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
    return found


def run_checks(
    engine: EngineFacts,
    desired: DesiredStack,
    settings: Settings,
    options: ValidateOptions,
    redact: Redactor,
    on_result: Callable[[CheckResult], None] | None = None,
    observed: ObservedStack | None = None,
) -> list[CheckResult]:
    """Every check on one observation (taken here unless the caller has a current one), all at once
    (they only look: engine, HTTP, Postgres, Redis, logs and the probe wait on different things), the
    results in the checks' order."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        seen = pool.submit(lambda: observed or observe(engine, desired, host_ports=False))
        listed = pool.submit(engine.containers, label=desired.system_label)
        observed, containers = seen.result(), {c.name: c for c in listed.result()}
    ctx = CheckContext(engine, desired, settings, options, redact, observed, containers)
    results: list[CheckResult] = []
    with ThreadPoolExecutor(max_workers=len(CHECKS), thread_name_prefix="cdb-check") as pool:
        futures = [pool.submit(_one_check, check, ctx, redact) for check in CHECKS]
        for future in futures:
            found = future.result()
            if on_result:
                for r in found:
                    on_result(r)
            results.extend(found)
    return results
