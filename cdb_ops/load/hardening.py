"""Log caps and container hardening as the playbook declares them: a stack-wide default, per-role
defaults, per-service overrides (each key given replaces the one below it), validated on load, and
resolved into the `LogConfig` and `Hardening` the engine creates a container with.

The baseline (BASELINE) is what `doctor` holds every running container to (CIS Docker Benchmark §5):
every capability dropped, no-new-privileges, a read-only root filesystem, a pids and a memory limit, a
non-root user, ports on loopback, and a capped log."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

from cdb_ops.model.resources import Hardening, LogConfig

SIZE_RE = re.compile(r"^\d+[kmg]$")
# Linux capabilities (capabilities(7), kernel 5.x) as Docker names them: without the CAP_ prefix
CAPABILITIES = frozenset(
    {
        "AUDIT_CONTROL",
        "AUDIT_READ",
        "AUDIT_WRITE",
        "BLOCK_SUSPEND",
        "BPF",
        "CHECKPOINT_RESTORE",
        "CHOWN",
        "DAC_OVERRIDE",
        "DAC_READ_SEARCH",
        "FOWNER",
        "FSETID",
        "IPC_LOCK",
        "IPC_OWNER",
        "KILL",
        "LEASE",
        "LINUX_IMMUTABLE",
        "MAC_ADMIN",
        "MAC_OVERRIDE",
        "MKNOD",
        "NET_ADMIN",
        "NET_BIND_SERVICE",
        "NET_BROADCAST",
        "NET_RAW",
        "PERFMON",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_ADMIN",
        "SYS_BOOT",
        "SYS_CHROOT",
        "SYS_MODULE",
        "SYS_NICE",
        "SYS_PACCT",
        "SYS_PTRACE",
        "SYS_RAWIO",
        "SYS_RESOURCE",
        "SYS_TIME",
        "SYS_TTY_CONFIG",
        "SYSLOG",
        "WAKE_ALARM",
    }
)
NO_NEW_PRIVILEGES = "no-new-privileges:true"


def fix_error(message: str, fix: str) -> PydanticCustomError:
    """A validation error that carries its own fix (config_errors_from shows it as the remedy)."""
    return PydanticCustomError("cdb_fix", message, {"fix": fix})


def _size(value: str) -> str:
    if not SIZE_RE.match(value):
        raise fix_error(f"{value!r} is not a size", "write a whole number with k, m or g, e.g. 10m")
    if int(value[:-1]) == 0:
        raise fix_error("a size of 0 would cap nothing", "write at least 1k, e.g. 10m")
    return value


def _capability(value: str) -> str:
    name = value.upper().removeprefix("CAP_")
    if name == "ALL" or name in CAPABILITIES:
        return name
    close = difflib.get_close_matches(name, sorted(CAPABILITIES), n=1)
    raise fix_error(
        f"unknown capability {value!r}",
        (f"did you mean {close[0]!r}? " if close else "") + "write a name from capabilities(7) without CAP_, "
        "e.g. CHOWN, or ALL",
    )


def _mount_point(value: str) -> str:
    if not value.startswith("/") or value.rstrip("/") == "" or ":" in value or any(c.isspace() for c in value):
        raise fix_error(f"{value!r} is not a mount point", "write an absolute path inside the container, e.g. /tmp")
    return value.rstrip("/")


Size = Annotated[str, AfterValidator(_size)]
Capability = Annotated[str, AfterValidator(_capability)]
MountPoint = Annotated[str, AfterValidator(_mount_point)]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LoggingSpec(_Spec):
    """Docker's own log rotation; both drivers keep `docker logs` (and so `cdb-ops logs`) working."""

    driver: Literal["local", "json-file"] = "local"
    max_size: Size = "10m"  # per file
    max_file: int = Field(default=3, ge=1, le=100)  # files kept: the cap is max_size × max_file


class HardeningSpec(_Spec):
    """One layer of hardening: every key is optional, a key given replaces the layer below it."""

    cap_drop: list[Capability] | None = None
    cap_add: list[Capability] | None = None
    no_new_privileges: bool | None = None
    read_only: bool | None = None
    tmpfs: dict[MountPoint, Size] | None = None  # where a process must write: mount point -> size
    pids_limit: int | None = Field(default=None, ge=8, le=4_194_304)


