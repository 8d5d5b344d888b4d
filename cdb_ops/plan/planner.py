"""The planner: desired stack + observed stack -> Plan, a pure function (no engine call, no socket).

`plan` prints the plan; `rebuild` carries out the same plan phase by phase, and plans again (observing
anew) only where the world has changed under it — after removals, and once images are built or pulled,
since only then are their ids known."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from cdb_ops.errors import ConfigError
from cdb_ops.load.desired import DesiredService, DesiredStack, config_parts, finalize
from cdb_ops.load.endpoints import postgres_service
from cdb_ops.model.facts import ContainerFacts
from cdb_ops.model.labels import (
    LABEL_BUILD_HASH,
    LABEL_DATA,
    LABEL_HASH,
    LABEL_PARTS,
    LABEL_SERVICE,
    LABEL_VOLUME_ID,
    PREVIOUS_MARK,
    REPLACED_MARK,
    owned,
    recorded_parts,
)
from cdb_ops.model.observed import ObservedStack
from cdb_ops.model.plan import Action, Change, ImageChoice, Plan
from cdb_ops.model.resources import ContainerSpec
from cdb_ops.plan.hostports import port_conflict


@dataclass(frozen=True)
class PlanOptions:
    remove_orphans: bool = False
    no_cache: bool = False
    clean: bool = False  # remove every container of the stack and its network first
    wipe_data: bool = False  # ... and its data volumes (after backups)
    requested_by: tuple[str, str] = ("--clean", "--wipe-data")  # the reasons shown: rebuild's flags, or `down`
    check_ports: bool = True
    obtained: frozenset[str] = frozenset()  # image refs pulled or built in this run (--no-cache is done for them)
    fresh_volumes: frozenset[str] = frozenset()  # volumes this run created (empty: nothing kept from before)
    pending_rotations: frozenset[str] = frozenset()  # services whose rotation an interrupted run left undone
    # data volume -> {"volume_id", "secrets", "env"}: the config parts of the Postgres container last removed
    # from it, recorded then (apply/rotate.py), so a container created anew knows the password it holds
    known_passwords: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


# why a wiped volume goes: data is backed up before; a scratch volume holds nothing to keep
BACKED_UP_FIRST = "backed up first"
SCRATCH = "scratch: nothing to keep"


def choose_image(svc: DesiredService, observed: ObservedStack, options: PlanOptions) -> ImageChoice:
    src = svc.image

    def rebuild(ref: str) -> bool:
        return options.no_cache and ref not in options.obtained

    if src.build:
        found = observed.images.get(src.ref)
        if found and found.labels.get(LABEL_BUILD_HASH) == src.build_hash and not rebuild(src.ref):
            return ImageChoice("ok", src.ref, found)
        why = "--no-cache" if options.no_cache and found else ("build context changed" if found else "not built yet")
        return ImageChoice("build", src.ref, None, why)
    official = observed.images.get(src.ref)
    if official:
        return ImageChoice("ok", src.ref, official)
    if src.fallback:
        assert src.fallback.tag
        fb = observed.images.get(src.fallback.tag)
        if fb and fb.labels.get(LABEL_BUILD_HASH) == src.build_hash and not rebuild(src.fallback.tag):
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
    want: ContainerSpec | None,
) -> Change:
    """`network_id`: the id of the stack's network now (None: it does not exist yet); `want`: the exact
    container to create (None while its image is not there yet)."""
    name = svc.container.name

    def change(action: Action, reason: str = "") -> Change:
        return Change("container", name, action, reason, svc.name)

    if actual is None:
        return change("create", "missing")
    if not owned(actual.labels, desired.system):
        return change(
            "conflict", f"a container named {name} exists but is not part of {desired.system} (no cdb.system label)"
        )
    if want is None:
        return change("recreate", f"image will be {'built' if image.action == 'build' else 'pulled'}")
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
    have = recorded_parts(actual.labels)
    want = json.loads(want_parts_json)
    changed = sorted(k for k in want if have.get(k) != want[k])
    if not have:
        return "config hash missing (created by an older cdb-ops or by hand)"
    return "changed: " + ", ".join(changed) if changed else "config hash changed"


def _image_ref(choice: ImageChoice) -> str:
    image = choice.image
    assert image is not None
    return image.tags[0] if image.tags else image.id[:19]


PG_SECRET = "POSTGRES_PASSWORD"


def _rotation(
    desired: DesiredStack, observed: ObservedStack, containers: dict[str, Change], options: PlanOptions
) -> Change | None:
    """Postgres reads its password only when it initialises an empty data directory; afterwards the
    volume keeps that one, whatever .env says. So when the Postgres container is (re)created onto a
    volume that already holds data, and its secret (or the role it names, in env) changed or is not
    known, the password is set in place. Decided from facts alone: the volume exists and was not made
    by this run, and the container's recorded config parts differ from the wanted ones (or are absent),
    or the project's state records the rotation as pending (an interrupted run)."""
    try:
        name = postgres_service(desired)
    except ConfigError:
        return None
    svc = desired.services.get(name)
    change = containers.get(name)
    pending = name in options.pending_rotations
    if svc is None or change is None or options.wipe_data:
        return None
    if change.action not in ("create", "recreate") and not (pending and change.action in ("ok", "start")):
        return None
    if PG_SECRET not in svc.spec.secrets:
        return None
    volume = svc.data_volume
    if volume is None or volume not in observed.volumes or volume in options.fresh_volumes:
        return None
    actual = observed.containers.get(svc.container.name)
    have = recorded_parts(actual.labels) if actual else {}
    want = config_parts(svc.container, svc.secret_files, svc.file_digests)
    if actual is None:
        known = options.known_passwords.get(volume)
        volume_id = observed.volumes[volume].labels.get(LABEL_VOLUME_ID)
        if known is not None and volume_id and known.get("volume_id") == volume_id:
            have = dict(known)  # what the container last removed from this very volume was created with
    changed = [k for k in ("secrets", "env") if have.get(k) != want[k]]
    if actual is None and not have:
        cause = "no container: the password the volume holds is not known"
    elif not have:
        cause = "the container records no config parts: the password the volume holds is not known"
    elif changed:
        cause = f"{PG_SECRET} changed" if changed == ["secrets"] else f"changed: {', '.join(changed)}"
    elif pending:
        cause = "an earlier run recreated the container but stopped before it set the password"
    else:
        return None
    role = svc.container.env.get("POSTGRES_USER", "postgres")
    return Change(
        "secret",
        PG_SECRET,
        "rotate",
        f"set the password of role {role} in place (ALTER ROLE) from {PG_SECRET}: the data volume {volume} "
        f"keeps the password it was initialised with ({cause})",
        name,
    )


