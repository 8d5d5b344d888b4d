"""The desired stack: playbook + .env + command-line choices, resolved into concrete resources.

This is the "operations" half of the plan (what should be); `facts` come from the engine adapter."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

from cdb_common.envrules import RULES

from cdb_ops.errors import ConfigError, UsageError
from cdb_ops.fsutil import regular_file_problem
from cdb_ops.load import hardening
from cdb_ops.load.buildhash import build_context_hash, path_digest, sha256
from cdb_ops.load.project import Project
from cdb_ops.load.settings import Settings
from cdb_ops.load.specs import BuildSpec, ServiceSpec, StackSpec
from cdb_ops.load.validation import project_path
from cdb_ops.load.yamlsource import load_yaml
from cdb_ops.model.labels import (
    LABEL_DATA,
    LABEL_HASH,
    LABEL_IMAGE,
    LABEL_PARTS,
    LABEL_SERVICE,
    base_labels,
    system_selector,
)
from cdb_ops.model.ports import PortBinding
from cdb_ops.model.resources import ContainerSpec, Healthcheck, MountBinding

SECRETS_MOUNT = "/run/secrets"

_VAR_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def short(digest: str) -> str:
    return digest[:12]


@dataclass(frozen=True)
class ImageSource:
    """Where a service's image comes from: pulled, built here, or pulled with a local fallback build."""

    ref: str  # what the container runs when all goes to plan
    build: BuildSpec | None = None  # always built here, tagged `ref`
    fallback: BuildSpec | None = None  # built (tagged fallback.tag) when `ref` cannot be pulled
    # reads the build context (build or fallback) and hashes it: done on first use, since only runs that
    # build or start images need it (`down` would spend 40 ms on it for nothing)
    hash_context: Callable[[], str] | None = field(default=None, compare=False, repr=False)

    @cached_property
    def build_hash(self) -> str | None:
        """Content hash of the build context (build or fallback); None when nothing is built here."""
        return self.hash_context() if self.hash_context is not None else None

    @property
    def kind(self) -> str:
        return "build" if self.build else ("pull_or_build" if self.fallback else "pull")


@dataclass(frozen=True)
class DesiredService:
    name: str
    spec: ServiceSpec
    container: ContainerSpec  # `image` is filled in with the resolved image id before hashing
    image: ImageSource
    secret_files: dict[str, bytes] = field(default_factory=dict)
    file_digests: dict[str, str] = field(default_factory=dict)  # bind-mounted project files -> content hash

    @property
    def data_volume(self) -> str | None:
        """The named volume its container mounts (Postgres: its data directory), if any."""
        return next((m.source for m in self.container.mounts if m.kind == "volume"), None)


@dataclass(frozen=True)
class DesiredStack:
    stack: StackSpec
    project: Project
    profiles: tuple[str, ...]
    feed: str | None
    network: str
    network_labels: dict[str, str]
    volumes: dict[str, dict[str, str]]  # name -> labels
    services: dict[str, DesiredService]  # selected by profile, in playbook order

    @property
    def system(self) -> str:
        return self.stack.system

    @property
    def system_label(self) -> str:
        return system_selector(self.stack.system)

    def hash_builds(self) -> None:
        """Hash every build context now: a run that builds or starts images refuses an unreadable context
        (a ConfigError with file and line) before its first change, not in the middle of the images phase."""
        for svc in self.services.values():
            _ = svc.image.build_hash


# the services' own user (images/*/Dockerfile: useradd --uid 10001 cdb)
SERVICE_UID = 10001


def output_user() -> str:
    """`${CDB_OUTPUT_USER}`: who a service that writes into the project (backups/) runs as — the person
    running cdb-ops, so the files are theirs; never root: run by root, the services' own user, and the
    folder is handed to it when its container is made (apply/phases/services.py)."""
    uid, gid = os.getuid(), os.getgid()
    return f"{uid}:{gid}" if uid != 0 else f"{SERVICE_UID}:{SERVICE_UID}"


def _interpolate(value: str, settings: Settings, where: tuple[str, ...], project: Project, system: str = "") -> str:
    def sub(m: re.Match[str]) -> str:
        key, default = m.group(1), m.group(2)
        if key == "CDB_SYSTEM" and system:  # the playbook's own system name (the backup files carry it)
            return system
        if key == "CDB_OUTPUT_USER":
            return output_user()
        if key in settings.secret_keys:
            raise ConfigError(
                f"{'.'.join(where)} interpolates the secret {key}",
                f"list {key} under the service's secrets: instead, so it reaches the container as a file "
                "and never shows in `docker inspect`",
                file=str(project.stack_file),
                line=load_yaml(project.stack_file).line_of(where),
            )
        found = settings.get(key)
        if found is None or found == "":
            if default is not None:
                return default
            raise ConfigError(
                f"{'.'.join(where)} needs {key}, which {settings.path.name} does not set",
                f"add {key}=... to {settings.path}",
                file=str(project.stack_file),
                line=load_yaml(project.stack_file).line_of(where),
            )
        return found

    return _VAR_RE.sub(sub, value)


