"""Phase `cleanup`: carry out the plan's removals — never anything without the system label.

The planner decides what goes: always containers left over from an interrupted recreate; with --clean
every container of the stack and its network (data volumes stay); with --remove-orphans stack containers
the playbook no longer selects; with --wipe-data (confirmed by the CLI first) containers and data
volumes, after the verified backups this phase makes first (apply/archive.py: the databases are
stopped before their volumes are archived). Foreign containers are never touched; the preflight
reports them as conflicts."""

from __future__ import annotations

import contextlib
import time
from concurrent.futures import FIRST_COMPLETED, Future, InvalidStateError, ThreadPoolExecutor, wait
from graphlib import TopologicalSorter
from typing import Any

from cdb_ops.apply.context import PhaseContext
from cdb_ops.apply.rotate import remember_password
from cdb_ops.engine.api import ExitWatch
from cdb_ops.errors import CdbError, ConfigError, StepFailed
from cdb_ops.load.endpoints import postgres_service
from cdb_ops.load.specs import PhaseSpec
from cdb_ops.model.labels import LABEL_VOLUME_ID, recorded_parts
from cdb_ops.model.plan import Change
from cdb_ops.plan.planner import BACKED_UP_FIRST


def run(ctx: PhaseContext, phase: PhaseSpec) -> None:
    d = ctx.desired
    removals = ctx.plan.removals
    containers = sorted((c for c in removals if c.resource == "container"), key=lambda c: c.name)
    volumes = [c for c in removals if c.resource == "volume" and c.action == "remove"]
    data = [c for c in volumes if c.reason.endswith(f"({BACKED_UP_FIRST})")]  # scratch volumes hold nothing
    if data:
        _back_up(ctx, phase, data)
    for change in containers:
        if change.action == "orphan":
            ctx.record(phase.name, "container", change.name, "orphan", f"{change.reason}; kept (use --remove-orphans)")
    doomed = [c for c in containers if c.action == "remove"]
    _remove_in_dependency_order(ctx, phase, doomed)
    removed_any = bool(doomed)
    for change in volumes:
        ctx.engine.remove_volume(change.name)
        remember_password(ctx.project, change.name, "", None)
        ctx.record(phase.name, "volume", change.name, "remove", change.reason)
        removed_any = True
    for note in ctx.plan.notes:
        ctx.progress.note(note)
    for change in removals:
        if change.resource == "network" and change.action == "remove":
            ctx.engine.remove_network(change.name)
            ctx.record(phase.name, "network", change.name, "remove", change.reason)
            removed_any = True
    if not removed_any and not any(s.phase == phase.name for s in ctx.steps):
        ctx.record(phase.name, "stack", d.system, "ok", "nothing to clean up")


def _back_up(ctx: PhaseContext, phase: PhaseSpec, volumes: list[Change]) -> None:
    """--wipe-data: verified backups first (a pg_dump of the running database, then the stack stopped
    and every data volume archived from its stopped state); when any backup fails nothing is removed."""
    from cdb_ops.apply.archive import backup_before_delete

    try:
        made = backup_before_delete(
            ctx.engine, ctx.desired, ctx.settings, ctx.project, ctx.redact, [v.name for v in volumes]
        )
    except CdbError as exc:
        raise StepFailed(f"backup before --wipe-data failed, so nothing was wiped: {exc.message}", exc.remedy) from None
    for b in made:
        ctx.record(phase.name, "backup", b.path.name, "backup", b.describe(), b.seconds)


