"""An in-memory Engine for fast unit tests of the planner and phases (not a stand-in for the real
engine: integration tests use Docker itself). mypy checks it against the `Engine` protocol (.ci/run)."""

from __future__ import annotations

import hashlib
import itertools
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from cdb_ops.engine.api import Engine
from cdb_ops.errors import PullFailed, StepFailed
from cdb_ops.model.facts import ContainerExit, ContainerFacts, ContainerPosture, ContainerStats
from cdb_ops.model.observed import EngineInfo, ImageFacts, NetworkFacts, VolumeFacts
from cdb_ops.model.ports import PortBinding
from cdb_ops.model.resources import ContainerSpec, MountBinding

_ids = itertools.count(1)


def _id(prefix: str = "") -> str:
    return hashlib.sha256(f"{prefix}{next(_ids)}".encode()).hexdigest()


def _posture(spec: ContainerSpec) -> ContainerPosture:
    """What Docker's inspect reports for a container created from `spec` (json-file, uncapped, and root
    without a user: the engine's defaults)."""
    h, log = spec.hardening, spec.logging
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    return ContainerPosture(
        user=spec.user or "",
        cap_drop=h.cap_drop if h else (),
        cap_add=h.cap_add if h else (),
        security_opt=h.security_opt if h else (),
        read_only=h.read_only if h else False,
        tmpfs=tuple(sorted(h.tmpfs)) if h else (),
        pids_limit=(h.pids_limit or 0) if h else 0,
        memory=int(spec.mem_limit[:-1]) * units[spec.mem_limit[-1]] if spec.mem_limit else 0,
        log_driver=log.driver if log else "json-file",
        log_options=dict(log.options) if log else {},
    )


