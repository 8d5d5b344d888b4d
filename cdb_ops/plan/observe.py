"""Observe: one snapshot of the engine and the host for a desired stack — one list call per kind
(containers, networks, volumes, images, host ports) and nothing else, so the planner needs no engine."""

from __future__ import annotations

from cdb_ops.engine.api import EngineFacts
from cdb_ops.engine.mapping import normalize_ref
from cdb_ops.load.desired import DesiredStack
from cdb_ops.model.facts import ImageFacts, NetworkFacts, ObservedStack
from cdb_ops.plan.hostports import host_listeners


def wanted_image_refs(desired: DesiredStack) -> list[str]:
    refs: list[str] = []
    for svc in desired.services.values():
        refs.append(svc.image.ref)
        if svc.image.fallback and svc.image.fallback.tag:
            refs.append(svc.image.fallback.tag)
    return refs


def index_images(images: list[ImageFacts], refs: list[str]) -> dict[str, ImageFacts]:
    """Each reference -> the image it names, as `docker image inspect REF` would find it."""
    by_key: dict[str, ImageFacts] = {}
    for img in images:
        for key in (*img.tags, *img.digests):
            by_key.setdefault(normalize_ref(key), img)
        by_key.setdefault(img.id, img)
    out: dict[str, ImageFacts] = {}
    for ref in refs:
        found = by_key.get(ref) or by_key.get(normalize_ref(ref))
        if found is not None:
            out[ref] = found
    return out


def observe(engine: EngineFacts, desired: DesiredStack, host_ports: bool = True) -> ObservedStack:
    """The engine as it is now. `host_ports`: also read which host sockets are held (for port conflicts;
    only meaningful when the engine runs on this host)."""
    info = engine.info()
    containers = {c.name: c for c in engine.containers(detail=False)}  # every container: foreign ones hold ports too
    networks: dict[str, NetworkFacts] = {}
    for n in engine.networks():
        # attached = an active endpoint, as `docker network inspect` counts them: running or paused
        members = tuple(
            sorted(c.name for c in containers.values() if n.name in c.networks and c.state in ("running", "paused"))
        )
        networks[n.name] = NetworkFacts(n.id, n.name, n.driver, n.labels, members or n.containers)
    volumes = {v.name: v for v in engine.volumes()}
    images = index_images(engine.images(), wanted_image_refs(desired))
    listeners = None
    if host_ports and info.local:
        listeners = host_listeners(p for s in desired.services.values() for p in s.container.ports)
    return ObservedStack(info, containers, networks, volumes, images, listeners)
