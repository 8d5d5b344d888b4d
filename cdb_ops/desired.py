"""The desired stack: playbook + .env + command-line choices, resolved into concrete resources.

This is the "operations" half of the plan (what should be); `facts` come from the engine adapter."""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from cdb_ops.engine import ContainerSpec, Healthcheck, MountBinding, PortBinding
from cdb_ops.errors import ConfigError, UsageError
from cdb_ops.playbook import BuildSpec, ServiceSpec, StackSpec
from cdb_ops.project import Project
from cdb_ops.settings import SECRET_KEYS, Settings
from cdb_ops.yamlsource import load_yaml

LABEL_SYSTEM = "cdb.system"
LABEL_ROLE = "cdb.role"
LABEL_PRIORITY = "cdb.priority"
LABEL_SERVICE = "cdb.service"
LABEL_HASH = "cdb.config-hash"
LABEL_PARTS = "cdb.config-parts"
LABEL_BUILD_HASH = "cdb.build-hash"
LABEL_DATA = "cdb.data"
LABEL_IMAGE = "cdb.image"
LABEL_IMAGE_SYSTEM = "cdb.image.system"
LABEL_IMAGE_SERVICE = "cdb.image.service"
# bump when the labels an image is built with change, so existing images are rebuilt once
IMAGE_LABELS_VERSION = 2
SECRETS_MOUNT = "/run/secrets"

_VAR_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def short(digest: str) -> str:
    return digest[:12]


def sha256(data: bytes | str) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


@dataclass(frozen=True)
class ImageSource:
    """Where a service's image comes from: pulled, built here, or pulled with a local fallback build."""

    ref: str  # what the container runs when all goes to plan
    build: BuildSpec | None = None  # always built here, tagged `ref`
    fallback: BuildSpec | None = None  # built (tagged fallback.tag) when `ref` cannot be pulled
    build_hash: str | None = None  # content hash of the build context (build or fallback)

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
        return f"{LABEL_SYSTEM}={self.stack.system}"

    def service_by_container(self, container: str) -> DesiredService | None:
        return next((s for s in self.services.values() if s.container.name == container), None)


def base_labels(system: str, role: str, priority: str) -> dict[str, str]:
    return {LABEL_SYSTEM: system, LABEL_ROLE: role, LABEL_PRIORITY: priority}


def _interpolate(value: str, settings: Settings, where: tuple[str, ...], project: Project) -> str:
    def sub(m: re.Match[str]) -> str:
        key, default = m.group(1), m.group(2)
        if key in SECRET_KEYS:
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


def _env_value(v: str | int | float | bool) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _read_dockerignore(context: Path) -> list[str]:
    f = context / ".dockerignore"
    if not f.is_file():
        return []
    return [ln.strip().rstrip("/") for ln in f.read_text().splitlines() if ln.strip() and not ln.startswith("#")]


def _copy_sources(dockerfile: Path) -> list[str] | None:
    """The context paths a Dockerfile's COPY/ADD lines read, or None when it reads the whole context.

    The image depends only on the Dockerfile and these files, so the build hash covers just them:
    editing the screener does not rebuild (and recreate) the signal engine, though both share images/."""
    sources: list[str] = []
    text = dockerfile.read_text(encoding="utf-8").replace("\\\n", " ")
    for raw in text.splitlines():
        parts = raw.strip().split()
        if not parts or parts[0].upper() not in ("COPY", "ADD"):
            continue
        args = [a for a in parts[1:] if not a.startswith("--")]
        if any(a.startswith("--from") for a in parts[1:]):
            continue  # copies from another stage, not from the context
        if args and args[0].startswith("["):  # JSON form
            try:
                args = json.loads(" ".join(parts[1:]).split("]", 1)[0] + "]")
            except json.JSONDecodeError:
                return None
        for src in args[:-1]:
            src = src.strip("/").removeprefix("./")
            if src in ("", ".") or any(ch in src for ch in "*?[$"):
                return None  # the whole context, a glob or a variable: hash everything
            sources.append(src)
    return sources


