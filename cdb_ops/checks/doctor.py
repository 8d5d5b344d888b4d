"""`doctor`: the memo's known risks, each diagnosed with the facts and the fix — build failures,
Postgres not starting, services that cannot reach Postgres, ports held by other processes, and
Docker itself not running."""

from __future__ import annotations

import re

from cdb_ops.checks.posture import posture
from cdb_ops.checks.probes import InContainerTcpProbe, PgIsReadyProbe
from cdb_ops.engine.api import Engine
from cdb_ops.load.desired import DesiredStack
from cdb_ops.load.endpoints import postgres_service
from cdb_ops.load.lastrun import load_last_run
from cdb_ops.load.project import Project
from cdb_ops.model.facts import human_mib, oom_remedy
from cdb_ops.model.results import Finding
from cdb_ops.plan.hostports import host_listeners, port_conflict
from cdb_ops.redact import Redactor

# what Postgres says when its data volume is the problem, not its configuration
DATA_PROBLEM = re.compile(
    r"database files are incompatible with server|invalid checkpoint record|could not locate a valid checkpoint|"
    r"PANIC|corrupt|invalid page|directory .* exists but is not empty|Permission denied",
    re.IGNORECASE,
)


def engine_down(message: str, remedy: str) -> list[Finding]:
    return [Finding("docker engine", "problem", message, remedy)]


def diagnose(engine: Engine, desired: DesiredStack, project: Project, redact: Redactor) -> list[Finding]:
    info = engine.info()
    found = [Finding("docker engine", "ok", f"Docker {info.version} (API {info.api_version}) answers")]
    found += _builds(project, redact)
    found += _postgres(engine, desired, redact)
    found += _reach_postgres(engine, desired, redact)
    found += _ports(engine, desired, info.local)
    found += _oom_kills(engine, desired, info.local)
    found += posture(engine, desired)  # CIS Docker Benchmark §5, per container (checks/posture.py)
    return found


def _builds(project: Project, redact: Redactor) -> list[Finding]:
    last = load_last_run(project)
    err = (last or {}).get("error") or {}
    if err.get("kind") != "build_failed":
        return [Finding("image builds", "ok", "the last run had no failed build")]
    details = err.get("details") or {}
    tail = details.get("log_tail") or []
    return [
        Finding(
            "image builds",
            "problem",
            redact(err.get("message", "a build failed")),
            "run `cdb-ops rebuild --no-cache` (a stale cached layer — e.g. an apt index that moved on — is the usual "
            "cause); if it fails again, fix the step shown",
            {"failing_step": details.get("step"), "log_tail": [redact(x) for x in tail[-10:]]},
        )
    ]


def _postgres(engine: Engine, desired: DesiredStack, redact: Redactor) -> list[Finding]:
    svc = desired.services.get(postgres_service(desired))
    if svc is None:
        return []
    name = svc.container.name
    c = engine.container(name)
    if c is None:
        return [Finding("postgres starts", "problem", f"{name} does not exist", "run `cdb-ops rebuild`")]
    if c.running and c.health != "unhealthy" and c.restart_count == 0:
        return [Finding("postgres starts", "ok", f"{name} is running ({c.health or 'no health check'})")]
    logs = redact(engine.logs(name, tail=30))
    lines = [ln for ln in logs.splitlines() if ln.strip()][-15:]
    data_lines = [ln for ln in lines if DATA_PROBLEM.search(ln)]
    facts = {
        "state": c.state,
        "health": c.health,
        "restarts": c.restart_count,
        "exit_code": c.exit_code,
        "log_tail": lines,
    }
    if data_lines:
        volume = svc.data_volume or "cdb_postgres_data"
        return [
            Finding(
                "postgres starts",
                "problem",
                f"{name} cannot use its data volume: {data_lines[-1][:200]}",
                "the volume was written by another Postgres version or is damaged. Back it up first: "
                f"`docker run --rm -v {volume}:/d -v $PWD:/b debian:bookworm-slim tar czf /b/pgdata.tgz -C /d .`, "
                f"then `docker volume rm {volume}`, and `cdb-ops rebuild` initialises a fresh one",
                facts,
            )
        ]
    return [
        Finding(
            "postgres starts",
            "problem",
            f"{name} is {c.state}" + (f", {c.health}" if c.health else "") + f", restarted {c.restart_count}×",
            "read its last log lines (facts); `cdb-ops logs postgres`; a wrong POSTGRES_* value in .env is the "
            "usual cause after the volume was first initialised with other credentials",
            facts,
        )
    ]