@dataclass
class FakeEngine:
    pullable: set[str] = field(default_factory=set)
    images_: dict[str, ImageFacts] = field(default_factory=dict)
    containers_: dict[str, ContainerFacts] = field(default_factory=dict)
    networks_: dict[str, NetworkFacts] = field(default_factory=dict)
    volumes_: dict[str, VolumeFacts] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)
    local: bool = False
    # container -> the exit code its stop ends with (default 0: SIGTERM honoured); 137 plays a service
    # that ignored SIGTERM until Docker's kill
    stop_exit_codes: dict[str, int] = field(default_factory=dict)
    # container -> what its stop does after the process exited and before the stop returns (Docker tears
    # down the container's network and mounts in between)
    after_exit: dict[str, Callable[[], None]] = field(default_factory=dict)
    watches: list[FakeExitWatch] = field(default_factory=list)

    def info(self) -> EngineInfo:
        return EngineInfo("fake", "1.41", self.local)

    # -- containers
    def containers(self, label: str | None = None, detail: bool = True) -> list[ContainerFacts]:
        out = list(self.containers_.values())
        if label:
            k, _, v = label.partition("=")
            out = [c for c in out if c.labels.get(k) == v]
        return out

    def container(self, name: str) -> ContainerFacts | None:
        return self.containers_.get(name)

    def add_container(
        self,
        name: str,
        labels: dict[str, str] | None = None,
        state: str = "running",
        ports: tuple[PortBinding, ...] = (),
        image_id: str = "sha256:foreign",
    ) -> ContainerFacts:
        c = ContainerFacts(
            _id(name), name, image_id, image_id, labels or {}, state, None, datetime.now(UTC), 0, 0, (), ports, ()
        )
        self.containers_[name] = c
        return c

    def create_container(self, spec: ContainerSpec) -> str:
        self.calls.append(("create", spec.name))
        assert spec.name not in self.containers_, f"name {spec.name} taken"
        net = self.networks_.get(spec.network or "")
        c = ContainerFacts(
            _id(spec.name),
            spec.name,
            spec.image,
            spec.image,
            dict(spec.labels),
            "created",
            None,
            None,
            0,
            0,
            (spec.network,) if spec.network else (),
            spec.ports,
            tuple(m.source for m in spec.mounts if m.kind == "volume"),
            network_ids=(net.id,) if net else (),
            posture=_posture(spec),
        )
        self.containers_[spec.name] = c
        return c.id

    def start(self, name: str) -> None:
        self.calls.append(("start", name))
        c = self.containers_[name]
        self.containers_[name] = replace(c, state="running", started_at=datetime.now(UTC))

    def stop(self, name: str, timeout: int = 10) -> None:
        self.calls.append(("stop", name))
        c = self.containers_[name] = replace(
            self.containers_[name], state="exited", exit_code=self.stop_exit_codes.get(name, 0)
        )
        for watch in self.watches:
            k, _, v = watch.label.partition("=")
            if c.labels.get(k) == v:
                watch.events.put(ContainerExit(name, c.exit_code or 0))
        if name in self.after_exit:
            self.after_exit[name]()

    def watch_exits(self, label: str) -> FakeExitWatch:
        watch = FakeExitWatch(label)
        self.watches.append(watch)
        return watch

    def remove_container(self, name: str) -> None:
        self.calls.append(("remove", name))
        self.containers_.pop(name, None)

    def rename(self, name: str, new_name: str) -> None:
        self.calls.append(("rename", f"{name}->{new_name}"))
        c = self.containers_.pop(name)
        self.containers_[new_name] = replace(c, name=new_name)

    logs_: dict[str, str] = field(default_factory=dict)

    def logs(self, name: str, tail: int = 50, since: datetime | None = None, timestamps: bool = False) -> str:
        return self.logs_.get(name, "")

    def follow_logs(self, name: str, since: datetime | None = None) -> Iterator[str]:
        yield from self.logs_.get(name, "").splitlines()

    def stats(self, name: str) -> ContainerStats:
        return ContainerStats(10 * 1024 * 1024, 1.0)

    def stats_many(self, ids: list[str], cpu: bool = True) -> dict[str, ContainerStats]:
        return {c.id: self.stats(c.name) for c in self.containers_.values() if c.id in ids}

    def exec(self, name: str, cmd: list[str]) -> tuple[int, str]:
        return 0, ""

    def copy_out(self, name: str, path: str, dest: Path) -> int:
        raise StepFailed(f"{path} not found in {name}", "the in-memory engine holds no files")

    def copy_in(self, name: str, src: Path, directory: str, filename: str) -> None:
        self.calls.append(("copy_in", f"{name}:{directory}/{filename}"))

    def run_once(
        self,
        image: str,
        cmd: list[str],
        mounts: list[MountBinding],
        keep: bool = False,
        network: str = "none",
        timeout: float = 3600,
    ) -> tuple[int, str, str]:
        self.calls.append(("run_once", image))
        return 0, "", _id("task")

    # -- networks
    def network(self, name: str) -> NetworkFacts | None:
        n = self.networks_.get(name)
        if n is None:
            return None
        members = tuple(sorted(c.name for c in self.containers_.values() if name in c.networks))
        return replace(n, containers=members)

    def networks(self, label: str | None = None) -> list[NetworkFacts]:
        k, _, v = (label or "").partition("=")
        # like Docker's list endpoint: no members
        return [replace(n, containers=()) for n in self.networks_.values() if label is None or n.labels.get(k) == v]

    def create_network(self, name: str, driver: str, labels: dict[str, str]) -> None:
        self.calls.append(("create_network", name))
        self.networks_[name] = NetworkFacts(_id(name), name, driver, dict(labels), ())

    def remove_network(self, name: str) -> None:
        self.calls.append(("remove_network", name))
        self.networks_.pop(name, None)

    # -- volumes
    def volume(self, name: str) -> VolumeFacts | None:
        return self.volumes_.get(name)

    def volumes(self, label: str | None = None) -> list[VolumeFacts]:
        k, _, v = (label or "").partition("=")
        return [x for x in self.volumes_.values() if label is None or x.labels.get(k) == v]

    def create_volume(self, name: str, labels: dict[str, str]) -> None:
        self.calls.append(("create_volume", name))
        self.volumes_[name] = VolumeFacts(name, dict(labels))

    def remove_volume(self, name: str) -> None:
        self.calls.append(("remove_volume", name))
        self.volumes_.pop(name, None)

    # -- images
    def image(self, ref: str) -> ImageFacts | None:
        return self.images_.get(ref)

    def pull(self, ref: str) -> ImageFacts:
        self.calls.append(("pull", ref))
        if ref not in self.pullable:
            raise PullFailed(f"cannot pull {ref}: no registry", "")
        img = ImageFacts("sha256:" + _id(ref), (ref,), {})
        self.images_[ref] = img
        return img

    def build(
        self,
        context: Path,
        dockerfile: str,
        tag: str,
        labels: dict[str, str],
        buildargs: dict[str, str],
        nocache: bool,
        on_line: Callable[[str], None] | None = None,
    ) -> ImageFacts:
        self.calls.append(("build", tag))
        img = ImageFacts("sha256:" + _id(tag), (tag,), dict(labels))
        self.images_[tag] = img
        return img

    def changing_calls(self) -> list[tuple[str, str]]:
        return list(self.calls)


@dataclass
class FakeExitWatch:
    label: str
    events: queue.Queue[ContainerExit | None] = field(default_factory=queue.Queue)
    closed: threading.Event = field(default_factory=threading.Event)

    def __iter__(self) -> Iterator[ContainerExit]:
        while (event := self.events.get()) is not None:
            yield event

    def close(self) -> None:
        self.closed.set()
        self.events.put(None)


def _conforms(engine: FakeEngine) -> Engine:
    return engine  # mypy: FakeEngine has every method of Engine, with the same signatures
