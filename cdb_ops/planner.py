"""The planner: compare the desired stack with the engine's facts and list the changes — plain data.

`plan` prints the list; `rebuild` applies it phase by phase (recomputing as the engine changes)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Literal

from cdb_ops.desired import (
    LABEL_BUILD_HASH,
    LABEL_HASH,
    LABEL_PARTS,
    LABEL_SERVICE,
    LABEL_SYSTEM,
    DesiredService,
    DesiredStack,
    finalize,
)
from cdb_ops.engine import ContainerFacts, Engine, ImageFacts, PortBinding

Action = Literal["create", "recreate", "start", "remove", "build", "pull", "ok", "conflict", "orphan"]
Resource = Literal["network", "volume", "image", "container"]
REPLACED_MARK = "-replaced-"


@dataclass(frozen=True)
class Change:
    resource: Resource
    name: str
    action: Action
    reason: str = ""
    service: str | None = None

    @property
    def changes_something(self) -> bool:
        return self.action not in ("ok", "orphan", "conflict")

    def to_dict(self) -> dict[str, object]:
        return {k: v for k, v in asdict(self).items()}


@dataclass
class Plan:
    changes: list[Change] = field(default_factory=list)

    @property
    def conflicts(self) -> list[Change]:
        return [c for c in self.changes if c.action == "conflict"]

    @property
    def pending(self) -> list[Change]:
        return [c for c in self.changes if c.changes_something]

    def for_resource(self, resource: Resource) -> list[Change]:
        return [c for c in self.changes if c.resource == resource]


@dataclass(frozen=True)
class ImageChoice:
    """The image a service will run, as far as it can be known without pulling or building."""

    action: Literal["ok", "pull", "build"]
    ref: str  # the image reference that will be used
    image: ImageFacts | None
    reason: str = ""
    fallback: bool = False


def choose_image(engine: Engine, svc: DesiredService, no_cache: bool = False) -> ImageChoice:
    src = svc.image
    if src.build:
        found = engine.image(src.ref)
        if found and found.labels.get(LABEL_BUILD_HASH) == src.build_hash and not no_cache:
            return ImageChoice("ok", src.ref, found)
        why = "--no-cache" if no_cache and found else ("build context changed" if found else "not built yet")
        return ImageChoice("build", src.ref, None, why)
    official = engine.image(src.ref)
    if official:
        return ImageChoice("ok", src.ref, official)
    if src.fallback:
        assert src.fallback.tag
        fb = engine.image(src.fallback.tag)
        if fb and fb.labels.get(LABEL_BUILD_HASH) == src.build_hash and not no_cache:
            return ImageChoice("ok", src.fallback.tag, fb, f"fallback build ({src.ref} could not be pulled)", True)
        # try the registry first; the fallback is built only when the pull fails
        return ImageChoice("pull", src.ref, None, f"not present; if the pull fails: build {src.fallback.context}")
    return ImageChoice("pull", src.ref, None, "not present")


def container_change(
    desired: DesiredStack,
    svc: DesiredService,
    actual: ContainerFacts | None,
    image: ImageChoice,
    network_id: str | None,
) -> Change:
    """`network_id`: the id of the stack's network now (None: it does not exist yet)."""
    name = svc.container.name

    def change(action: Action, reason: str = "") -> Change:
        return Change("container", name, action, reason, svc.name)

    if actual is None:
        return change("create", "missing")
    if actual.labels.get(LABEL_SYSTEM) != desired.system:
        return change(
            "conflict",
            f"a container named {name} exists but is not part of {desired.system} (no {LABEL_SYSTEM} label)",
        )
    if image.image is None:
        return change("recreate", f"image will be {'built' if image.action == 'build' else 'pulled'}")
    want = finalize(svc, image.image.id)
    if actual.labels.get(LABEL_HASH) != want.labels[LABEL_HASH]:
        return change("recreate", _why_different(actual, want.labels[LABEL_PARTS]))
    if network_id is None or (network_id not in actual.network_ids and actual.network_ids):
        return change("recreate", f"network {desired.network} is gone (it was removed or recreated)")
    if desired.network not in actual.networks:
        return change("recreate", f"not attached to network {desired.network}")
    if actual.state in ("running", "restarting"):
        return change("ok")
    if actual.state == "paused":
        return change("recreate", "paused")
    return change("start", f"container is {actual.state}")


def _why_different(actual: ContainerFacts, want_parts_json: str) -> str:
    try:
        have = json.loads(actual.labels.get(LABEL_PARTS, "{}"))
    except json.JSONDecodeError:
        have = {}
    want = json.loads(want_parts_json)
    changed = sorted(k for k in want if have.get(k) != want[k])
    if not have:
        return "config hash missing (created by an older cdb-ops or by hand)"
    return "changed: " + ", ".join(changed) if changed else "config hash changed"


def ports_overlap(a: PortBinding, b: PortBinding) -> bool:
    wildcard = ("0.0.0.0", "::", "")
    return (
        a.host == b.host and a.protocol == b.protocol and (a.bind == b.bind or a.bind in wildcard or b.bind in wildcard)
    )


