"""The playbook model: `playbooks/stack.yaml` (what the stack is) and phase playbooks (in what order
to converge it). Loading validates everything — keys, types, references, cycles, ports — before any
command touches the engine, and every error names the file, the line and the fix."""

from __future__ import annotations

import re
from graphlib import CycleError, TopologicalSorter
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from cdb_ops.errors import ConfigError, ConfigErrors
from cdb_ops.validation import config_errors_from
from cdb_ops.yamlsource import YamlDocument, load_yaml

PRIORITIES = ("critical", "high", "medium", "optional")
NAME_RE = r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$"
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")


def parse_duration(value: Any) -> float:
    """'5s', '500ms', '2m', 30 -> seconds (float)."""
    if isinstance(value, bool):
        raise ValueError("a duration like 5s, 500ms or 2m")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration must not be negative")
        return float(value)
    if isinstance(value, str):
        m = _DURATION_RE.match(value)
        if m:
            factor = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}[m.group(2) or "s"]
            return float(m.group(1)) * factor
    raise ValueError("a duration like 5s, 500ms or 2m")


Duration = Annotated[float, BeforeValidator(parse_duration)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PortSpec(_Model):
    host: int = Field(ge=1, le=65535)
    container: int = Field(ge=1, le=65535)
    bind: str | None = None  # None: the stack's default bind address
    protocol: Literal["tcp", "udp"] = "tcp"


def _parse_port(value: Any) -> Any:
    """'8000:8000', '127.0.0.1:8000:8000', '8000:8000/udp' or a mapping."""
    if isinstance(value, int) and not isinstance(value, bool):
        return {"host": value, "container": value}
    if isinstance(value, str):
        proto = "tcp"
        if "/" in value:
            value, proto = value.rsplit("/", 1)
        parts = value.split(":")
        try:
            if len(parts) == 2:
                return {"host": int(parts[0]), "container": int(parts[1]), "protocol": proto}
            if len(parts) == 3:
                return {
                    "bind": parts[0],
                    "host": int(parts[1]),
                    "container": int(parts[2]),
                    "protocol": proto,
                }
        except ValueError:
            pass
        raise ValueError("a port like '8000:8000' (host:container) or '127.0.0.1:8000:8000'")
    return value


Port = Annotated[PortSpec, BeforeValidator(_parse_port)]


class MountSpec(_Model):
    """A named volume (`cdb_risk_logs:/var/log/cdb_risk`) or a project folder (`./replays:/replays:ro`)."""

    source: str
    target: str
    read_only: bool = False

    @property
    def is_bind(self) -> bool:
        return self.source.startswith(("./", "../", "/"))


def _parse_mount(value: Any) -> Any:
    if isinstance(value, str):
        parts = value.split(":")
        if len(parts) in (2, 3) and parts[1].startswith("/"):
            mode = parts[2] if len(parts) == 3 else "rw"
            if mode not in ("ro", "rw"):
                raise ValueError("the mode after the second ':' must be ro or rw")
            return {"source": parts[0], "target": parts[1], "read_only": mode == "ro"}
        raise ValueError("a mount like 'volume_name:/path' or './folder:/path:ro'")
    return value


Mount = Annotated[MountSpec, BeforeValidator(_parse_mount)]


class HealthcheckSpec(_Model):
    """Docker's own health check (what `docker ps` shows)."""

    test: list[str] = Field(min_length=1)
    interval: Duration = 5.0
    timeout: Duration = 3.0
    retries: int = Field(default=5, ge=1)
    start_period: Duration = 0.0

    @field_validator("test")
    @classmethod
    def _known_form(cls, v: list[str]) -> list[str]:
        if v[0] not in ("CMD", "CMD-SHELL", "NONE"):
            raise ValueError("the first item must be CMD or CMD-SHELL (as in Docker)")
        return v


class ReadySpec(_Model):
    """How cdb-ops itself probes readiness from the host, instead of waiting for Docker's interval."""

    probe: Literal["postgres", "redis", "http", "docker"]
    port: int | None = Field(default=None, ge=1, le=65535)  # container port; default: the first port
    path: str = "/health"
    timeout: Duration = 120.0


class BuildSpec(_Model):
    context: str
    dockerfile: str | None = None  # relative to the project directory; default: <context>/Dockerfile
    args: dict[str, str] = Field(default_factory=dict)
    tag: str | None = None  # for fallback builds: the tag of the locally built image


class ServiceSpec(_Model):
    container: str = Field(pattern=NAME_RE)
    role: str
    priority: Literal["critical", "high", "medium", "optional"]
    profiles: list[str] = Field(default_factory=lambda: ["core"], min_length=1)
    image: str
    build: BuildSpec | None = None
    fallback_build: BuildSpec | None = None
    command: list[str] | None = None
    env: dict[str, str | int | float | bool] = Field(default_factory=dict)
    secrets: list[str] = Field(default_factory=list)
    volumes: list[Mount] = Field(default_factory=list)
    ports: list[Port] = Field(default_factory=list)
    depends_on: dict[str, Literal["started", "healthy"]] = Field(default_factory=dict)
    healthcheck: HealthcheckSpec | None = None
    ready: ReadySpec | None = None
    restart: Literal["no", "always", "unless-stopped", "on-failure"] = "unless-stopped"
    mem_limit: str | None = Field(default=None, pattern=r"^\d+[kmg]$")
    user: str | None = None

    @field_validator("fallback_build")
    @classmethod
    def _fallback_has_tag(cls, v: BuildSpec | None) -> BuildSpec | None:
        if v is not None and not v.tag:
            raise ValueError("a fallback build needs `tag:` (the local image name, e.g. cdb_ops/postgres:15)")
        return v


class NetworkSpec(_Model):
    name: str = Field(pattern=NAME_RE)
    driver: Literal["bridge"] = "bridge"


class VolumeSpec(_Model):
    role: str
    priority: Literal["critical", "high", "medium", "optional"]
    data: bool = True  # holds data that --wipe-data removes (after a backup)


class FeedSpec(_Model):
    """`--feed live|replay`: which profiles to add and which env to give which service."""

    profiles: list[str] = Field(default_factory=list)
    env: dict[str, dict[str, str]] = Field(default_factory=dict)
    depends_on: dict[str, dict[str, Literal["started", "healthy"]]] = Field(default_factory=dict)


class StackSpec(_Model):
    version: Literal[1]
    system: str = Field(pattern=r"^[a-z0-9_]+$")
    bind: str = "127.0.0.1"
    network: NetworkSpec
    volumes: dict[str, VolumeSpec] = Field(default_factory=dict)
    services: dict[str, ServiceSpec] = Field(min_length=1)
    feeds: dict[str, FeedSpec] = Field(default_factory=dict)
    default_feed: str | None = None

    @property
    def profiles(self) -> set[str]:
        return {p for s in self.services.values() for p in s.profiles}


PhaseKind = Literal["cleanup", "network", "volumes", "images", "services", "schema", "validate"]


class PhaseSpec(_Model):
    name: str = Field(pattern=r"^[a-z0-9_-]+$")
    kind: PhaseKind
    services: list[str] | None = None  # None: every service of the selected profiles
    description: str = ""


class RunbookSpec(_Model):
    """A phase playbook such as playbooks/rebuild.yaml."""

    version: Literal[1]
    name: str
    description: str = ""
    stack: str = "stack.yaml"
    phases: list[PhaseSpec] = Field(min_length=1)


# ---------------------------------------------------------------------------------------------
# loading with cross-reference checks


def _validate(doc: YamlDocument, model: type[_Model]) -> Any:
    if not isinstance(doc.data, dict):
        raise ConfigError(
            "the playbook must be a YAML mapping (key: value lines)",
            "start from the shipped playbooks/stack.yaml",
            file=str(doc.path),
            line=1,
        )
    # top-level `x-...` keys hold YAML anchors shared by several services (as in Compose)
    data = {k: v for k, v in doc.data.items() if not str(k).startswith("x-")}
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise config_errors_from(exc, doc, model) from None


def _stack_problems(stack: StackSpec, doc: YamlDocument) -> list[ConfigError]:
    problems: list[ConfigError] = []
    f = str(doc.path)
    names = set(stack.services)

    def err(loc: tuple[str | int, ...], msg: str, fix: str) -> None:
        problems.append(ConfigError(msg, fix, file=f, line=doc.line_of(loc)))

    containers: dict[str, str] = {}
    host_ports: dict[tuple[str, int, str], str] = {}
    for name, svc in stack.services.items():
        base = ("services", name)
        if svc.container in containers:
            err(
                base + ("container",),
                f"container name {svc.container!r} is also used by service {containers[svc.container]!r}",
                "give every service its own container name",
            )
        containers[svc.container] = name
        if svc.build and svc.fallback_build:
            err(
                base + ("fallback_build",),
                f"service {name!r} has both build and fallback_build",
                "use build: for images built here, fallback_build: for pulled images with a local fallback",
            )
        for dep in svc.depends_on:
            if dep not in names:
                close = [n for n in names if n.startswith(dep[:3])]
                err(
                    base + ("depends_on", dep),
                    f"service {name!r} depends on unknown service {dep!r}",
                    f"use one of: {', '.join(sorted(names))}" + (f" (did you mean {close[0]!r}?)" if close else ""),
                )
            elif dep == name:
                err(base + ("depends_on", dep), f"service {name!r} depends on itself", "remove that entry")
        for i, port in enumerate(svc.ports):
            key = (port.bind or stack.bind, port.host, port.protocol)
            other = host_ports.get(key)
            if other is not None:
                err(
                    base + ("ports", i),
                    f"host port {port.host} is published by both {other!r} and {name!r}",
                    "give one of them another host port (the number before the ':')",
                )
            host_ports[key] = name
        for i, mount in enumerate(svc.volumes):
            if not mount.is_bind and mount.source not in stack.volumes:
                err(
                    base + ("volumes", i),
                    f"service {name!r} mounts undeclared volume {mount.source!r}",
                    f"declare it under top-level volumes:, or use one of: {', '.join(sorted(stack.volumes))}",
                )
        for env_key in svc.env:
            if env_key in svc.secrets or env_key.removesuffix("_FILE") in svc.secrets:
                err(
                    base + ("env", env_key),
                    f"{env_key} is listed both in env and secrets of {name!r}",
                    "keep it only under secrets: (it reaches the container as a read-only file)",
                )
        if svc.ready and svc.ready.probe in ("postgres", "redis", "http") and not svc.ports:
            err(
                base + ("ready",),
                f"service {name!r} is probed over {svc.ready.probe} but publishes no port",
                "add a ports: entry or use `probe: docker`",
            )
        if svc.ready and svc.ready.port and svc.ready.port not in {p.container for p in svc.ports}:
            err(
                base + ("ready", "port"),
                f"ready.port {svc.ready.port} is not one of {name!r}'s container ports",
                "use a container port listed under ports:",
            )
    for feed, spec in stack.feeds.items():
        for svc_name, deps in spec.depends_on.items():
            for dep in [svc_name, *deps]:
                if dep not in names:
                    err(
                        ("feeds", feed, "depends_on"),
                        f"feed {feed!r} names unknown service {dep!r}",
                        f"use one of: {', '.join(sorted(names))}",
                    )
        for svc_name in spec.env:
            if svc_name not in names:
                err(
                    ("feeds", feed, "env", svc_name),
                    f"feed {feed!r} sets env of unknown service {svc_name!r}",
                    f"use one of: {', '.join(sorted(names))}",
                )
        for prof in spec.profiles:
            if prof not in stack.profiles:
                err(
                    ("feeds", feed, "profiles"),
                    f"feed {feed!r} names unknown profile {prof!r}",
                    f"use one of: {', '.join(sorted(stack.profiles))}",
                )
    if stack.default_feed is not None and stack.default_feed not in stack.feeds:
        err(
            ("default_feed",),
            f"default_feed {stack.default_feed!r} is not declared under feeds:",
            f"use one of: {', '.join(sorted(stack.feeds)) or '(declare feeds first)'}",
        )
    if not any(p for p in problems if "unknown service" in p.message):
        try:
            TopologicalSorter({n: set(s.depends_on) - {n} for n, s in stack.services.items()}).prepare()
        except CycleError as exc:
            cycle = list(exc.args[1])
            err(
                ("services", cycle[0], "depends_on"),
                "dependency cycle: " + " -> ".join(cycle),
                "remove one depends_on entry so the services can start in order",
            )
    return problems


def load_stack(path: Path) -> StackSpec:
    doc = load_yaml(path)
    stack: StackSpec = _validate(doc, StackSpec)
    problems = _stack_problems(stack, doc)
    if problems:
        raise ConfigErrors(problems) if len(problems) > 1 else problems[0]
    return stack


def load_runbook(path: Path) -> tuple[RunbookSpec, StackSpec]:
    """A phase playbook and the stack it refers to, cross-checked."""
    doc = load_yaml(path)
    book: RunbookSpec = _validate(doc, RunbookSpec)
    stack = load_stack(path.parent / book.stack)
    problems: list[ConfigError] = []
    seen: set[str] = set()
    for i, phase in enumerate(book.phases):
        if phase.name in seen:
            problems.append(
                ConfigError(
                    f"phase name {phase.name!r} is used twice",
                    "give each phase its own name",
                    file=str(path),
                    line=doc.line_of(("phases", i, "name")),
                )
            )
        seen.add(phase.name)
        for j, svc in enumerate(phase.services or []):
            if svc not in stack.services:
                problems.append(
                    ConfigError(
                        f"phase {phase.name!r} names unknown service {svc!r}",
                        f"use one of: {', '.join(sorted(stack.services))}",
                        file=str(path),
                        line=doc.line_of(("phases", i, "services", j)),
                    )
                )
        if phase.services is not None and phase.kind not in ("services", "images"):
            problems.append(
                ConfigError(
                    f"phase {phase.name!r} of kind {phase.kind} takes no services list",
                    "remove `services:` from it",
                    file=str(path),
                    line=doc.line_of(("phases", i, "services")),
                )
            )
    if problems:
        raise ConfigErrors(problems) if len(problems) > 1 else problems[0]
    return book, stack


def start_order(stack: StackSpec, selected: list[str]) -> list[list[str]]:
    """Tiers of services: every service starts after the tiers holding its dependencies."""
    sel = set(selected)
    graph = {n: {d for d in stack.services[n].depends_on if d in sel} for n in selected}
    sorter = TopologicalSorter(graph)
    sorter.prepare()
    tiers: list[list[str]] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready())
        tiers.append(ready)
        sorter.done(*ready)
    return tiers
