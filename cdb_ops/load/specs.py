"""The playbook's data model: `playbooks/stack.yaml` (what the stack is) and phase playbooks (in what
order to converge it), as frozen pydantic models — every key, type and range checked on load."""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from cdb_ops.load.hardening import HardeningPolicy, HardeningSpec, LoggingSpec
from cdb_ops.load.validation import BindAddress, EnvName, ImageRef, ProjectPath, docker_duration, project_path

NAME_RE = r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$"
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")


def parse_duration(value: Any) -> float:
    """'5s', '500ms', '2m', 30 -> seconds (float)."""
    if isinstance(value, bool):
        raise ValueError("a duration like 5s, 500ms or 2m")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError("a duration must be a finite number of seconds, like 5s or 2m")
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
DockerDuration = Annotated[float, BeforeValidator(parse_duration), AfterValidator(docker_duration)]
Name = Annotated[str, Field(pattern=NAME_RE)]


class SpecModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PortSpec(SpecModel):
    host: int = Field(ge=1, le=65535)
    container: int = Field(ge=1, le=65535)
    bind: BindAddress | None = None  # None: the stack's default bind address
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
    if not isinstance(value, dict):  # a float (8001.5), a bool, a list: not a port in any syntax
        raise ValueError('a port is written "HOST:CONTAINER", like "8000:8000" (quoted), or as one number')
    return value


Port = Annotated[PortSpec, BeforeValidator(_parse_port)]


class MountSpec(SpecModel):
    """A named volume (`cdb_risk_logs:/var/log/cdb_risk`) or a project folder (`./replays:/replays:ro`)."""

    source: str
    target: str = Field(pattern=r"^/")
    read_only: bool = False

    @property
    def is_bind(self) -> bool:
        return is_bind_source(self.source)

    @field_validator("source")
    @classmethod
    def _inside_project(cls, v: str) -> str:
        if is_bind_source(v):
            return project_path(v)
        if not re.match(NAME_RE, v):
            raise ValueError("a volume name (letters, digits, _ . -) or a project path starting with ./")
        return v


def is_bind_source(source: str) -> bool:
    return source.startswith(("./", "../", "/"))


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


class HealthcheckSpec(SpecModel):
    """Docker's own health check (what `docker ps` shows)."""

    test: list[str] = Field(min_length=1)
    interval: DockerDuration = 5.0
    timeout: DockerDuration = 3.0
    retries: int = Field(default=5, ge=1, le=2**31 - 1)
    start_period: DockerDuration = 0.0

    @field_validator("test")
    @classmethod
    def _known_form(cls, v: list[str]) -> list[str]:
        if v[0] not in ("CMD", "CMD-SHELL", "NONE"):
            raise ValueError("the first item must be CMD or CMD-SHELL (as in Docker)")
        if v[0] != "NONE" and len(v) < 2:
            raise ValueError(f"{v[0]} needs the command after it, e.g. [{v[0]}, ...]")
        return v


class ReadySpec(SpecModel):
    """How cdb-ops itself probes readiness from the host, instead of waiting for Docker's interval."""

    probe: Literal["postgres", "redis", "http", "docker"]
    port: int | None = Field(default=None, ge=1, le=65535)  # container port; default: the first port
    path: str = Field(default="/health", pattern=r"^/")
    timeout: DockerDuration = 120.0


class BuildSpec(SpecModel):
    context: ProjectPath
    dockerfile: ProjectPath | None = None  # relative to the project directory; default: <context>/Dockerfile
    args: dict[EnvName, str] = Field(default_factory=dict)
    tag: ImageRef | None = None  # for fallback builds: the tag of the locally built image