# The roles that consume the order flow (cdb:signals -> risk -> cdb:orders -> execution): swapping one while
# orders are in flight could decide a signal under two configurations or leave an order to a consumer that
# is gone, so their swap is drained first (apply/drain.py).
DRAINED_ROLES = ("risk", "execution")


def drain_step(
    desired: DesiredStack, observed: ObservedStack, containers: Mapping[str, Change]
) -> tuple[Change, list[str]] | None:
    """The drain a run needs before it swaps a running risk manager or execution: the feed's book goes
    REDUCING, in-flight orders settle, the swap is stop-first, the book's state comes back afterwards. None
    when no running consumer of the order flow is recreated (a missing or stopped one consumes nothing)."""
    swapped = []
    for name, change in containers.items():
        svc = desired.services.get(name)
        if svc is None or svc.spec.role not in DRAINED_ROLES or change.action != "recreate":
            continue
        actual = observed.containers.get(svc.container.name)
        if actual is not None and actual.running:
            swapped.append((name, change.reason))
    if not swapped:
        return None
    why = "; ".join(f"{name} is recreated ({reason})" for name, reason in swapped)
    book = desired.feed or "live"
    reason = (
        f"{why}: book {book} goes REDUCING until no order is in flight, the swap is stop-first, "
        "then the book's state before the upgrade comes back"
    )
    return Change("book", book, "drain", reason, None), [n for n, _ in swapped]


