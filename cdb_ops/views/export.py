"""`export compose`: the same stack as a Compose file (Compose Specification, no `version:` key) that
Docker Compose v2 runs as it is — health checks, `depends_on` conditions, secrets as files, and the
migrations as a one-shot `migrate` service (images/migrate: the core `cdb-ops schema migrate` uses, so
both keep one bookkeeping table). `--target swarm` (views/export_swarm.py) writes the `docker stack
deploy` variant. What a target cannot express is returned as notes (the CLI prints them on stderr)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cdb_ops.load.buildhash import dockerfile_of
from cdb_ops.load.desired import SECRETS_MOUNT, DesiredService, DesiredStack
from cdb_ops.model.labels import LABEL_SERVICE, base_labels
from cdb_ops.model.resources import ContainerSpec, Healthcheck

MIGRATE = "migrate"
TARGETS = ("compose", "swarm")


@dataclass
class Export:
    """The document and what the target could not express (key, what was done instead)."""

    doc: dict[str, Any]
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class BuildJob:
    """An image the exported file refers to by tag and that cdb-ops builds (`--build`)."""

    tag: str
    context: Path
    dockerfile: str
    service: str


def name_prefix(desired: DesiredStack) -> str:
    """`cdb_` for the stack whose network is `cdb_network`: the migrate container and image follow suit."""
    net = desired.network
    return net[: -len("network")] if net.endswith("network") and len(net) > len("network") else f"{desired.system}_"


def migrate_image(desired: DesiredStack) -> str:
    return f"{name_prefix(desired)}migrate:latest"


def build_jobs(desired: DesiredStack, offline: bool) -> list[BuildJob]:
    """What `--build` builds: every `build:` image, the fallbacks when offline, and the migrate image."""
    jobs = []
    for name, svc in desired.services.items():
        build = svc.spec.build or (svc.spec.fallback_build if offline else None)
        if build is not None:
            tag = svc.spec.image if svc.spec.build else (build.tag or svc.spec.image)
            jobs.append(BuildJob(tag, desired.project.root / build.context, dockerfile_of(build), name))
    images = desired.project.root / "images"
    jobs.append(BuildJob(migrate_image(desired), images, "migrate/Dockerfile", MIGRATE))
    return jobs


def duration(seconds: float) -> str:
    return f"{int(seconds * 1000)}ms" if seconds < 1 or seconds != int(seconds) else f"{int(seconds)}s"


def healthcheck(h: Healthcheck) -> dict[str, Any]:
    return {
        "test": list(h.test),
        "interval": duration(h.interval),
        "timeout": duration(h.timeout),
        "retries": h.retries,
        "start_period": duration(h.start_period),
    }


def hardening(c: ContainerSpec) -> dict[str, Any]:
    """The container's hardening as Compose writes it (each key exactly as the engine gets it)."""
    h = c.hardening
    if h is None:
        return {}
    out: dict[str, Any] = {}
    if h.cap_drop:
        out["cap_drop"] = list(h.cap_drop)
    if h.cap_add:
        out["cap_add"] = list(h.cap_add)
    if h.security_opt:
        out["security_opt"] = list(h.security_opt)
    if h.read_only:
        out["read_only"] = True
    if h.tmpfs:
        out["tmpfs"] = [f"{path}:{opts}" for path, opts in h.tmpfs.items()]
    if h.pids_limit:
        out["pids_limit"] = h.pids_limit
    return out


def rel(path: Path, base: Path) -> str:
    r = os.path.relpath(path, base)
    return r if r.startswith(".") else f"./{r}"


def image_of(svc: DesiredService, offline: bool) -> str:
    spec = svc.spec
    if spec.build:
        return spec.image
    if offline and spec.fallback_build is not None and spec.fallback_build.tag:
        return spec.fallback_build.tag
    return spec.image


def needs_tables(svc: DesiredService) -> bool:
    """The trading services read and write the tables: they wait for the migrations."""
    return "POSTGRES_HOST" in svc.container.env


def escape(value: Any) -> Any:
    """Compose interpolates `$VAR` in every string; the container's shell must see `$` as written."""
    if isinstance(value, str):
        return value.replace("$", "$$")
    if isinstance(value, list):
        return [escape(v) for v in value]
    if isinstance(value, dict):
        return {k: escape(v) for k, v in value.items()}
    return value


def migrate_env(desired: DesiredStack) -> dict[str, str]:
    pg = desired.services["postgres"].container
    return {
        "POSTGRES_HOST": pg.name,
        "POSTGRES_PORT": "5432",
        "POSTGRES_DB": pg.env.get("POSTGRES_DB", ""),
        "POSTGRES_USER": pg.env.get("POSTGRES_USER", ""),
        "POSTGRES_PASSWORD_FILE": f"{SECRETS_MOUNT}/postgres_password",
        "SCHEMA_DIR": "/schema",
    }