def _line(project: Project, loc: tuple[str, ...]) -> Callable[[], int | None]:
    return lambda: load_yaml(project.stack_file).line_of(loc)


def _context_hasher(project: Project, build: BuildSpec, loc: tuple[str, ...]) -> Callable[[], str]:
    return lambda: build_context_hash(project, build, _line(project, loc))


def _env_value(v: str | int | float | bool) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def select_services(stack: StackSpec, profiles: list[str] | None, feed: str | None) -> tuple[list[str], list[str]]:
    """(profiles in effect, service names) — --profile's (default: the playbook's default_profiles)
    plus what the feed adds."""
    chosen = list(profiles or stack.default_profiles)
    if feed:
        chosen += [p for p in stack.feeds[feed].profiles if p not in chosen]
    unknown = [p for p in chosen if p not in stack.profiles]
    if unknown:
        raise UsageError(
            f"unknown profile {unknown[0]!r}",
            f"use one of: {', '.join(sorted(stack.profiles))} (repeat --profile for several)",
        )
    names = [n for n, s in stack.services.items() if set(s.profiles) & set(chosen)]
    # a selected service drags in what it depends on, whatever profile that is in
    todo = list(names)
    while todo:
        for dep in stack.services[todo.pop()].depends_on:
            if dep not in names:
                names.append(dep)
                todo.append(dep)
    order = list(stack.services)
    return chosen, sorted(names, key=order.index)


def resolve(
    stack: StackSpec,
    settings: Settings,
    project: Project,
    profiles: list[str] | None = None,
    feed: str | None = None,
) -> DesiredStack:
    if feed is not None and not feed.strip():  # `--feed ""`: a name left out, not "use the default"
        raise UsageError("--feed is empty", f"name a feed: one of {', '.join(sorted(stack.feeds))}")
    # --feed wins; else the CDB_FEED that `init` chose and wrote into .env; else the playbook's default
    feed = feed or (settings.get("CDB_FEED") or "").lower() or stack.default_feed
    if feed is not None and feed not in stack.feeds:
        raise UsageError(f"unknown feed {feed!r}", f"use one of: {', '.join(sorted(stack.feeds))}")
    if feed and stack.feeds[feed].depends_on:  # e.g. the screener waits for the replay server it reads
        extra = stack.feeds[feed].depends_on
        stack = stack.model_copy(
            update={
                "services": {
                    n: s.model_copy(update={"depends_on": {**s.depends_on, **extra.get(n, {})}})
                    for n, s in stack.services.items()
                }
            }
        )
    chosen, names = select_services(stack, profiles, feed)
    system = stack.system
    services: dict[str, DesiredService] = {}
    for name in names:
        svc = stack.services[name]
        env: dict[str, str] = {}
        for key, raw in svc.env.items():
            env[key] = _interpolate(_env_value(raw), settings, ("services", name, "env", key), project, system)
        if feed:
            env.update(stack.feeds[feed].env.get(name, {}))
        secret_files: dict[str, bytes] = {}
        mounts: list[MountBinding] = []
        for key in svc.secrets:
            value = settings.get(key)
            rule = RULES.get(key)
            if not value and rule is not None and rule.kind == "urls":
                # the trader's optional URLs (NOTIFY_URLS): unset is a file holding only a newline — "none
                # configured" to the service (it strips the line end), and not empty: Swarm refuses empty secrets
                value = "\n"
            elif not value:
                raise ConfigError(
                    f"service {name!r} needs the secret {key}, which {settings.path.name} does not set",
                    f"add {key}=<a long random string> to {settings.path} (or run `cdb-ops init`)",
                    file=str(settings.path),
                )
            fname = key.lower()
            secret_files[fname] = value.encode()
            env[f"{key}_FILE"] = f"{SECRETS_MOUNT}/{fname}"
            mounts.append(MountBinding("bind", str(project.secrets_dir / fname), f"{SECRETS_MOUNT}/{fname}", True))
        file_digests: dict[str, str] = {}
        for m in svc.volumes:
            if m.is_bind:
                where = ("services", name, "volumes")
                source = _interpolate(m.source, settings, where, project, system)  # ./${BACKUP_SECOND_DIR:-backups}
                try:
                    source = project_path(source)
                except ValueError as exc:
                    raise ConfigError(
                        f"service {name!r} mounts {source}: {exc}",
                        "name a folder inside the project (BACKUP_SECOND_DIR and the like in .env)",
                        file=str(project.stack_file),
                        line=load_yaml(project.stack_file).line_of(where),
                    ) from None
                src = Path(os.path.normpath(project.root / source))  # lexical: a loop is reported, not raised
                # a folder a service writes into (backups/) is made when its container is (phases/services.py)
                why = None if src.is_dir() or (not m.read_only and not src.exists()) else regular_file_problem(src)
                if why is not None:
                    raise ConfigError(
                        f"service {name!r} mounts {m.source}, which {why}",
                        "create it, or fix the path (relative to the project directory)",
                        file=str(project.stack_file),
                        line=load_yaml(project.stack_file).line_of(("services", name, "volumes")),
                    )
                mounts.append(MountBinding("bind", str(src), m.target, m.read_only))
                # a config file's *content* is part of the container's config: editing it recreates (a
                # writable folder is the service's output, e.g. backups/: its content changes nothing)
                if m.read_only:
                    file_digests[m.source] = path_digest(src)
            else:
                mounts.append(MountBinding("volume", m.source, m.target, m.read_only))
        ports = tuple(PortBinding(p.bind or stack.bind, p.host, p.container, p.protocol) for p in svc.ports)
        hc = None
        if svc.healthcheck:
            h = svc.healthcheck
            hc = Healthcheck(tuple(h.test), h.interval, h.timeout, h.retries, h.start_period)
        labels = base_labels(system, svc.role, svc.priority) | {LABEL_SERVICE: name}
        build = svc.build or svc.fallback_build
        image = ImageSource(
            ref=svc.image,
            build=svc.build,
            fallback=svc.fallback_build,
            hash_context=_context_hasher(project, build, ("services", name, "build" if svc.build else "fallback_build"))
            if build
            else None,
        )
        container = ContainerSpec(
            name=svc.container,
            image=svc.image,
            labels=labels,
            env=dict(sorted(env.items())),
            command=tuple(svc.command) if svc.command else None,
            ports=ports,
            mounts=tuple(mounts),
            network=stack.network.name,
            aliases=(name,),
            healthcheck=hc,
            restart=svc.restart,
            mem_limit=svc.mem_limit,
            user=_interpolate(svc.user, settings, ("services", name, "user"), project, system) if svc.user else None,
            hostname=svc.container,
            logging=hardening.log_config(stack.logging, svc.logging),
            hardening=hardening.hardening(hardening.effective(stack.hardening, svc.role, svc.hardening)),
        )
        services[name] = DesiredService(name, svc, container, image, secret_files, file_digests)
    volumes = {
        vname: base_labels(system, v.role, v.priority) | {LABEL_DATA: str(v.data).lower()}
        for vname, v in stack.volumes.items()
        if any(m.source == vname for s in services.values() for m in s.spec.volumes)
    }
    return DesiredStack(
        stack=stack,
        project=project,
        profiles=tuple(chosen),
        feed=feed,
        network=stack.network.name,
        network_labels=base_labels(system, "network", "critical"),
        volumes=volumes,
        services=services,
    )


