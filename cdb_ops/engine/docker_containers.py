"""docker-py implementation, containers: list, inspect, create, start/stop, logs, stats, exec, copies."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests

from cdb_ops.engine.cgroups import cgroup_sample
from cdb_ops.engine.docker_base import DockerBase, translate
from cdb_ops.engine.mapping import api_stats, inspect_facts, summary_facts
from cdb_ops.errors import CdbError, StepFailed
from cdb_ops.model.facts import ContainerExit, ContainerFacts, ContainerStats
from cdb_ops.model.labels import LABEL_TASK
from cdb_ops.model.resources import ContainerSpec, MountBinding


def _since(t: datetime | None) -> float | None:
    """`since` for Docker's log endpoint with its fraction of a second: docker-py cuts a datetime to whole
    seconds, which would bring back lines from just before `t` (a crash right before the restart)."""
    return t.timestamp() if t is not None else None


def _ns(seconds: float) -> int:
    return int(seconds * 1_000_000_000)


class ContainersMixin(DockerBase):
    def containers(self, label: str | None = None, detail: bool = True) -> list[ContainerFacts]:
        """All containers (with `label`: only those). Without `detail`, from the list endpoint alone —
        one call instead of one inspect per container, but no start time, restart count or health log."""
        if detail:
            # the inspects all at once over a local engine's socket (one per container in turn through
            # docker-py was most of a no-op rebuild's observation); a remote engine, or anything the socket
            # cannot answer, docker-py below answers or reports
            from cdb_ops.engine.socket_reader import LeanUnavailable, SocketReader, local_socket

            path = local_socket()
            if path is not None:
                with contextlib.suppress(LeanUnavailable):
                    return SocketReader(path, timeout=self._timeout, cpu=False).containers(label)
        with translate():
            filters = {"label": label} if label else None
            summaries = self._api.containers(all=True, filters=filters)
            if not detail:
                return [summary_facts(s) for s in summaries]
            out = []
            for s in summaries:
                with contextlib.suppress(docker.errors.NotFound):  # removed between list and inspect
                    out.append(inspect_facts(self._api.inspect_container(s["Id"])))
            return out

    def watch_exits(self, label: str) -> _ExitEvents:
        """Subscribed once this returns (the engine answers the events request at once), so no exit after
        it is missed."""
        with translate():
            stream = self._api.events(filters={"type": "container", "event": "die", "label": label}, decode=True)
        return _ExitEvents(stream)

    def container(self, name: str) -> ContainerFacts | None:
        with translate():
            try:
                return inspect_facts(self._api.inspect_container(name))
            except docker.errors.NotFound:
                return None

    def create_container(self, spec: ContainerSpec) -> str:
        api = self._api
        with translate():
            port_bindings = {f"{p.container}/{p.protocol}": (p.bind, p.host) for p in spec.ports}
            mounts = [docker.types.Mount(m.target, m.source, type=m.kind, read_only=m.read_only) for m in spec.mounts]
            restart = {"Name": spec.restart} if spec.restart != "no" else None
            hard = spec.hardening
            log = spec.logging
            host_config = api.create_host_config(
                port_bindings=port_bindings or None,
                mounts=mounts or None,
                restart_policy=restart,
                mem_limit=spec.mem_limit,
                network_mode=spec.network,
                init=True,  # reap zombies and forward SIGTERM even when the entrypoint is a shell
                log_config=docker.types.LogConfig(type=log.driver, config=dict(log.options)) if log else None,
                cap_drop=list(hard.cap_drop) or None if hard else None,
                cap_add=list(hard.cap_add) or None if hard else None,
                security_opt=list(hard.security_opt) or None if hard else None,
                read_only=hard.read_only or None if hard else None,
                tmpfs=dict(hard.tmpfs) or None if hard else None,
                pids_limit=hard.pids_limit if hard else None,
            )
            networking = None
            if spec.network:
                networking = api.create_networking_config(
                    {spec.network: api.create_endpoint_config(aliases=list(spec.aliases) or None)}
                )
            hc = None
            if spec.healthcheck:
                h = spec.healthcheck
                hc = {
                    "test": list(h.test),
                    "interval": _ns(h.interval),
                    "timeout": _ns(h.timeout),
                    "retries": h.retries,
                    "start_period": _ns(h.start_period),
                }
            created = api.create_container(
                image=spec.image,
                command=list(spec.command) if spec.command else None,
                name=spec.name,
                hostname=spec.hostname,
                user=spec.user,
                environment=spec.env or None,
                labels=spec.labels,
                ports=[(p.container, p.protocol) for p in spec.ports] or None,
                host_config=host_config,
                networking_config=networking,
                healthcheck=hc,
                use_config_proxy=False,  # keep the env exactly what the playbook says (it is hashed)
            )
            return str(created["Id"])

    def start(self, name: str) -> None:
        with translate():
            self._api.start(name)

    def stop(self, name: str, timeout: int = 10) -> None:
        with translate():
            self._api.stop(name, timeout=timeout)

    def remove_container(self, name: str) -> None:
        with translate(), contextlib.suppress(docker.errors.NotFound):
            self._api.remove_container(name, force=True)

    def rename(self, name: str, new_name: str) -> None:
        with translate():
            self._api.rename(name, new_name)

    def logs(self, name: str, tail: int = 50, since: datetime | None = None, timestamps: bool = False) -> str:
        with translate():
            try:
                raw = self._api.logs(
                    name, stdout=True, stderr=True, tail=tail, since=_since(since), timestamps=timestamps
                )
            except docker.errors.NotFound:
                return ""
        return raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else str(raw)

    def follow_logs(self, name: str, since: datetime | None = None) -> Iterator[str]:
        """New log lines (with Docker's timestamp prefix) as they are written, until the container stops."""
        with translate():
            stream = self._api.logs(
                name,
                stdout=True,
                stderr=True,
                stream=True,
                follow=True,
                since=_since(since),
                timestamps=True,
                tail=0 if since is None else "all",
            )
        buf = b""
        for chunk in stream:
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                yield line.decode("utf-8", errors="replace")

    def stats(self, name: str) -> ContainerStats:
        with translate():
            s = self._api.stats(name, stream=False, one_shot=True)
        return api_stats(s)

    def stats_many(self, ids: list[str], cpu: bool = True) -> dict[str, ContainerStats]:
        """Memory and CPU of running containers (by full id). Docker 20.10's stats endpoint takes ~1 s
        per call even with one-shot, so on a local engine we read the containers' cgroups directly
        (what the engine itself reads) over one short window, and ask the API only where that fails."""
        out: dict[str, ContainerStats] = {}
        window = 0.1
        first = {cid: cgroup_sample(cid) for cid in ids} if self._local else {}
        if cpu and any(v is not None for v in first.values()):
            time.sleep(window)
        for cid in ids:
            a = first.get(cid)
            b = (cgroup_sample(cid) if cpu else a) if a is not None else None
            if a is not None and b is not None:
                pct = max(0.0, (b.cpu_ns - a.cpu_ns) / (b.at - a.at) / 1e9 * 100.0) if cpu else None
                out[cid] = ContainerStats(b.memory, pct)
        missing = [cid for cid in ids if cid not in out]
        if missing:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=min(16, len(missing))) as pool:
                for cid, st in zip(missing, pool.map(self._stats_or_none, missing), strict=True):
                    if st is not None:
                        out[cid] = st
        return out

    def _stats_or_none(self, cid: str) -> ContainerStats | None:
        try:
            return self.stats(cid)
        except CdbError:
            return None

    def exec(self, name: str, cmd: list[str]) -> tuple[int, str]:
        with translate():
            ex = self._api.exec_create(name, cmd, stdout=True, stderr=True)
            out = self._api.exec_start(ex["Id"])
            code = self._api.exec_inspect(ex["Id"]).get("ExitCode", -1)
        return int(code if code is not None else -1), out.decode("utf-8", errors="replace")

    def copy_out(self, name: str, path: str, dest: Path) -> int:
        """Copy one file out of a container (running or stopped) to `dest`; returns its size."""
        import tarfile
        import tempfile

        with translate():
            try:
                chunks, _ = self._api.get_archive(name, path)
            except docker.errors.NotFound:
                raise StepFailed(f"{path} not found in {name}", "see the command's output above") from None
            with tempfile.TemporaryFile() as tmp:
                for chunk in chunks:
                    tmp.write(chunk)
                tmp.seek(0)
                with tarfile.open(fileobj=tmp) as tar:
                    member = tar.next()
                    if member is None or not member.isfile():
                        raise StepFailed(f"{path} in {name} is not a file", "")
                    src = tar.extractfile(member)
                    assert src is not None
                    size = 0
                    with open(dest, "wb") as out:
                        while block := src.read(1 << 20):
                            out.write(block)
                            size += len(block)
        return size

    def copy_in(self, name: str, src: Path, directory: str, filename: str) -> None:
        """Put a host file into a container's `directory` as `filename` (readable by every user), owned by
        the numeric user the container runs as: a non-root process (Postgres as 70:70) can then remove it
        from a sticky /tmp, which it could not for a file of root's."""
        import tarfile
        import tempfile

        with translate():
            user = str((self._api.inspect_container(name).get("Config") or {}).get("User") or "")
        uid, _, gid = user.partition(":")
        owner = (int(uid), int(gid) if gid.isdigit() else int(uid)) if uid.isdigit() else (0, 0)
        with tempfile.TemporaryFile() as tmp:
            with tarfile.open(fileobj=tmp, mode="w") as tar:
                info = tar.gettarinfo(str(src), arcname=filename)
                info.mode, info.uname, info.gname = 0o644, "", ""
                info.uid, info.gid = owner
                with open(src, "rb") as f:
                    tar.addfile(info, f)
            tmp.seek(0)
            with translate():
                self._api.put_archive(name, directory, tmp.read())

    def run_once(
        self,
        image: str,
        cmd: list[str],
        mounts: list[MountBinding],
        keep: bool = False,
        network: str = "none",
        timeout: float = 3600,
    ) -> tuple[int, str, str]:
        """Run a throwaway container to completion: (exit code, its output, its id). With `keep` the
        caller removes it (to copy files out of it first). No network unless one is named; a container
        still running after `timeout` seconds is killed (exit code -1)."""
        with translate():
            host_config = self._api.create_host_config(
                mounts=[docker.types.Mount(m.target, m.source, type=m.kind, read_only=m.read_only) for m in mounts],
                network_mode=network,
            )
            c = self._api.create_container(
                image=image,
                command=cmd,
                host_config=host_config,
                user="0:0",
                entrypoint=[],
                labels={LABEL_TASK: "true"},
            )
            cid = str(c["Id"])
            try:
                self._api.start(cid)
                try:
                    code = int(self._api.wait(cid, timeout=timeout).get("StatusCode", -1))
                except requests.exceptions.ReadTimeout:  # docker-py's wait gave up
                    self._api.kill(cid)
                    code = -1
                out = self._api.logs(cid, stdout=True, stderr=True).decode("utf-8", errors="replace")
            finally:
                if not keep:
                    self._api.remove_container(cid, force=True)
        return code, out, cid


class _ExitEvents:
    """`ExitWatch` over the engine's event stream (docker-py's CancellableStream: `close()` shuts its
    socket, which ends a read blocked in another thread)."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def __iter__(self) -> Iterator[ContainerExit]:
        try:
            for event in self._stream:
                attrs = (event.get("Actor") or {}).get("Attributes") or {}
                code = attrs.get("exitCode", "")
                yield ContainerExit(str(attrs.get("name", "")), int(code) if str(code).lstrip("-").isdigit() else -1)
        except Exception:  # noqa: BLE001 - closed or the engine went: whoever waits falls back to what it asked
            return

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._stream.close()
