"""`export compose --target swarm`: the stack as a file `docker stack deploy` runs as it is.

A swarm builds nothing, reads no `.env`, has no `depends_on` conditions, container names, profiles or
host-IP-bound ports; each of those is translated (or left out) and said so in the notes:
images by tag (built beforehand by `cdb-ops export compose --build`), values inlined, secrets as swarm
secrets, the migrations as files in swarm configs run once by a `migrate` service restarted only on
failure (the trading services restart until the tables exist), an attachable overlay network, restart
policies, memory and pids limits under `deploy:`, tmpfs as `type: tmpfs` volumes (the short `tmpfs:` key
is dropped by `docker stack deploy` without a word), and every service with a volume or a bind-mounted file
pinned to the manager node (Postgres and its volume stay on one node). Capabilities, read_only and
logging carry over as they are; `security_opt` (no-new-privileges) cannot be expressed — a swarm ignores
it (moby/moby#41371) — so it is left out and the notes say so."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from cdb_ops.db.migrations import discover
from cdb_ops.load.desired import SECRETS_MOUNT, DesiredService, DesiredStack
from cdb_ops.model.labels import LABEL_SERVICE
from cdb_ops.views.export import (
    MIGRATE,
    Export,
    escape,
    healthcheck,
    image_of,
    migrate_env,
    migrate_image,
    migrate_labels,
    name_prefix,
)

Notes = dict[tuple[str, str], list[str]]  # (key, what was done instead) -> services
PIN = ["node.role == manager"]  # where the volumes (and bind-mounted files) are


def _memory(limit: str) -> str:
    """Docker's `160m` as the stack file's `160M`."""
    return limit[:-1] + limit[-1].upper() if limit[-1:].isalpha() else limit


def tmpfs_bytes(opts: str) -> int:
    """`size=16m` (the engine's tmpfs options) as the byte count a stack file's tmpfs.size takes."""
    size = dict(o.split("=", 1) for o in opts.split(",") if "=" in o).get("size", "0")
    factor = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}.get(size[-1:].lower(), 1)
    return int(size.rstrip("kmgKMG")) * factor


def _restart(policy: str) -> dict[str, Any]:
    if policy in ("no", ""):
        return {"condition": "none"}
    if policy.startswith("on-failure"):
        return {"condition": "on-failure", "delay": "5s"}
    return {"condition": "any", "delay": "5s"}  # always / unless-stopped


def _service(svc: DesiredService, desired: DesiredStack, offline: bool, notes: Notes) -> dict[str, Any]:
    spec, c, name = svc.spec, svc.container, svc.name

    def note(key: str, instead: str) -> None:
        notes.setdefault((key, instead), []).append(name)

    out: dict[str, Any] = {"image": image_of(svc, offline)}
    if spec.build or (offline and spec.fallback_build):
        note("build", "image by tag (a swarm builds nothing: run the export with --build first)")
    note("container_name", "a network alias with the same name (a swarm names its tasks)")
    if c.command:
        out["command"] = list(c.command)
    if c.env:
        out["environment"] = dict(c.env)
    if spec.secrets:
        out["secrets"] = [k.lower() for k in spec.secrets]
    volumes: list[dict[str, Any]] = []
    for m in c.mounts:
        if m.kind == "volume":
            volumes.append({"type": "volume", "source": m.source, "target": m.target, "read_only": m.read_only})
        elif not m.target.startswith(SECRETS_MOUNT + "/"):
            volumes.append({"type": "bind", "source": os.path.abspath(m.source), "target": m.target, "read_only": True})
            note(f"bind mount {m.target}", f"absolute path {m.source}, which must exist on the manager node")
    h = c.hardening
    for path, opts in (h.tmpfs if h else {}).items():
        # the short `tmpfs:` key is silently dropped by `docker stack deploy`; a tmpfs mount is not
        volumes.append({"type": "tmpfs", "target": path, "tmpfs": {"size": tmpfs_bytes(opts)}})
    if volumes:
        out["volumes"] = volumes
    if c.ports:
        # host mode: published on the node that runs the task, by the same DNAT as `docker run -p` (the
        # ingress routing mesh needs IPVS, which many kernels and sandboxes do not have)
        out["ports"] = [
            {"target": p.container, "published": p.host, "protocol": p.protocol, "mode": "host"} for p in c.ports
        ]
        binds = sorted({p.bind for p in c.ports if p.bind not in ("", "0.0.0.0")})
        if binds:
            note(
                f"ports bound to {', '.join(binds)}",
                "published in host mode on every interface of the node running the task "
                "(a stack file cannot bind one address: firewall them)",
            )
    deps = [d for d in spec.depends_on if d in desired.services]
    if deps or "POSTGRES_HOST" in c.env:
        note(
            "depends_on",
            "left out (a swarm has no start order): the service reconnects, and is restarted, until its "
            "dependencies answer and the migrate service created the tables",
        )
    if c.healthcheck:
        out["healthcheck"] = healthcheck(c.healthcheck)
    deploy: dict[str, Any] = {
        "mode": "replicated",
        "replicas": 1,
        # DNS round robin: a service name resolves to its task's address (no virtual IP: that needs IPVS)
        "endpoint_mode": "dnsrr",
        "restart_policy": _restart(c.restart),
        "labels": dict(c.labels) | {LABEL_SERVICE: name},
    }
    note(f"restart: {c.restart}", f"deploy.restart_policy condition {deploy['restart_policy']['condition']}")
    limits: dict[str, Any] = {}
    if c.mem_limit:
        limits["memory"] = _memory(c.mem_limit)
        note("mem_limit", "deploy.resources.limits.memory")
    if h and h.pids_limit:
        limits["pids"] = h.pids_limit
        note("pids_limit", "deploy.resources.limits.pids (engine 20.10+)")
    if limits:
        deploy["resources"] = {"limits": limits}
    if volumes:
        deploy["placement"] = {"constraints": list(PIN)}
    out["deploy"] = deploy
    if c.user:
        out["user"] = c.user
    if h:
        if h.cap_drop:
            out["cap_drop"] = list(h.cap_drop)  # a swarm honours both since engine 20.10 (docker/cli#2663)
        if h.cap_add:
            out["cap_add"] = list(h.cap_add)
        if h.read_only:
            out["read_only"] = True
        if h.tmpfs:
            note("tmpfs", "volumes of type tmpfs with their size (mode: the kernel's 1777)")
        if h.security_opt:
            note(
                f"security_opt {', '.join(h.security_opt)}",
                "NOT EXPRESSIBLE: a swarm ignores security_opt (moby/moby#41371); set "
                '`"no-new-privileges": true` in every node\'s /etc/docker/daemon.json instead',
            )
    if c.logging:
        out["logging"] = {"driver": c.logging.driver, "options": dict(c.logging.options)}
    out["networks"] = {desired.network: {"aliases": list(c.aliases) + [c.name]}}
    return out


def _schema_configs(desired: DesiredStack) -> dict[str, dict[str, str]]:
    """One swarm config per migration file (a config's content never changes: its name has a hash)."""
    out = {}
    for m in discover(desired.project.schema_dir):
        digest = hashlib.sha256(m.path.read_bytes()).hexdigest()[:10]
        out[f"schema_{m.version:03d}"] = {
            "name": f"{name_prefix(desired)}schema_{m.version:03d}_{digest}",
            "file": str(m.path),
            "_target": f"/schema/{m.path.name}",
        }
    return out


def _migrate_service(desired: DesiredStack, configs: dict[str, dict[str, str]]) -> dict[str, Any]:
    return {
        "image": migrate_image(desired),
        "environment": migrate_env(desired),
        "secrets": ["postgres_password"],
        "configs": [{"source": k, "target": v["_target"], "mode": 0o444} for k, v in configs.items()],
        "deploy": {
            "mode": "replicated",
            "replicas": 1,
            "endpoint_mode": "dnsrr",
            # runs once: a task that exits 0 is not restarted; one that fails (Postgres not up yet) is
            "restart_policy": {"condition": "on-failure", "delay": "5s", "max_attempts": 20},
            "labels": migrate_labels(desired),
        },
        "networks": {desired.network: {"aliases": [MIGRATE]}},
    }


def swarm_export(desired: DesiredStack, base: Path, offline: bool = False) -> Export:
    """`base` is unused: every path in a stack file is absolute (the CLI resolves relative ones itself,
    but a file moved between hosts must not depend on where it lies)."""
    grouped: Notes = {}
    services = {name: _service(svc, desired, offline, grouped) for name, svc in desired.services.items()}
    notes = [f"{key} ({', '.join(names)}) -> {instead}" for (key, instead), names in grouped.items()]
    configs: dict[str, dict[str, str]] = {}
    if "postgres" in desired.services:
        configs = _schema_configs(desired)
        services = {"postgres": services.pop("postgres"), MIGRATE: _migrate_service(desired, configs), **services}
        notes.append(
            "depends_on (migrate: postgres healthy) -> the migrate service waits up to 120 s for Postgres and is "
            "restarted on failure only, so it runs once; the schema reaches it as swarm configs"
        )
    notes.append(
        f"network {desired.network}: driver {desired.stack.network.driver} -> overlay (attachable), "
        "so the stack spans nodes"
    )
    notes.append("profiles: resolved at export (only the selected services are in the file)")
    used_secrets = sorted({k for s in desired.services.values() for k in s.spec.secrets})
    doc: dict[str, Any] = {
        "services": escape(services),
        "networks": {
            desired.network: {
                "name": desired.network,
                "driver": "overlay",
                "attachable": True,
                "labels": dict(desired.network_labels),
            }
        },
        "volumes": {v: {"name": v, "labels": dict(labels)} for v, labels in desired.volumes.items()},
    }
    if used_secrets:
        # swarm secrets named <stack>_<key> by `docker stack deploy` (and removed by `docker stack rm`)
        doc["secrets"] = {k.lower(): {"file": str(desired.project.secrets_dir / k.lower())} for k in used_secrets}
    if configs:
        doc["configs"] = {k: {"name": v["name"], "file": v["file"]} for k, v in configs.items()}
    return Export(doc, notes)
