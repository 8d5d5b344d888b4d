"""Phase `services`: carry out the plan's container changes in dependency order, tiers in parallel (each
service of a tier changed, then probed, on its own), each tier ready before the next starts. The images
the services run are seen to first, then the stack is planned again (image ids are known only now); what
that plan says is done, nothing decided anew: a container is recreated only when the plan says its
config or image changed."""

from __future__ import annotations

import os
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from typing import TypeVar

from cdb_ops.apply.context import PhaseContext
from cdb_ops.apply.phases.images import obtain
from cdb_ops.apply.rotate import mark_pending, set_role_password
from cdb_ops.apply.secretfiles import write_secret_files
from cdb_ops.apply.upgrade import begin_drain
from cdb_ops.errors import CdbError, ForeignResource, StepFailed
from cdb_ops.load.desired import DesiredService
from cdb_ops.load.playbook import start_order
from cdb_ops.load.specs import PhaseSpec
from cdb_ops.model.labels import LABEL_HASH, REPLACED_MARK
from cdb_ops.model.plan import Change
from cdb_ops.model.resources import ContainerSpec
from cdb_ops.model.upgrade import Swap

T = TypeVar("T")


def _output_dirs(spec: ContainerSpec) -> None:
    """A project folder a service writes into (backups/) exists before its container, private (0700),
    and belongs to the container's user: the engine refuses a missing bind source, and one it made
    would belong to root. Run by root, cdb-ops hands the folder and what is in it to that user (the
    files it writes there later follow the folder's owner, cdb_common.backupfiles)."""
    for m in spec.mounts:
        if m.kind != "bind" or m.read_only:
            continue
        os.makedirs(m.source, mode=0o700, exist_ok=True)
        uid, _, gid = (spec.user or "").partition(":")
        if os.geteuid() != 0 or not uid.isdigit() or int(uid) == 0:
            continue
        owner = (int(uid), int(gid) if gid.isdigit() else int(uid))
        for path in [m.source, *(os.path.join(m.source, n) for n in os.listdir(m.source))]:
            st = os.lstat(path)
            if (st.st_uid, st.st_gid) != owner:
                os.lchown(path, *owner)


def _replace(ctx: PhaseContext, svc: DesiredService, spec: ContainerSpec) -> None:
    """Swap a container for a new one without ever leaving neither: the old one is stopped and set
    aside under another name, put back if the new one cannot even be created or started, and
    removed once the new one is ready (a failed wait keeps it, for the next cleanup or by hand)."""
    name = svc.container.name
    aside = f"{name}{REPLACED_MARK}{int(time.time())}"
    old = ctx.engine.container(name)
    ctx.engine.stop(name, timeout=10)
    ctx.engine.rename(name, aside)
    try:
        _output_dirs(spec)
        ctx.engine.create_container(spec)
        ctx.engine.start(name)
    except CdbError:
        ctx.engine.remove_container(name)
        ctx.engine.rename(aside, name)
        ctx.engine.start(name)
        raise
    ctx.set_aside[svc.name] = aside
    if old is not None and not is_database(svc):  # a database's data moved on with the new one: no way back
        ctx.upgrade.swaps.append(Swap(svc.name, name, aside, old.image_id, old.labels.get(LABEL_HASH, "")))


def is_database(svc: DesiredService) -> bool:
    """Postgres and Redis: what they hold moves on with the new container (a rotated password, an AOF
    rewritten), so the old one is not put back; every other service is (apply/upgrade.py)."""
    return svc.spec.ready is not None and svc.spec.ready.probe in ("postgres", "redis")


def converge_one(ctx: PhaseContext, svc: DesiredService, phase: str) -> str:
    """Carry out the plan's change for one container; returns the action taken."""
    change = ctx.plan.containers[svc.name]
    name = svc.container.name
    with ctx.timed() as took:
        if change.action == "conflict":
            raise ForeignResource(
                change.reason,
                f"rename or remove that container (`docker rm -f {name}`) "
                "after checking what it is; cdb-ops never touches containers it did not create",
            )
        if change.action in ("create", "recreate"):
            if svc.name in ctx.plan.rotations:  # so a run interrupted before the rotation is done plans it again
                mark_pending(ctx.project, svc.name)
            spec = ctx.plan.specs.get(svc.name)
            if spec is None:
                raise StepFailed(f"the image of {svc.name} is not there after the images were seen to", "run again")
            if change.action == "create":
                _output_dirs(spec)
                ctx.engine.create_container(spec)
                ctx.engine.start(name)
            else:
                _replace(ctx, svc, spec)
        elif change.action == "start":
            ctx.engine.start(name)
    ctx.record(phase, "container", name, change.action, change.reason, took(), svc.name)
    return change.action


def _put_back(ctx: PhaseContext, svc: DesiredService) -> bool:
    """Undo a recreate whose new container cannot serve (its role is not in the volume): the new one is
    stopped cleanly (it runs on the same data directory) and the old one started again under its name."""
    aside = ctx.set_aside.pop(svc.name, None)
    if aside is None:
        return False
    name = svc.container.name
    ctx.engine.stop(name, timeout=10)
    ctx.engine.remove_container(name)
    ctx.engine.rename(aside, name)
    ctx.engine.start(name)
    return True