class ServiceSpec(SpecModel):
    container: str = Field(pattern=NAME_RE)
    role: str
    priority: Literal["critical", "high", "medium", "optional"]
    profiles: list[str] = Field(default_factory=lambda: ["core"], min_length=1)
    image: ImageRef
    build: BuildSpec | None = None
    fallback_build: BuildSpec | None = None
    command: list[str] | None = None
    env: dict[EnvName, str | int | float | bool] = Field(default_factory=dict)
    secrets: list[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]] = Field(default_factory=list)
    volumes: list[Mount] = Field(default_factory=list)
    ports: list[Port] = Field(default_factory=list)
    depends_on: dict[str, Literal["started", "healthy"]] = Field(default_factory=dict)
    healthcheck: HealthcheckSpec | None = None
    ready: ReadySpec | None = None
    restart: Literal["no", "always", "unless-stopped", "on-failure"] = "unless-stopped"
    mem_limit: str | None = Field(default=None, pattern=r"^\d+[kmg]$")
    user: str | None = None
    logging: LoggingSpec | None = None  # over the stack's `logging:`, key by key
    hardening: HardeningSpec | None = None  # over the stack's `hardening:` default and role, key by key

    @field_validator("fallback_build")
    @classmethod
    def _fallback_has_tag(cls, v: BuildSpec | None) -> BuildSpec | None:
        if v is not None and not v.tag:
            raise ValueError("a fallback build needs `tag:` (the local image name, e.g. cdb_ops/postgres:15)")
        return v


class NetworkSpec(SpecModel):
    name: str = Field(pattern=NAME_RE)
    driver: Literal["bridge"] = "bridge"


class VolumeSpec(SpecModel):
    role: str
    priority: Literal["critical", "high", "medium", "optional"]
    data: bool = True  # holds data that --wipe-data removes (after a backup)


class FeedSpec(SpecModel):
    """`--feed live|replay`: which profiles to add and which env to give which service."""

    profiles: list[str] = Field(default_factory=list)
    env: dict[str, dict[EnvName, str]] = Field(default_factory=dict)
    depends_on: dict[str, dict[str, Literal["started", "healthy"]]] = Field(default_factory=dict)


class StackSpec(SpecModel):
    version: Literal[1]
    system: str = Field(pattern=r"^[a-z0-9_]+$")
    bind: BindAddress = "127.0.0.1"
    network: NetworkSpec
    volumes: dict[Name, VolumeSpec] = Field(default_factory=dict)
    services: dict[Name, ServiceSpec] = Field(min_length=1)
    feeds: dict[str, FeedSpec] = Field(default_factory=dict)
    default_feed: str | None = None
    # what runs without --profile (`--profile core` alone leaves the others out)
    default_profiles: list[str] = Field(default_factory=lambda: ["core"], min_length=1)
    # every container's log is capped, even where the playbook says nothing (Docker's own default keeps
    # every line forever)
    logging: LoggingSpec = Field(default_factory=LoggingSpec)
    hardening: HardeningPolicy | None = None

    @property
    def profiles(self) -> set[str]:
        return {p for s in self.services.values() for p in s.profiles}


PhaseKind = Literal["cleanup", "network", "volumes", "images", "services", "schema", "validate"]
# phases that never look at an image: a run of only these (`down`) neither inspects images nor hashes
# build contexts
IMAGELESS_KINDS: frozenset[str] = frozenset({"cleanup", "network", "volumes"})


def needs_images(phases: list[PhaseSpec]) -> bool:
    """Whether a run of `phases` builds, starts or checks containers, so needs images and build hashes."""
    return any(p.kind not in IMAGELESS_KINDS for p in phases)


class PhaseSpec(SpecModel):
    name: str = Field(pattern=r"^[a-z0-9_-]+$")
    kind: PhaseKind
    services: list[str] | None = None  # None: every service of the selected profiles
    description: str = ""


class RunbookSpec(SpecModel):
    """A phase playbook such as playbooks/rebuild.yaml."""

    version: Literal[1]
    name: str
    description: str = ""
    stack: str = "stack.yaml"
    phases: list[PhaseSpec] = Field(min_length=1)