def migrate_labels(desired: DesiredStack) -> dict[str, str]:
    return base_labels(desired.system, "schema", "critical") | {LABEL_SERVICE: MIGRATE}


def _service(svc: DesiredService, desired: DesiredStack, base: Path, offline: bool) -> dict[str, Any]:
    spec, c = svc.spec, svc.container
    out: dict[str, Any] = {"container_name": c.name, "image": image_of(svc, offline)}
    build = spec.build or (spec.fallback_build if offline else None)
    if build is not None:
        out["build"] = {"context": rel(desired.project.root / build.context, base), "dockerfile": dockerfile_of(build)}
        if build.args:
            out["build"]["args"] = dict(build.args)
    if c.command:
        out["command"] = list(c.command)
    if c.env:
        out["environment"] = dict(c.env)  # exactly what cdb-ops gives the container (feed env included)
    secrets = [k.lower() for k in spec.secrets]
    if secrets:
        out["secrets"] = secrets  # mounted at /run/secrets/<name>, matching the *_FILE paths in environment
    volumes = []
    for m in c.mounts:
        if m.kind == "volume":
            volumes.append(f"{m.source}:{m.target}" + (":ro" if m.read_only else ""))
        elif not m.target.startswith(SECRETS_MOUNT + "/"):
            volumes.append(f"{rel(Path(m.source), base)}:{m.target}" + (":ro" if m.read_only else ""))
    if volumes:
        out["volumes"] = volumes
    if c.ports:
        out["ports"] = [
            f"{p.bind}:{p.host}:{p.container}" + ("" if p.protocol == "tcp" else f"/{p.protocol}") for p in c.ports
        ]
    deps: dict[str, Any] = {
        d: {"condition": "service_healthy" if cond == "healthy" else "service_started"}
        for d, cond in spec.depends_on.items()
        if d in desired.services
    }
    if needs_tables(svc) and "postgres" in desired.services:
        deps[MIGRATE] = {"condition": "service_completed_successfully"}
    if deps:
        out["depends_on"] = deps
    if c.healthcheck:
        out["healthcheck"] = healthcheck(c.healthcheck)
    out["restart"] = c.restart
    if c.mem_limit:
        out["mem_limit"] = c.mem_limit
    if c.user:
        out["user"] = c.user
    out |= hardening(c)
    if c.logging:
        out["logging"] = {"driver": c.logging.driver, "options": dict(c.logging.options)}
    out["labels"] = dict(c.labels) | {LABEL_SERVICE: svc.name}
    out["networks"] = {desired.network: {"aliases": list(c.aliases)}}
    return out


def _migrate_service(desired: DesiredStack, base: Path) -> dict[str, Any]:
    return {
        "container_name": f"{name_prefix(desired)}migrate",
        "image": migrate_image(desired),
        "build": {"context": rel(desired.project.root / "images", base), "dockerfile": "migrate/Dockerfile"},
        "environment": migrate_env(desired),
        "secrets": ["postgres_password"],
        # the project's own schema/ (not a copy baked into the image): the very bytes cdb-ops checksums
        "volumes": [f"{rel(desired.project.schema_dir, base)}:/schema:ro"],
        "depends_on": {"postgres": {"condition": "service_healthy"}},
        "restart": "no",
        "labels": migrate_labels(desired),
        "networks": {desired.network: {"aliases": [MIGRATE]}},
    }


def compose_document(desired: DesiredStack, base: Path, offline: bool = False) -> dict[str, Any]:
    """The Compose document; relative paths are relative to `base` (where the file will live)."""
    services = {name: _service(svc, desired, base, offline) for name, svc in desired.services.items()}
    if "postgres" in desired.services:
        services = {"postgres": services.pop("postgres"), MIGRATE: _migrate_service(desired, base), **services}
    used_secrets = sorted({k for s in desired.services.values() for k in s.spec.secrets})
    doc: dict[str, Any] = {
        "services": escape(services),
        "networks": {
            desired.network: {
                "name": desired.network,
                "driver": desired.stack.network.driver,
                "labels": dict(desired.network_labels),
            }
        },
        "volumes": {v: {"name": v, "labels": dict(labels)} for v, labels in desired.volumes.items()},
    }
    if used_secrets:
        doc["secrets"] = {k.lower(): {"file": rel(desired.project.secrets_dir / k.lower(), base)} for k in used_secrets}
    return doc


def compose_export(desired: DesiredStack, base: Path, offline: bool = False) -> Export:
    ready = [name for name, svc in desired.services.items() if svc.spec.ready is not None]
    notes = [f"ready ({', '.join(ready)}) -> the Docker health checks, which `up -d --wait` waits for"] if ready else []
    return Export(compose_document(desired, base, offline), notes)