def build_context_hash(project: Project, build: BuildSpec) -> str:
    """Content hash of a build: the Dockerfile, the args, and every context file its COPY/ADD lines
    read (all of the context when that cannot be told), minus .dockerignore.

    An image whose label carries this hash is current, so a no-op rebuild sends no build at all."""
    context = (project.root / build.context).resolve()
    if not context.is_dir():
        raise ConfigError(
            f"build context {build.context!r} does not exist",
            "fix `context:` in playbooks/stack.yaml (a folder relative to the project)",
            file=str(project.stack_file),
        )
    dockerfile = context / dockerfile_of(build)
    if not dockerfile.is_file():
        raise ConfigError(
            f"Dockerfile {dockerfile} does not exist",
            "fix `dockerfile:` in playbooks/stack.yaml (relative to the project)",
            file=str(project.stack_file),
        )
    ignore = _read_dockerignore(context)
    sources = _copy_sources(dockerfile)
    roots = [context] if sources is None else [context / src for src in sources]
    files: set[Path] = {dockerfile}
    for root in roots:
        if root.is_file():
            files.add(root)
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            rel_dir = Path(dirpath).relative_to(context)
            dirnames[:] = [
                d for d in dirnames if not any(fnmatch.fnmatch(str(rel_dir / d), p) or d == p for p in ignore)
            ]
            files.update(Path(dirpath) / name for name in filenames)
    h = hashlib.sha256()
    for path in sorted(files):
        rel = str(path.relative_to(context))
        if path != dockerfile and any(fnmatch.fnmatch(rel, p) or fnmatch.fnmatch(path.name, p) for p in ignore):
            continue
        h.update(rel.encode() + b"\0")
        h.update(hashlib.sha256(path.read_bytes()).digest())
    h.update(
        json.dumps(
            {"dockerfile": dockerfile_of(build), "args": build.args, "labels": IMAGE_LABELS_VERSION}, sort_keys=True
        ).encode()
    )
    return h.hexdigest()


def dockerfile_of(build: BuildSpec) -> str:
    """The Dockerfile path relative to the build context (what the engine expects)."""
    if build.dockerfile is None:
        return "Dockerfile"
    df = Path(build.dockerfile)
    ctx = Path(build.context)
    try:
        return str(df.relative_to(ctx))
    except ValueError:
        return str(df)


def select_services(stack: StackSpec, profiles: list[str] | None, feed: str | None) -> tuple[list[str], list[str]]:
    """(profiles in effect, service names) — `core` plus what the feed and --profile add."""
    chosen = list(profiles or ["core"])
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
    feed = feed or stack.default_feed
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
            env[key] = _interpolate(_env_value(raw), settings, ("services", name, "env", key), project)
        if feed:
            env.update(stack.feeds[feed].env.get(name, {}))
        secret_files: dict[str, bytes] = {}
        mounts: list[MountBinding] = []
        for key in svc.secrets:
            value = settings.get(key)
            if not value:
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
                src = (project.root / m.source).resolve()
                if not src.exists():
                    raise ConfigError(
                        f"service {name!r} mounts {m.source}, which does not exist",
                        "create it, or fix the path (relative to the project directory)",
                        file=str(project.stack_file),
                        line=load_yaml(project.stack_file).line_of(("services", name, "volumes")),
                    )
                mounts.append(MountBinding("bind", str(src), m.target, m.read_only))
                # a config file's *content* is part of the container's config: editing it recreates
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
            build_hash=build_context_hash(project, build) if build else None,
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
            user=svc.user,
            hostname=svc.container,
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


def path_digest(path: Path) -> str:
    """Content hash of a file, or of every file under a folder (names and contents)."""
    if path.is_file():
        return sha256(path.read_bytes())
    h = hashlib.sha256()
    for p in sorted(x for x in path.rglob("*") if x.is_file()):
        h.update(str(p.relative_to(path)).encode() + b"\0" + hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


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


def write_secret_files(desired: DesiredStack) -> list[str]:
    """Write each secret to .cdb/secrets (dir 0700, file 0444: readable by the container's user,
    unreachable for other host users); only when the content changed, so nothing churns."""
    desired.project.ensure_state_dir()
    written = []
    for svc in desired.services.values():
        for fname, content in svc.secret_files.items():
            path = desired.project.secrets_dir / fname
            if path.is_file() and path.read_bytes() == content:
                continue
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(content)
            os.chmod(tmp, 0o444)
            tmp.replace(path)
            written.append(fname)
    return written