def _removals(desired: DesiredStack, observed: ObservedStack, options: PlanOptions) -> list[Change]:
    """Which of our containers cleanup removes (or keeps, reported as orphans), and why."""
    out: list[Change] = []
    wanted = {s.container.name for s in desired.services.values()}
    for c in observed.containers.values():
        if not owned(c.labels, desired.system):
            continue
        service = c.labels.get(LABEL_SERVICE)
        if options.wipe_data:
            out.append(Change("container", c.name, "remove", options.requested_by[1], service))
        elif REPLACED_MARK in c.name:
            out.append(Change("container", c.name, "remove", "left over from an interrupted recreate", service))
        elif options.clean:
            out.append(Change("container", c.name, "remove", options.requested_by[0], service))
        elif c.name.endswith(PREVIOUS_MARK) and c.name[: -len(PREVIOUS_MARK)] in wanted:
            out.append(
                Change(
                    "container",
                    c.name,
                    "keep",
                    "the container the last upgrade replaced, for `cdb-ops rollback`",
                    service,
                )
            )
        elif c.name not in wanted:
            why = (
                f"service {service} is not in the selected profiles ({', '.join(desired.profiles)})"
                if service in desired.stack.services
                else "not declared in the playbook"
            )
            out.append(Change("container", c.name, "remove" if options.remove_orphans else "orphan", why, service))
    return out


def plan_stack(desired: DesiredStack, observed: ObservedStack, options: PlanOptions | None = None) -> Plan:
    """Every change `rebuild` would make, in the order the phases make them."""
    options = options or PlanOptions()
    plan = Plan()
    system = desired.system

    net = observed.networks.get(desired.network)
    if net is None:
        plan.network = Change("network", desired.network, "create", "missing")
    elif not owned(net.labels, system):
        plan.network = Change(
            "network", desired.network, "conflict", f"network {desired.network} exists but is not part of {system}"
        )
    else:
        plan.network = Change("network", desired.network, "ok")
    plan.changes.append(plan.network)

    for vname in desired.volumes:
        vol = observed.volumes.get(vname)
        if vol is None:
            change = Change("volume", vname, "create", "missing")
        elif not owned(vol.labels, system):
            change = Change(
                "volume", vname, "conflict", f"volume {vname} exists but was not created by cdb-ops for {system}"
            )
        else:
            change = Change("volume", vname, "ok")
        plan.volumes[vname] = change
        plan.changes.append(change)

    containers = list(observed.containers.values())
    for svc in desired.services.values():
        choice = choose_image(svc, observed, options)
        plan.images[svc.name] = choice
        plan.changes.append(Change("image", choice.ref, choice.action, choice.reason, svc.name))
        want = finalize(svc, choice.image.id, _image_ref(choice)) if choice.image is not None else None
        if want is not None:
            plan.specs[svc.name] = want
        change = container_change(
            desired, svc, observed.containers.get(svc.container.name), choice, net.id if net else None, want
        )
        plan.containers[svc.name] = change
        plan.changes.append(change)
        if options.check_ports and change.action in ("create", "recreate", "start"):
            for port in svc.container.ports:
                found = port_conflict(port, system, containers, observed.listeners)
                if found is not None:
                    plan.changes.append(Change("container", svc.container.name, "conflict", found[1], svc.name))

    rotation = _rotation(desired, observed, plan.containers, options)
    if rotation is not None and rotation.service:
        plan.rotations[rotation.service] = rotation
        plan.changes.append(rotation)

    drain = drain_step(desired, observed, plan.containers)
    if drain is not None:
        plan.drain, plan.drained_services = drain
        plan.changes.append(plan.drain)

    plan.removals = _removals(desired, observed, options)
    plan.changes.extend(plan.removals)
    if options.clean and net is not None and owned(net.labels, system):
        removed = {c.name for c in plan.removals if c.action == "remove"}
        others = [m for m in net.containers if m not in removed]
        if others:
            plan.notes.append(f"network {desired.network} still has members {', '.join(others)}; kept")
        else:
            removal = Change("network", desired.network, "remove", options.requested_by[0])
            plan.removals.append(removal)
            plan.changes.append(removal)
    if options.wipe_data:
        for vol in sorted(observed.volumes.values(), key=lambda v: v.name):  # the engine lists in no fixed order
            if not owned(vol.labels, system):
                continue
            if vol.labels.get(LABEL_DATA) == "true":
                removal = Change("volume", vol.name, "remove", f"{options.requested_by[1]} ({BACKED_UP_FIRST})")
            else:  # a scratch volume (`data: false`, e.g. Postgres' /tmp): nothing in it to keep, nothing left
                removal = Change("volume", vol.name, "remove", f"{options.requested_by[1]} ({SCRATCH})")
            plan.removals.append(removal)
            plan.changes.append(removal)
    return plan