class HardeningPolicy(_Spec):
    """`hardening:` at the top of the playbook: the default for every service, and per role."""

    default: HardeningSpec = Field(default_factory=HardeningSpec)
    roles: dict[str, HardeningSpec] = Field(default_factory=dict)


# What doctor holds every running container to, whatever the playbook says.
BASELINE = HardeningSpec(cap_drop=["ALL"], cap_add=[], no_new_privileges=True, read_only=True, pids_limit=8)


def merge(*layers: BaseModel | None) -> dict[str, Any]:
    """The keys each layer sets, later layers winning (a whole key is replaced, lists are not merged)."""
    out: dict[str, Any] = {}
    for layer in layers:
        if layer is not None:
            out.update({k: getattr(layer, k) for k in layer.model_fields_set})
    return out


def log_config(stack_logging: LoggingSpec, service_logging: LoggingSpec | None) -> LogConfig:
    spec = LoggingSpec(**merge(stack_logging, service_logging))
    return LogConfig(spec.driver, {"max-size": spec.max_size, "max-file": str(spec.max_file)})


def effective(policy: HardeningPolicy | None, role: str, service: HardeningSpec | None) -> HardeningSpec:
    if policy is None:
        return HardeningSpec(**merge(service))
    return HardeningSpec(**merge(policy.default, policy.roles.get(role), service))


def hardening(spec: HardeningSpec) -> Hardening:
    return Hardening(
        cap_drop=tuple(spec.cap_drop or ()),
        cap_add=tuple(spec.cap_add or ()),
        security_opt=(NO_NEW_PRIVILEGES,) if spec.no_new_privileges else (),
        read_only=bool(spec.read_only),
        tmpfs={path: f"size={size}" for path, size in sorted((spec.tmpfs or {}).items())},
        pids_limit=spec.pids_limit,
    )


def _source(policy: HardeningPolicy | None, name: str, svc: Any, key: str) -> tuple[str | int, ...]:
    """Where the effective `key` of service `name` is set: its own layer, its role's, or the default."""
    if svc.hardening is not None and key in svc.hardening.model_fields_set:
        return ("services", name, "hardening", key)
    if policy is not None and key in getattr(policy.roles.get(svc.role), "model_fields_set", ()):
        return ("hardening", "roles", svc.role, key)
    return ("hardening", "default", key)


def problems(stack: Any, err: Callable[[tuple[str | int, ...], str, str], None]) -> None:
    """Cross-checks the models cannot make alone: roles that exist, ALL never added, no tmpfs over a
    volume, and a memory limit wherever there is a tmpfs (a tmpfs is memory). Each reported once, at
    the layer that sets the value."""
    policy: HardeningPolicy | None = stack.hardening
    roles = {s.role for s in stack.services.values()}
    if policy is not None:
        for role in policy.roles:
            if role not in roles:
                err(
                    ("hardening", "roles", role),
                    f"hardening names unknown role {role!r}",
                    f"use one of: {', '.join(sorted(roles))}",
                )
    seen: set[tuple[str | int, ...]] = set()
    for name, svc in stack.services.items():
        spec = effective(policy, svc.role, svc.hardening)
        where = _source(policy, name, svc, "cap_add")
        if "ALL" in (spec.cap_add or []) and where not in seen:
            seen.add(where)
            err(
                where,
                "cap_add: ALL would give every capability",
                "add only the capabilities the process needs, e.g. [CHOWN, SETUID]",
            )
        targets = {m.target.rstrip("/") for m in svc.volumes}
        for path in spec.tmpfs or {}:
            if path in targets:
                err(
                    _source(policy, name, svc, "tmpfs"),
                    f"service {name!r} mounts both a volume and a tmpfs at {path}",
                    f"remove {path} from the tmpfs (or set `tmpfs:` under services.{name}.hardening without it)",
                )
        if spec.tmpfs and svc.mem_limit is None:
            err(
                ("services", name),
                f"service {name!r} has tmpfs mounts but no mem_limit",
                "add `mem_limit:` (e.g. 160m): a tmpfs is memory, and the limit is what bounds it",
            )
