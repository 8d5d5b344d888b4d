"""`doctor`'s posture report: every container of the stack read from `docker inspect` the way
docker-bench-security reads it (CIS Docker Benchmark §5) — capabilities dropped and added,
no-new-privileges, a read-only root filesystem, a pids and a memory limit, a non-root user, ports on
loopback and a capped log — each held to the playbook (what `rebuild` would create) and to the
hardening baseline (what every container should have, whatever the playbook says), with the fix."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from cdb_ops.engine.api import EngineFacts
from cdb_ops.load.desired import DesiredService, DesiredStack
from cdb_ops.load.yamlsource import load_yaml
from cdb_ops.model.facts import ContainerFacts, ContainerPosture
from cdb_ops.model.resources import Hardening, LogConfig
from cdb_ops.model.results import Finding

REBUILD = "`cdb-ops rebuild` recreates it as the playbook says (Docker applies these only when it creates a container)"
ROOT_USERS = ("", "0", "root")


@dataclass(frozen=True)
class Item:
    """One benchmark item of one container: what inspect says, and what is wrong with it ("" if nothing)."""

    name: str
    actual: str
    problem: str = ""
    fix: str = ""


def memory_bytes(limit: str | None) -> int:
    """Docker's `160m` in bytes (Docker's units are powers of 1024)."""
    if not limit:
        return 0
    return int(limit[:-1]) * {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[limit[-1].lower()]


def _no_new_privileges(opts: tuple[str, ...]) -> bool:
    return any(o.replace("=", ":") in ("no-new-privileges", "no-new-privileges:true") for o in opts)


def _root(user: str) -> bool:
    return user.split(":", 1)[0] in ROOT_USERS


def _capped(driver: str, options: dict[str, str]) -> bool:
    """The `local` driver rotates even without options (20m × 5); json-file only with max-size."""
    return driver == "local" or (driver == "json-file" and bool(options.get("max-size")))


def items(svc: DesiredService, c: ContainerFacts, p: ContainerPosture, edit: str) -> list[Item]:
    """`edit`: where in the playbook a weaker declaration is fixed (file:line)."""
    want: Hardening = svc.container.hardening or Hardening()
    log: LogConfig | None = svc.container.logging
    playbook = f"declare it in {edit} (the baseline of docs/hardening.md)"

    def held(name: str, actual: str, ok_baseline: bool, matches: bool, baseline: str, declared: str) -> Item:
        if not matches:  # the container is not what the playbook declares: drift (or an old container)
            return Item(name, actual, f"the playbook declares {declared}", REBUILD)
        if not ok_baseline:
            return Item(name, actual, f"below the baseline ({baseline})", playbook)
        return Item(name, actual)

    caps_add = ", ".join(p.cap_add) or "none"
    mem, want_mem = p.memory, memory_bytes(svc.container.mem_limit)
    ports = sorted({b.bind for b in c.ports})
    off_loopback = [b for b in ports if not ipaddress.ip_address(b).is_loopback]
    want_ports = sorted({b.bind for b in svc.container.ports})
    log_text = f"{p.log_driver} " + " ".join(f"{k}={v}" for k, v in sorted(p.log_options.items()))
    return [
        held(
            "capabilities dropped",
            ", ".join(p.cap_drop) or "none",
            "ALL" in p.cap_drop,
            set(p.cap_drop) == set(want.cap_drop),
            "cap_drop: [ALL]",
            f"cap_drop {list(want.cap_drop)}",
        ),
        held(
            "capabilities added",
            caps_add,
            not p.cap_add,
            set(p.cap_add) == set(want.cap_add),
            "none: every process here runs as its own user",
            f"cap_add {list(want.cap_add)}",
        ),
        held(
            "no-new-privileges",
            "yes" if _no_new_privileges(p.security_opt) else "no",
            _no_new_privileges(p.security_opt),
            _no_new_privileges(p.security_opt) == _no_new_privileges(want.security_opt),
            "no_new_privileges: true",
            f"no_new_privileges: {str(_no_new_privileges(want.security_opt)).lower()}",
        ),
        held(
            "read-only root filesystem",
            "yes" if p.read_only else "no",
            p.read_only,
            p.read_only == want.read_only,
            "read_only: true, with tmpfs where the process writes",
            f"read_only: {str(want.read_only).lower()}",
        ),
        held(
            "pids limit",
            str(p.pids_limit or "none"),
            p.pids_limit > 0,
            p.pids_limit == (want.pids_limit or 0),
            "a pids_limit",
            f"pids_limit {want.pids_limit or 'none'}",
        ),
        held(
            "memory limit",
            f"{mem >> 20} MiB" if mem else "none",
            mem > 0,
            mem == want_mem,
            "a mem_limit",
            f"mem_limit {svc.container.mem_limit or 'none'}",
        ),
        held(
            "user",
            p.user or "(image default: root)",
            not _root(p.user),
            (svc.container.user or p.user) == p.user,
            "a non-root user",
            f"user {svc.container.user}",
        ),
        held(
            "ports",
            ", ".join(ports) or "none published",
            not off_loopback,
            ports == want_ports,
            "published on 127.0.0.1 only",
            f"binds {', '.join(want_ports) or 'none'}",
        ),
        held(
            "log cap",
            log_text.strip(),
            _capped(p.log_driver, p.log_options),
            log is None or (p.log_driver == log.driver and p.log_options == log.options),
            "driver local, or json-file with max-size",
            f"log {log.driver} {log.options}" if log else "",
        ),
    ]


def posture(engine: EngineFacts, desired: DesiredStack) -> list[Finding]:
    """One finding per container of the selected stack."""
    doc = load_yaml(desired.project.stack_file)
    out: list[Finding] = []
    for svc in desired.services.values():
        name = svc.container.name
        c = engine.container(name)
        if c is None or c.posture is None:
            out.append(Finding(f"posture {name}", "skip", "no such container", "run `cdb-ops rebuild`"))
            continue
        loc = ("services", svc.name, "hardening") if svc.spec.hardening is not None else ("hardening",)
        line = doc.line_of(loc) or doc.line_of(("services", svc.name))
        found = items(svc, c, c.posture, f"{desired.project.stack_file}:{line}")
        bad = [i for i in found if i.problem]
        facts: dict[str, Any] = {i.name: i.actual for i in found}
        if not bad:
            summary = "; ".join(f"{i.name}: {i.actual}" for i in found)
            out.append(Finding(f"posture {name}", "ok", summary, "", facts))
            continue
        facts["deviations"] = {i.name: i.problem for i in bad}
        diagnosis = "; ".join(f"{i.name} {i.actual} — {i.problem}" for i in bad)
        fixes = list(dict.fromkeys(i.fix for i in bad))
        out.append(Finding(f"posture {name}", "problem", diagnosis, "; ".join(fixes), facts))
    return out