def _remove_in_dependency_order(ctx: PhaseContext, phase: PhaseSpec, changes: list[Change]) -> None:
    """Stop and remove in reverse dependency order — a container is stopped only once every container
    that depends on it has exited (the services before Redis and Postgres, so they finish in-flight work
    against a live database) — and everything whose dependents have exited at once, in parallel.

    "Exited" is the engine's `die` event: the process is gone, so nothing it does needs its dependencies
    any more. A `docker stop` returns ~0.1 s later, after Docker has also torn down the container's
    network and mounts; waiting for that between two levels is what made `down` slow. Should the event
    stream fail, the stop's return releases the level as before."""
    by_service = {c.service: c for c in changes if c.service in ctx.desired.stack.services}
    graph: dict[str, set[str]] = {c.name: set() for c in changes}
    for change in changes:
        if change.service not in by_service:
            continue  # a leftover or a container of no declared service: nothing waits for it
        for other in by_service.values():
            if change.service in ctx.desired.stack.services[str(other.service)].depends_on:
                graph[change.name].add(other.name)  # `other` depends on it: `other` goes first
    sorter = TopologicalSorter(graph)
    sorter.prepare()
    named = {c.name: c for c in changes}
    started: dict[str, float] = {}
    exited: dict[str, Future[int]] = {}  # resolved by the exit watch once we asked the container to stop
    released: set[str] = set()

    def release(name: str) -> None:
        if name not in released:
            released.add(name)
            sorter.done(name)

    with ThreadPoolExecutor(max_workers=16, thread_name_prefix="cdb-stop") as pool:
        try:
            watch: ExitWatch | None = ctx.engine.watch_exits(ctx.desired.system_label)
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
                    stopping[pool.submit(_stop, ctx, name)] = name
                awaiting_exit = {f: n for n, f in exited.items() if n not in released}
                running: list[Future[Any]] = [*stopping, *removing, *awaiting_exit]
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    if future in awaiting_exit:
                        release(awaiting_exit[future])  # exited: what it depends on may stop now
                        continue
                    code = future.result()  # an engine error ends the phase here, like a sequential stop
                    if future in stopping:
                        # stopped (and its network torn down): remove it; release its level if no exit
                        # event came first
                        name = stopping.pop(future)
                        exits[name] = code
                        release(name)
                        removing[pool.submit(ctx.engine.remove_container, name)] = name
                    elif future in removing:
                        change = named[removing.pop(future)]
                        _remember_password(ctx, change)
                        took = time.monotonic() - started[change.name]
                        detail = f"{change.reason}; {_how_it_stopped(exits.get(change.name))}"
                        ctx.record(phase.name, "container", change.name, "remove", detail, took, change.service)
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


def _remember_password(ctx: PhaseContext, removed: Change) -> None:
    """The Postgres container is gone: record what its data volume's password was set from, so the next
    run that creates it anew (after `down`, `--clean`) need not set the password again (0.6 s of every
    cold start). An interrupted rotation means it is not known: forgotten instead."""
    try:
        service = postgres_service(ctx.desired)
    except ConfigError:
        return
    svc = ctx.desired.services.get(service)
    facts = ctx.observed.containers.get(removed.name)
    if svc is None or removed.service != service or facts is None:
        return
    volume = svc.data_volume
    vfacts = ctx.observed.volumes.get(volume) if volume else None
    if volume is None or vfacts is None:
        return
    parts = recorded_parts(facts.labels)
    known = bool(parts) and service not in ctx.plan_options.pending_rotations
    remember_password(ctx.project, volume, vfacts.labels.get(LABEL_VOLUME_ID, ""), parts if known else None)


def _stop(ctx: PhaseContext, name: str) -> int | None:
    """A clean stop (SIGTERM, then Docker's kill after 10 s): a SIGKILLed Postgres needs crash recovery
    on its next start, and the services lose the chance to flush. The exit code it stopped with (None:
    it was not running), so the step says whether the stop was graceful."""
    facts = ctx.observed.containers.get(name)
    if facts is None or not facts.running:
        return None
    ctx.engine.stop(name, timeout=10)
    after = ctx.engine.container(name)
    return after.exit_code if after is not None else None


def _how_it_stopped(code: int | None) -> str:
    if code is None:
        return "was not running"
    if code == 0:
        return "stopped cleanly (exit 0)"
    if code == 137:
        return "killed (exit 137: it did not stop within 10 s of SIGTERM)"
    return f"stopped with exit code {code}"