def _rotate(ctx: PhaseContext, svc: DesiredService, phase: str, change: Change) -> None:
    """Carry out the plan's rotation: the container is started, its volume keeps an old password."""
    volume = svc.data_volume or ""
    with ctx.timed() as took:
        # Containers still holding the old password, which the plan recreates later in this run with the new
        # one, are stopped (gracefully) first: once it changes they could not log in again, and every try
        # would be a failed login in the database's log.
        holders = [
            ctx.desired.services[n].container.name
            for n, c in ctx.plan.containers.items()
            if n != svc.name
            and c.action == "recreate"
            and change.name in ctx.desired.services[n].spec.secrets
            and (f := ctx.observed.containers.get(ctx.desired.services[n].container.name)) is not None
            and f.running
        ]
        for name in holders:
            ctx.engine.stop(name, timeout=10)
        try:
            done = set_role_password(ctx.engine, svc.container.name, ctx.settings, volume, ctx.redact)
        except CdbError:
            if _put_back(ctx, svc):  # the old container and the volume agree again: nothing is pending
                mark_pending(ctx.project, svc.name, done=True)
            for name in holders:
                ctx.engine.start(name)
            raise
    left = mark_pending(ctx.project, svc.name, done=True)
    ctx.plan_options = replace(ctx.plan_options, pending_rotations=left)
    why = f"the data volume {volume} keeps the password it was initialised with"
    stopped = f"; stopped first, recreated later in this run with the new one: {', '.join(holders)}" if holders else ""
    ctx.record(phase, "secret", change.name, "rotate", f"{done}: {why}{stopped}", took(), svc.name)


def _ready(ctx: PhaseContext, svc: DesiredService, phase: str, action: str) -> None:
    rotation = ctx.plan.rotations.get(svc.name)
    if rotation is not None:
        _rotate(ctx, svc, phase, rotation)
    with ctx.timed() as took:
        facts = ctx.observed.containers.get(svc.container.name) if action == "ok" else None
        if facts is not None and facts.running and facts.health == "healthy":
            # untouched and Docker has seen it healthy: no need to probe it again (keeps a no-op fast)
            ctx.record(phase, "health", svc.container.name, "wait", "ready: docker says healthy", took(), svc.name)
            return
        result = ctx.waiter.wait(svc)
    ctx.record(phase, "health", svc.container.name, "wait", f"ready: {result.detail}", took(), svc.name)
    if any(s.service == svc.name for s in ctx.upgrade.swaps):
        return  # the replaced container stays until the run ends: validate may still send the run back to it
    aside = ctx.set_aside.pop(svc.name, None)
    if aside:
        ctx.engine.remove_container(aside)


def _collect(futures: list[Future[T]]) -> list[T]:
    """Wait for all, then raise the first failure (so no thread is left running behind our back)."""
    results: list[T] = []
    errors: list[BaseException] = []
    for f in futures:
        try:
            results.append(f.result())
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)
    if errors:
        raise errors[0]
    return results


def run(ctx: PhaseContext, phase: PhaseSpec) -> None:
    names = [n for n in (phase.services or list(ctx.desired.services)) if n in ctx.desired.services]
    obtained_any = False
    for name in list(names):
        got = obtain(ctx, ctx.desired.services[name], phase.name)
        if got is None:
            names.remove(name)
        obtained_any = obtained_any or bool(got)
    if obtained_any:
        ctx.replan()  # the images exist now: plan the containers with their ids
    # a service whose dependency was skipped cannot start either
    changed = True
    while changed:
        changed = False
        for name in list(names):
            missing = [d for d in ctx.desired.services[name].spec.depends_on if d in ctx.skipped]
            if missing:
                names.remove(name)
                ctx.skipped[name] = f"depends on {missing[0]}, which was skipped"
                ctx.record(
                    phase.name,
                    "container",
                    ctx.desired.services[name].container.name,
                    "skip",
                    ctx.skipped[name],
                    service=name,
                )
                changed = True
    written = write_secret_files(ctx.desired)
    if written:
        ctx.progress.note(f"secret files updated: {', '.join(written)}")
    # dependencies outside this phase were converged by an earlier phase; make sure they are there
    outside = sorted({d for n in names for d in ctx.desired.services[n].spec.depends_on if d not in names})
    for dep in outside:
        if ctx.desired.services[dep].container.name not in ctx.observed.containers:
            raise StepFailed(
                f"{dep} must run before {', '.join(names)}, but it does not exist",
                f"run the whole rebuild, or a phase that starts {dep} first",
            )
    # services an earlier phase of this run converged and saw ready are not visited again
    todo = [n for n in names if n not in ctx.ready]
    drained = [n for n in ctx.plan.drained_services if n in todo]
    if drained:  # the plan's drain: books REDUCING, nothing in flight, before any consumer of the flow stops
        begin_drain(ctx, phase.name, drained)
    for tier in start_order(ctx.desired.stack, todo):
        with ThreadPoolExecutor(max_workers=max(1, len(tier))) as pool:
            _collect([pool.submit(_converge_and_wait, ctx, ctx.desired.services[n], phase.name) for n in tier])
        ctx.ready.update(tier)


def _converge_and_wait(ctx: PhaseContext, svc: DesiredService, phase: str) -> None:
    """One service of a tier: its change, then its readiness — each service waits from its own start,
    not from the slowest create of its tier (four containers created at once take 0.7-1.5 s here)."""
    _ready(ctx, svc, phase, converge_one(ctx, svc, phase))
