"""Stopping a stack's containers in reverse dependency order and removing them — the one algorithm both
`down`s use: the cleanup phase (apply/phases/cleanup.py) and the quick `down` (cli/down_plain.py), which
hand it an engine, the containers and the stack's dependencies. Light imports only (the quick path
must not load the playbook models or docker-py)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, InvalidStateError, ThreadPoolExecutor, wait
from dataclasses import dataclass
from graphlib import TopologicalSorter
from typing import TYPE_CHECKING, Any, Protocol

from cdb_ops.errors import CdbError

if TYPE_CHECKING:
    from cdb_ops.engine.api import ExitWatch
    from cdb_ops.model.facts import ContainerFacts

STOP_GRACE_SECONDS = 10  # SIGTERM, then Docker's SIGKILL after this long


@dataclass(frozen=True)
class Doomed:
    """A container to stop and remove: its name, its service (None: a leftover of no service) and whether
    it was running when the run looked."""

    name: str
    service: str | None
    running: bool


class StopEngine(Protocol):
    """What stopping and removing needs of an engine (`DockerEngine` and the socket engine have it)."""

    def stop(self, name: str, timeout: int = 10) -> None: ...
    def container(self, name: str) -> ContainerFacts | None: ...
    def remove_container(self, name: str) -> None: ...
    def watch_exits(self, label: str) -> ExitWatch: ...


Removed = Callable[[Doomed, "int | None", float], None]  # (container, its exit code or None, seconds)


def stop_and_remove(
    engine: StopEngine,
    label: str,
    doomed: list[Doomed],
    depends_on: Mapping[str, Collection[str]],
    removed: Removed,
) -> None:
    """Stop and remove in reverse dependency order — a container is stopped only once every container
    that depends on it has exited (the services before Redis and Postgres, so they finish in-flight work
    against a live database) — and everything whose dependents have exited at once, in parallel.
    `depends_on`: each service of the stack and the services it depends on; `label`: the stack's system
    label (whose exits are watched); `removed` is called, in the caller's thread, as each one is gone.

    "Exited" is the engine's `die` event: the process is gone, so nothing it does needs its dependencies
    any more. A `docker stop` returns ~0.1 s later, after Docker has also torn down the container's
    network and mounts; waiting for that between two levels is what made `down` slow. Should the event
    stream fail, the stop's return releases the level as before."""
    by_service = {c.service: c for c in doomed if c.service in depends_on}
    graph: dict[str, set[str]] = {c.name: set() for c in doomed}
    for c in doomed:
        if c.service not in by_service:
            continue  # a leftover or a container of no declared service: nothing waits for it
        for other in by_service.values():
            if c.service in depends_on[str(other.service)]:
                graph[c.name].add(other.name)  # `other` depends on it: `other` goes first
    sorter = TopologicalSorter(graph)
    sorter.prepare()
    named = {c.name: c for c in doomed}
    started: dict[str, float] = {}
    exited: dict[str, Future[int]] = {}  # resolved by the exit watch once we asked the container to stop
    released: set[str] = set()

    def release(name: str) -> None:
        if name not in released:
            released.add(name)
            sorter.done(name)

    with ThreadPoolExecutor(max_workers=16, thread_name_prefix="cdb-stop") as pool:
        try:
            watch: ExitWatch | None = engine.watch_exits(label)
        except CdbError:
            watch = None  # no event stream: each stop's return releases its level
        try:
            if watch is not None:
                pool.submit(_relay_exits, watch, exited)
            stopping: dict[Future[int | None], str] = {}
            removing: dict[Future[None], str] = {}
            exits: dict[str, int | None] = {}
            while sorter.is_active() or stopping or removing:
                for name in sorted(sorter.get_ready()) if sorter.is_active() else ():
                    started[name] = time.monotonic()
                    exited[name] = Future()
                    stopping[pool.submit(_stop, engine, named[name])] = name
                awaiting_exit = {f: n for n, f in exited.items() if n not in released}
                running: list[Future[Any]] = [*stopping, *removing, *awaiting_exit]
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    if future in awaiting_exit:
                        release(awaiting_exit[future])  # exited: what it depends on may stop now
                        continue
                    code = future.result()  # an engine error ends the run here, like a sequential stop
                    if future in stopping:
                        # stopped (and its network torn down): remove it; release its level if no exit
                        # event came first
                        name = stopping.pop(future)
                        exits[name] = code
                        release(name)
                        removing[pool.submit(engine.remove_container, name)] = name
                    elif future in removing:
                        name = removing.pop(future)
                        removed(named[name], exits.get(name), time.monotonic() - started[name])
        finally:
            if watch is not None:
                watch.close()  # ends the relay, so the pool can finish


def _relay_exits(watch: ExitWatch, exited: dict[str, Future[int]]) -> None:
    """Resolve each container's exit future as its exit is reported. Only containers we have asked to
    stop have one: an exit of any other (a crash in a restart loop) releases nothing."""
    for event in watch:
        future = exited.get(event.name)
        if future is not None and not future.done():
            with contextlib.suppress(InvalidStateError):  # (resolved from two events at once)
                future.set_result(event.exit_code)


def _stop(engine: StopEngine, c: Doomed) -> int | None:
    """A clean stop (SIGTERM, then Docker's kill after 10 s): a SIGKILLed Postgres needs crash recovery
    on its next start, and the services lose the chance to flush. The exit code it stopped with (None:
    it was not running), so the step says whether the stop was graceful."""
    if not c.running:
        return None
    engine.stop(c.name, timeout=STOP_GRACE_SECONDS)
    after = engine.container(c.name)
    return after.exit_code if after is not None else None


def how_it_stopped(code: int | None) -> str:
    if code is None:
        return "was not running"
    if code == 0:
        return "stopped cleanly (exit 0)"
    if code == 137:
        return f"killed (exit 137: it did not stop within {STOP_GRACE_SECONDS} s of SIGTERM)"
    return f"stopped with exit code {code}"