def _reach_postgres(engine: Engine, desired: DesiredStack, redact: Redactor) -> list[Finding]:
    pg = desired.services.get(postgres_service(desired))
    if pg is None:
        return []
    pg_c = engine.container(pg.container.name)
    net = engine.network(desired.network)
    out: list[Finding] = []
    if net is None:
        return [
            Finding(
                "network",
                "problem",
                f"network {desired.network} does not exist",
                "run `cdb-ops rebuild` (it creates the network and reattaches the services)",
            )
        ]
    if pg_c is None or not pg_c.running:
        return [Finding("services reach postgres", "skip", "postgres is not running (see above)")]
    # pg_isready from inside the network, by the name the services use
    user = desired.services[pg.name].container.env.get("POSTGRES_USER", "postgres")
    ready = PgIsReadyProbe(engine, pg.container.name, user).once()
    out.append(
        Finding(
            "pg_isready in the network",
            "ok" if ready.ok else "problem",
            redact(ready.detail),
            "" if ready.ok else "Postgres does not accept TCP connections: check listen_addresses and its logs",
        )
    )
    for svc in desired.services.values():
        if pg.name not in svc.spec.depends_on:
            continue
        c = engine.container(svc.container.name)
        name = f"{svc.name} reaches postgres"
        if c is None or not c.running:
            out.append(Finding(name, "skip", f"{svc.container.name} is not running"))
            continue
        if net.id not in c.network_ids:
            out.append(
                Finding(
                    name,
                    "problem",
                    f"{svc.container.name} is not attached to {desired.network}",
                    "run `cdb-ops rebuild` (it recreates containers that lost their network)",
                    {"networks": list(c.networks)},
                )
            )
            continue
        reach = InContainerTcpProbe(engine, svc.container.name, pg.container.name, 5432).once()
        text = reach.facts["output"]
        if reach.ok:
            out.append(Finding(name, "ok", f"TCP {pg.container.name}:5432 from {svc.container.name}"))
        elif "gaierror" in text or "Name or service not known" in text:
            out.append(
                Finding(
                    name,
                    "problem",
                    f"DNS: {svc.container.name} cannot resolve {pg.container.name}",
                    "both must be on the same user-defined network: `cdb-ops rebuild`",
                    {"output": text},
                )
            )
        else:
            out.append(
                Finding(
                    name,
                    "problem",
                    f"{svc.container.name} cannot connect: {text.strip()[:200]}",
                    "check that postgres listens (pg_isready above) and no firewall rule blocks the bridge",
                    {"output": text},
                )
            )
    return out


def _ports(engine: Engine, desired: DesiredStack, local: bool) -> list[Finding]:
    containers = engine.containers(detail=False)
    wanted = [p for svc in desired.services.values() for p in svc.container.ports]
    listeners = host_listeners(wanted) if local else None
    problems: list[Finding] = []
    for svc in desired.services.values():
        for p in svc.container.ports:
            found = port_conflict(p, desired.system, containers, listeners)
            if found is None:
                continue
            holder, _ = found
            if any(c.name == holder for c in containers):
                problems.append(
                    Finding(
                        f"port {p.host}",
                        "problem",
                        f"published by container {holder} (not part of the stack)",
                        f"stop it (`docker stop {holder}`) or give {svc.name} another host port",
                    )
                )
            else:
                problems.append(
                    Finding(
                        f"port {p.host}",
                        "problem",
                        f"{p.bind}:{p.host} is held by {holder}",
                        "stop that process, or change the host port in playbooks/stack.yaml",
                        {"process": holder},
                    )
                )
    return problems or [Finding("ports", "ok", "every host port of the stack is ours or free")]


def _oom_kills(engine: Engine, desired: DesiredStack, local: bool) -> list[Finding]:
    """Services the kernel's OOM killer ended: the last run's State.OOMKilled (kept while Docker restarts it),
    an exit 137 the engine did not flag, or — on an engine on this host — the cgroup's count of processes
    killed in the current run. Each with its memory limit, restarts and the fix."""
    from cdb_ops.engine.cgroups import oom_kills

    by_name = {c.name: c for c in engine.containers(label=desired.system_label)}
    found: list[Finding] = []
    for svc in desired.services.values():
        c = by_name.get(svc.container.name)
        if c is None:
            continue
        gone = c.last_exit
        now = oom_kills(c.id) if local and c.running else None
        if not (gone is not None and gone.killed) and not now:
            continue
        limit = f"memory limit {human_mib(c.memory_limit)}" if c.memory_limit else "no memory limit"
        if gone is not None and gone.killed:
            what = f"{svc.container.name} is {c.state}; its last run ended {gone.describe()}"
        else:
            what = f"{svc.container.name} runs, but the OOM killer ended {now} of its processes in this run ({limit})"
        found.append(
            Finding(
                f"{svc.name} memory",
                "problem",
                what,
                oom_remedy(svc.name, gone.oom_killed if gone is not None and gone.killed else True),
                {
                    "state": c.state,
                    "oom_killed": c.oom_killed,
                    "exit_code": gone.exit_code if gone else c.exit_code,
                    "memory_limit_bytes": c.memory_limit or None,
                    "restarts": c.restart_count,
                    "oom_kills_this_run": now,
                },
            )
        )
    return found or [Finding("memory limits", "ok", "no service was OOM-killed")]