def config_parts(
    spec: ContainerSpec, secret_files: dict[str, bytes], file_digests: dict[str, str] | None = None
) -> dict[str, str]:
    """Short hashes of each part of a container's effective config, so a plan can say *what* changed."""

    def h(obj: object) -> str:
        return short(sha256(json.dumps(obj, sort_keys=True, default=str)))

    parts = {
        "image": h(spec.image),
        "command": h(spec.command),
        "env": h(spec.env),
        "secrets": h({k: sha256(v) for k, v in sorted(secret_files.items())}),
        "mounts": h([m.__dict__ for m in spec.mounts]),
        "ports": h([p.__dict__ for p in spec.ports]),
        "network": h([spec.network, spec.aliases, spec.hostname]),
        "healthcheck": h(spec.healthcheck.__dict__ if spec.healthcheck else None),
        "runtime": h([spec.restart, spec.mem_limit, spec.user]),
        "labels": h(spec.labels),
        # Docker applies log options and hardening only when it creates a container: a change recreates it
        "logging": h(spec.logging.__dict__ if spec.logging else None),
        "hardening": h(spec.hardening.__dict__ if spec.hardening else None),
    }
    if file_digests:  # only containers that mount project files have this part
        parts["files"] = h(file_digests)
    return parts


def finalize(service: DesiredService, image_id: str, image_ref: str | None = None) -> ContainerSpec:
    """The exact container to create: resolved image id plus the config-hash labels."""
    spec = replace(service.container, image=image_id)
    parts = config_parts(spec, service.secret_files, service.file_digests)
    digest = sha256(json.dumps(parts, sort_keys=True))
    labels = spec.labels | {LABEL_HASH: digest, LABEL_PARTS: json.dumps(parts, sort_keys=True)}
    if image_ref:  # for people reading `status`; not part of the hash (the image id is)
        labels[LABEL_IMAGE] = image_ref
    return replace(spec, labels=labels)
