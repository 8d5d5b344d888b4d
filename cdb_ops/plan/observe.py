"""Observe: one snapshot of the engine and the host for a desired stack — one list call per kind
(containers, networks, volumes, host ports) and one inspect per wanted image, all at once, and nothing
else, so the planner needs no engine."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from functools import partial

from cdb_ops.engine.api import EngineFacts
from cdb_ops.load.desired import DesiredStack
from cdb_ops.model.observed import ImageFacts, NetworkFacts, ObservedStack
from cdb_ops.plan.hostports import host_listeners


def wanted_image_refs(desired: DesiredStack) -> list[str]:
    refs: list[str] = []
    for svc in desired.services.values():
        refs.append(svc.image.ref)
        if svc.image.fallback and svc.image.fallback.tag:
            refs.append(svc.image.fallback.tag)
    return refs


def read_images(engine: EngineFacts, refs: list[str]) -> dict[str, ImageFacts]:
    """Each reference -> the image it names, asked of the engine by name (`docker image inspect REF`,
    so the engine resolves short names and digests itself). Not the list endpoint: its cost grows with
    every image on the engine (0.25 s with the ~270 images, mostly untagged old builds, of a machine
    that rebuilt for a while), an inspect's does not (~10 ms); the few inspects run concurrently."""
    unique = list(dict.fromkeys(refs))
    if len(unique) > 1:
        with ThreadPoolExecutor(max_workers=min(8, len(unique)), thread_name_prefix="cdb-image") as pool:
            found = list(pool.map(engine.image, unique))
    else:
        found = [engine.image(r) for r in unique]
    return {ref: img for ref, img in zip(unique, found, strict=True) if img is not None}


def observe(engine: EngineFacts, desired: DesiredStack, host_ports: bool = True, images: bool = True) -> ObservedStack:
    """The engine as it is now, its list calls made concurrently (each is a round trip to the engine).
    `host_ports`: also read which host sockets are held (for port conflicts; only meaningful when the
    engine runs on this host). `images`: also inspect the images the stack wants — a run that only
    removes things (`down`) has no use for them."""
    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="cdb-observe") as pool:
        asked_info = pool.submit(engine.info)
        # every container: foreign ones hold ports too
        asked_containers = pool.submit(engine.containers, detail=False)
        asked_networks = pool.submit(engine.networks)
        asked_volumes = pool.submit(engine.volumes)
        images_found = read_images(engine, wanted_image_refs(desired)) if images else {}
        info = asked_info.result()
        containers = {c.name: c for c in asked_containers.result()}
        found_networks, found_volumes = asked_networks.result(), asked_volumes.result()
    networks: dict[str, NetworkFacts] = {}
    for n in found_networks:
        # attached = an active endpoint, as `docker network inspect` counts them: running or paused
        members = tuple(
            sorted(c.name for c in containers.values() if n.name in c.networks and c.state in ("running", "paused"))
        )
        networks[n.name] = NetworkFacts(n.id, n.name, n.driver, n.labels, members or n.containers)
    volumes = {v.name: v for v in found_volumes}
    wanted = [p for s in desired.services.values() for p in s.container.ports]
    listeners = partial(host_listeners, wanted) if host_ports and info.local else None
    return ObservedStack(info, containers, networks, volumes, images_found, listeners)