def port_holder_process(bind: str, port: int) -> str | None:
    """Which process listens on bind:port, when the OS lets us see it."""
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil is a dependency
        return None
    try:
        conns = psutil.net_connections(kind="inet")
    except (psutil.AccessDenied, PermissionError):
        return None
    for c in conns:
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port:
            if c.pid:
                try:
                    p = psutil.Process(c.pid)
                    return f"{p.name()} (pid {c.pid})"
                except psutil.Error:
                    return f"pid {c.pid}"
            return "an unknown process"
    return None


def port_is_free(bind: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((bind, port))
        except OSError:
            return False
    return True


def port_conflicts(
    desired: DesiredStack, svc: DesiredService, all_containers: Iterable[ContainerFacts], engine_local: bool
) -> list[Change]:
    """Host ports this service needs that something outside the stack holds (before anything changes)."""
    out: list[Change] = []
    containers = list(all_containers)
    ours = [c for c in containers if c.labels.get(LABEL_SYSTEM) == desired.system and c.running]
    for want in svc.container.ports:
        foreign = next(
            (
                c
                for c in containers
                if c.labels.get(LABEL_SYSTEM) != desired.system
                and c.running
                and any(ports_overlap(want, p) for p in c.ports)
            ),
            None,
        )
        if foreign:
            out.append(
                Change(
                    "container",
                    svc.container.name,
                    "conflict",
                    f"host port {want.host} is published by container {foreign.name!r}, which is not part of the stack",
                    svc.name,
                )
            )
            continue
        if any(any(ports_overlap(want, p) for p in c.ports) for c in ours):
            continue  # held by our own container (the one being replaced, or its twin): fine
        if engine_local and not port_is_free(want.bind, want.host):
            who = port_holder_process(want.bind, want.host)
            out.append(
                Change(
                    "container",
                    svc.container.name,
                    "conflict",
                    f"host port {want.bind}:{want.host} is held by {who or 'another process'}",
                    svc.name,
                )
            )
    return out


def plan_stack(
    engine: Engine,
    desired: DesiredStack,
    *,
    services: list[str] | None = None,
    remove_orphans: bool = False,
    no_cache: bool = False,
    check_ports: bool = True,
) -> Plan:
    """Every change `rebuild` would make (restricted to `services` when given)."""
    plan = Plan()
    info = engine.info()

    net = engine.network(desired.network)
    if net is None:
        plan.changes.append(Change("network", desired.network, "create", "missing"))
    elif net.labels.get(LABEL_SYSTEM) != desired.system:
        plan.changes.append(
            Change(
                "network",
                desired.network,
                "conflict",
                f"network {desired.network} exists but is not part of {desired.system}",
            )
        )
    else:
        plan.changes.append(Change("network", desired.network, "ok"))

    for vname in desired.volumes:
        vol = engine.volume(vname)
        if vol is None:
            plan.changes.append(Change("volume", vname, "create", "missing"))
        elif vol.labels.get(LABEL_SYSTEM) != desired.system:
            plan.changes.append(
                Change(
                    "volume",
                    vname,
                    "conflict",
                    f"volume {vname} exists but was not created by cdb-ops for {desired.system}",
                )
            )
        else:
            plan.changes.append(Change("volume", vname, "ok"))

    all_containers = engine.containers(detail=False)  # one API call, whatever else runs on this host
    by_name = {c.name: c for c in all_containers}
    selected = [desired.services[n] for n in (services or desired.services)]
    for svc in selected:
        choice = choose_image(engine, svc, no_cache)
        if choice.action == "ok":
            plan.changes.append(Change("image", choice.ref, "ok", choice.reason, svc.name))
        else:
            plan.changes.append(Change("image", choice.ref, choice.action, choice.reason, svc.name))
        actual = by_name.get(svc.container.name)
        change = container_change(desired, svc, actual, choice, net.id if net else None)
        plan.changes.append(change)
        if check_ports and change.action in ("create", "recreate", "start"):
            plan.changes.extend(port_conflicts(desired, svc, all_containers, info.local))

    desired_names = {s.container.name for s in desired.services.values()}
    for c in all_containers:
        if c.labels.get(LABEL_SYSTEM) != desired.system or c.name in desired_names:
            continue
        if REPLACED_MARK in c.name:
            plan.changes.append(
                Change(
                    "container",
                    c.name,
                    "remove",
                    "left over from an interrupted recreate",
                    c.labels.get(LABEL_SERVICE),
                )
            )
        elif services is None:
            svc_name = c.labels.get(LABEL_SERVICE)
            why = (
                f"service {svc_name} is not in the selected profiles ({', '.join(desired.profiles)})"
                if svc_name in desired.stack.services
                else "not declared in the playbook"
            )
            plan.changes.append(Change("container", c.name, "remove" if remove_orphans else "orphan", why, svc_name))
    return plan
