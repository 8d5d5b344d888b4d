"""The engine adapter: the only module that imports docker-py.

Everything above it speaks the small `Engine` protocol in plain dataclasses, so the planner and
phases are tested against an in-memory fake, and the real adapter against the real engine."""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import docker
import docker.errors
import requests.exceptions

from cdb_ops.errors import CdbError, EngineUnavailable, StepFailed

# ---------------------------------------------------------------------------------------------
# plain data: what we ask for (specs) and what the engine reports (facts)


@dataclass(frozen=True)
class PortBinding:
    bind: str
    host: int
    container: int
    protocol: str = "tcp"


@dataclass(frozen=True)
class MountBinding:
    kind: str  # "volume" | "bind"
    source: str
    target: str
    read_only: bool = False


@dataclass(frozen=True)
class Healthcheck:
    test: tuple[str, ...]
    interval: float
    timeout: float
    retries: int
    start_period: float


@dataclass(frozen=True)
class ContainerSpec:
    name: str
    image: str  # image id (sha256:...) or reference
    labels: dict[str, str]
    env: dict[str, str] = field(default_factory=dict)
    command: tuple[str, ...] | None = None
    ports: tuple[PortBinding, ...] = ()
    mounts: tuple[MountBinding, ...] = ()
    network: str | None = None
    aliases: tuple[str, ...] = ()
    healthcheck: Healthcheck | None = None
    restart: str = "unless-stopped"
    mem_limit: str | None = None
    user: str | None = None
    hostname: str | None = None


@dataclass(frozen=True)
class ContainerFacts:
    id: str
    name: str
    image_id: str
    image_ref: str
    labels: dict[str, str]
    state: str  # created | running | restarting | exited | paused | dead
    health: str | None  # starting | healthy | unhealthy | None (no health check)
    started_at: datetime | None
    restart_count: int
    exit_code: int
    networks: tuple[str, ...]
    ports: tuple[PortBinding, ...]
    volumes: tuple[str, ...]
    health_output: str = ""  # the last health check's output
    network_ids: tuple[str, ...] = ()

    @property
    def running(self) -> bool:
        return self.state == "running"


@dataclass(frozen=True)
class NetworkFacts:
    id: str
    name: str
    driver: str
    labels: dict[str, str]
    containers: tuple[str, ...]  # container names attached


@dataclass(frozen=True)
class VolumeFacts:
    name: str
    labels: dict[str, str]
    driver: str = "local"


@dataclass(frozen=True)
class ImageFacts:
    id: str
    tags: tuple[str, ...]
    labels: dict[str, str]
    size: int = 0


@dataclass(frozen=True)
class ContainerStats:
    memory_bytes: int
    memory_limit: int
    cpu_percent: float | None


@dataclass(frozen=True)
class EngineInfo:
    version: str
    api_version: str
    local: bool  # the engine runs on this host (so a port held here is held for it too)


class BuildFailed(StepFailed):
    kind = "build_failed"


class PullFailed(StepFailed):
    kind = "pull_failed"


class Engine(Protocol):
    """What cdb-ops needs from a container engine, and nothing more."""

    def info(self) -> EngineInfo: ...

    def containers(self, label: str | None = None, detail: bool = True) -> list[ContainerFacts]: ...
    def container(self, name: str) -> ContainerFacts | None: ...
    def create_container(self, spec: ContainerSpec) -> str: ...
    def start(self, name: str) -> None: ...
    def stop(self, name: str, timeout: int = 10) -> None: ...
    def remove_container(self, name: str) -> None: ...
    def rename(self, name: str, new_name: str) -> None: ...
    def logs(self, name: str, tail: int = 50, since: datetime | None = None, timestamps: bool = False) -> str: ...
    def follow_logs(self, name: str, since: datetime | None = None) -> Iterator[str]: ...
    def stats(self, name: str) -> ContainerStats: ...
    def stats_many(self, ids: list[str], cpu: bool = True) -> dict[str, ContainerStats]: ...
    def exec(self, name: str, cmd: list[str]) -> tuple[int, str]: ...
    def copy_out(self, name: str, path: str, dest: Path) -> int: ...
    def copy_in(self, name: str, src: Path, directory: str, filename: str) -> None: ...
    def run_once(
        self, image: str, cmd: list[str], mounts: list[MountBinding], keep: bool = False
    ) -> tuple[int, str, str]: ...

    def network(self, name: str) -> NetworkFacts | None: ...
    def networks(self, label: str) -> list[NetworkFacts]: ...
    def create_network(self, name: str, driver: str, labels: dict[str, str]) -> None: ...
    def remove_network(self, name: str) -> None: ...

    def volume(self, name: str) -> VolumeFacts | None: ...
    def volumes(self, label: str) -> list[VolumeFacts]: ...
    def create_volume(self, name: str, labels: dict[str, str]) -> None: ...
    def remove_volume(self, name: str) -> None: ...

    def image(self, ref: str) -> ImageFacts | None: ...
    def pull(self, ref: str) -> ImageFacts: ...
    def build(
        self,
        context: Path,
        dockerfile: str,
        tag: str,
        labels: dict[str, str],
        buildargs: dict[str, str],
        nocache: bool,
        on_line: Callable[[str], None] | None = None,
    ) -> ImageFacts: ...


# ---------------------------------------------------------------------------------------------
# the real adapter


def parse_docker_time(value: str | None) -> datetime | None:
    if not value or value.startswith("0001-"):
        return None
    # Docker reports nanoseconds; Python keeps microseconds.
    value = re.sub(r"(\.\d{6})\d+", r"\1", value).replace("Z", "+00:00")
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _since(t: datetime | None) -> float | None:
    """`since` for Docker's log endpoint with its fraction of a second: docker-py cuts a datetime to whole
    seconds, which would bring back lines from just before `t` (a crash right before the restart)."""
    return t.timestamp() if t is not None else None


def _ns(seconds: float) -> int:
    return int(seconds * 1_000_000_000)


@contextlib.contextmanager
def _translate() -> Iterator[None]:
    """docker-py's exceptions become CdbErrors the CLI knows how to show."""
    try:
        yield
    except CdbError:
        raise
    except (requests.exceptions.ConnectionError, docker.errors.DockerException) as exc:
        if isinstance(exc, docker.errors.APIError):
            raise StepFailed(
                f"Docker engine refused: {exc.explanation or exc}",
                "see the message; `cdb-ops doctor` may help",
            ) from None
        raise EngineUnavailable(f"Docker engine unreachable: {exc}", _ENGINE_REMEDY) from None


_ENGINE_REMEDY = (
    "start Docker (Docker Desktop, or `sudo systemctl start docker`, or `dockerd &`), "
    "or point DOCKER_HOST at a running engine; then check with `docker info`"
)


class DockerEngine:
    """`Engine` over docker-py's low-level APIClient (exact control over create options)."""

    def __init__(self, timeout: int = 120) -> None:
        try:
            self._client = docker.from_env(timeout=timeout)
            self._api = self._client.api
            self._api.ping()
        except (requests.exceptions.ConnectionError, docker.errors.DockerException) as exc:
            raise EngineUnavailable(f"Docker engine unreachable: {_short(exc)}", _ENGINE_REMEDY) from None
        host = os.environ.get("DOCKER_HOST", "")
        self._local = host == "" or host.startswith("unix://") or "127.0.0.1" in host or "localhost" in host

    # -- engine
    def info(self) -> EngineInfo:
        with _translate():
            v = self._api.version()
        return EngineInfo(v.get("Version", "?"), v.get("ApiVersion", "?"), self._local)

    # -- containers
    def containers(self, label: str | None = None, detail: bool = True) -> list[ContainerFacts]:
        """All containers (with `label`: only those). Without `detail`, from the list endpoint alone —
        one call instead of one inspect per container, but no start time, restart count or health log."""
        with _translate():
            filters = {"label": label} if label else None
            summaries = self._api.containers(all=True, filters=filters)
            if not detail:
                return [self._summary_facts(s) for s in summaries]
            out = []
            for s in summaries:
                with contextlib.suppress(docker.errors.NotFound):  # removed between list and inspect
                    out.append(self._facts(self._api.inspect_container(s["Id"])))
            return out

    @staticmethod
    def _summary_facts(s: dict[str, Any]) -> ContainerFacts:
        status = s.get("Status", "")
        health = next((h for h in ("unhealthy", "healthy") if f"({h})" in status), None)
        if "health: starting" in status:
            health = "starting"
        nets = (s.get("NetworkSettings") or {}).get("Networks") or {}
        ports = {
            PortBinding(p.get("IP") or "0.0.0.0", int(p["PublicPort"]), int(p["PrivatePort"]), p.get("Type", "tcp"))
            for p in s.get("Ports") or []
            if p.get("PublicPort")
        }
        return ContainerFacts(
            id=s["Id"],
            name=(s.get("Names") or ["/?"])[0].lstrip("/"),
            image_id=s.get("ImageID", ""),
            image_ref=s.get("Image", ""),
            labels=s.get("Labels") or {},
            state=s.get("State", "unknown"),
            health=health,
            started_at=None,
            restart_count=0,
            exit_code=0,
            networks=tuple(sorted(nets)),
            ports=tuple(sorted(ports, key=lambda p: (p.host, p.container, p.bind))),
            volumes=tuple(sorted(m["Name"] for m in s.get("Mounts") or [] if m.get("Type") == "volume")),
            network_ids=tuple(sorted(n.get("NetworkID", "") for n in nets.values())),
        )

    def container(self, name: str) -> ContainerFacts | None:
        with _translate():
            try:
                return self._facts(self._api.inspect_container(name))
            except docker.errors.NotFound:
                return None

    @staticmethod
    def _facts(c: dict[str, Any]) -> ContainerFacts:
        state = c.get("State", {})
        health = state.get("Health") or {}
        log = health.get("Log") or []
        ports: list[PortBinding] = []
        for key, binds in (c.get("HostConfig", {}).get("PortBindings") or {}).items():
            cport, _, proto = key.partition("/")
            for b in binds or []:
                if b.get("HostPort"):
                    ports.append(PortBinding(b.get("HostIp") or "0.0.0.0", int(b["HostPort"]), int(cport), proto))
        return ContainerFacts(
            id=c["Id"],
            name=c["Name"].lstrip("/"),
            image_id=c["Image"],
            image_ref=c.get("Config", {}).get("Image", ""),
            labels=c.get("Config", {}).get("Labels") or {},
            state=state.get("Status", "unknown"),
            health=health.get("Status"),
            started_at=parse_docker_time(state.get("StartedAt")),
            restart_count=int(c.get("RestartCount", 0)),
            exit_code=int(state.get("ExitCode", 0)),
            networks=tuple(sorted((c.get("NetworkSettings", {}).get("Networks") or {}).keys())),
            ports=tuple(sorted(ports, key=lambda p: (p.host, p.container))),
            volumes=tuple(sorted(m["Name"] for m in c.get("Mounts") or [] if m.get("Type") == "volume")),
            health_output=(log[-1].get("Output") or "").strip() if log else "",
            network_ids=tuple(
                sorted(n.get("NetworkID", "") for n in (c.get("NetworkSettings", {}).get("Networks") or {}).values())
            ),
        )

    def create_container(self, spec: ContainerSpec) -> str:
        api = self._api
        with _translate():
            port_bindings = {f"{p.container}/{p.protocol}": (p.bind, p.host) for p in spec.ports}
            mounts = [docker.types.Mount(m.target, m.source, type=m.kind, read_only=m.read_only) for m in spec.mounts]
            restart = {"Name": spec.restart} if spec.restart != "no" else None
            host_config = api.create_host_config(
                port_bindings=port_bindings or None,
                mounts=mounts or None,
                restart_policy=restart,
                mem_limit=spec.mem_limit,
                network_mode=spec.network,
                init=True,  # reap zombies and forward SIGTERM even when the entrypoint is a shell
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
        with _translate():
            self._api.start(name)

    def stop(self, name: str, timeout: int = 10) -> None:
        with _translate():
            self._api.stop(name, timeout=timeout)

    def remove_container(self, name: str) -> None:
        with _translate(), contextlib.suppress(docker.errors.NotFound):
            self._api.remove_container(name, force=True)

    def rename(self, name: str, new_name: str) -> None:
        with _translate():
            self._api.rename(name, new_name)

    def logs(self, name: str, tail: int = 50, since: datetime | None = None, timestamps: bool = False) -> str:
        with _translate():
            try:
                raw = self._api.logs(
                    name, stdout=True, stderr=True, tail=tail, since=_since(since), timestamps=timestamps
                )
            except docker.errors.NotFound:
                return ""
        return raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else str(raw)

    def follow_logs(self, name: str, since: datetime | None = None) -> Iterator[str]:
        """New log lines (with Docker's timestamp prefix) as they are written, until the container stops."""
        with _translate():
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
        with _translate():
            s = self._api.stats(name, stream=False, one_shot=True)
        mem = s.get("memory_stats") or {}
        usage = int(mem.get("usage", 0))
        # like `docker stats`: page cache that can be dropped is not the service's memory
        st = mem.get("stats") or {}
        usage -= int(st.get("inactive_file", st.get("total_inactive_file", 0)))
        cpu = None
        cs, ps = s.get("cpu_stats") or {}, s.get("precpu_stats") or {}
        try:
            delta = cs["cpu_usage"]["total_usage"] - ps["cpu_usage"]["total_usage"]
            sys_delta = cs["system_cpu_usage"] - ps["system_cpu_usage"]
            if sys_delta > 0:
                cpu = delta / sys_delta * int(cs.get("online_cpus", 1)) * 100.0
        except (KeyError, TypeError):
            pass
        return ContainerStats(max(usage, 0), int(mem.get("limit", 0)), cpu)

    def stats_many(self, ids: list[str], cpu: bool = True) -> dict[str, ContainerStats]:
        """Memory and CPU of running containers (by full id). Docker 20.10's stats endpoint takes ~1 s
        per call even with one-shot, so on a local engine we read the containers' cgroups directly
        (what the engine itself reads) over one short window, and ask the API only where that fails."""
        out: dict[str, ContainerStats] = {}
        window = 0.1
        first = {cid: _cgroup_sample(cid) for cid in ids} if self._local else {}
        if cpu and any(v is not None for v in first.values()):
            time.sleep(window)
        for cid in ids:
            a = first.get(cid)
            b = (_cgroup_sample(cid) if cpu else a) if a is not None else None
            if a is not None and b is not None:
                pct = max(0.0, (b.cpu_ns - a.cpu_ns) / (b.at - a.at) / 1e9 * 100.0) if cpu else None
                out[cid] = ContainerStats(b.memory, b.limit, pct)
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
        with _translate():
            ex = self._api.exec_create(name, cmd, stdout=True, stderr=True)
            out = self._api.exec_start(ex["Id"])
            code = self._api.exec_inspect(ex["Id"]).get("ExitCode", -1)
        return int(code if code is not None else -1), out.decode("utf-8", errors="replace")

    def copy_out(self, name: str, path: str, dest: Path) -> int:
        """Copy one file out of a container (running or stopped) to `dest`; returns its size."""
        import tarfile
        import tempfile

        with _translate():
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
        """Put a host file into a container's `directory` as `filename` (readable by every user)."""
        import tarfile
        import tempfile

        with tempfile.TemporaryFile() as tmp:
            with tarfile.open(fileobj=tmp, mode="w") as tar:
                info = tar.gettarinfo(str(src), arcname=filename)
                info.mode, info.uid, info.gid, info.uname, info.gname = 0o644, 0, 0, "root", "root"
                with open(src, "rb") as f:
                    tar.addfile(info, f)
            tmp.seek(0)
            with _translate():
                self._api.put_archive(name, directory, tmp.read())

    def run_once(
        self, image: str, cmd: list[str], mounts: list[MountBinding], keep: bool = False
    ) -> tuple[int, str, str]:
        """Run a throwaway container to completion: (exit code, its output, its id). With `keep` the
        caller removes it (to copy files out of it first)."""
        with _translate():
            host_config = self._api.create_host_config(
                mounts=[docker.types.Mount(m.target, m.source, type=m.kind, read_only=m.read_only) for m in mounts],
                network_mode="none",
            )
            c = self._api.create_container(
                image=image,
                command=cmd,
                host_config=host_config,
                user="0:0",
                entrypoint=[],
                labels={"cdb.ops.task": "true"},
            )
            cid = str(c["Id"])
            try:
                self._api.start(cid)
                code = int(self._api.wait(cid, timeout=3600).get("StatusCode", -1))
                out = self._api.logs(cid, stdout=True, stderr=True).decode("utf-8", errors="replace")
            finally:
                if not keep:
                    self._api.remove_container(cid, force=True)
        return code, out, cid

    # -- networks
    def network(self, name: str) -> NetworkFacts | None:
        with _translate():
            for n in self._api.networks(names=[name]):
                if n["Name"] == name:
                    full = self._api.inspect_network(n["Id"])
                    return NetworkFacts(
                        full["Id"],
                        full["Name"],
                        full.get("Driver", ""),
                        full.get("Labels") or {},
                        tuple(sorted(c["Name"] for c in (full.get("Containers") or {}).values())),
                    )
        return None

    def networks(self, label: str) -> list[NetworkFacts]:
        with _translate():
            names = [n["Name"] for n in self._api.networks(filters={"label": label})]
        return [n for n in (self.network(x) for x in names) if n is not None]

    def create_network(self, name: str, driver: str, labels: dict[str, str]) -> None:
        with _translate():
            self._api.create_network(name, driver=driver, labels=labels, check_duplicate=True)

    def remove_network(self, name: str) -> None:
        with _translate(), contextlib.suppress(docker.errors.NotFound):
            self._api.remove_network(name)

    # -- volumes
    def volume(self, name: str) -> VolumeFacts | None:
        with _translate():
            try:
                v = self._api.inspect_volume(name)
            except docker.errors.NotFound:
                return None
        return VolumeFacts(v["Name"], v.get("Labels") or {}, v.get("Driver", "local"))

    def volumes(self, label: str) -> list[VolumeFacts]:
        with _translate():
            found = self._api.volumes(filters={"label": label}).get("Volumes") or []
        return [VolumeFacts(v["Name"], v.get("Labels") or {}, v.get("Driver", "local")) for v in found]

    def create_volume(self, name: str, labels: dict[str, str]) -> None:
        with _translate():
            self._api.create_volume(name, labels=labels)

    def remove_volume(self, name: str) -> None:
        with _translate(), contextlib.suppress(docker.errors.NotFound):
            self._api.remove_volume(name)

    # -- images
    def image(self, ref: str) -> ImageFacts | None:
        with _translate():
            try:
                i = self._api.inspect_image(ref)
            except docker.errors.NotFound:
                return None
            except docker.errors.APIError as exc:
                if exc.status_code in (400, 404):  # an invalid reference is simply not here
                    return None
                raise
        return ImageFacts(
            i["Id"],
            tuple(i.get("RepoTags") or ()),
            (i.get("Config") or {}).get("Labels") or {},
            int(i.get("Size", 0)),
        )

    def pull(self, ref: str) -> ImageFacts:
        repo, _, tag = ref.rpartition(":") if ":" in ref.split("/")[-1] else (ref, "", "latest")
        try:
            self._api.pull(repo, tag=tag)
        except (requests.exceptions.RequestException, docker.errors.DockerException) as exc:
            why = exc.explanation if isinstance(exc, docker.errors.APIError) and exc.explanation else _short(exc)
            raise PullFailed(f"cannot pull {ref}: {_short(str(why))}", "check the network / registry login") from None
        found = self.image(ref)
        if found is None:
            raise PullFailed(f"pulled {ref} but the engine does not list it", "run `docker images`")
        return found

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
        lines: list[str] = []
        step = ""
        try:
            stream = self._api.build(
                path=str(context),
                dockerfile=dockerfile,
                tag=tag,
                labels=labels,
                buildargs=buildargs or None,
                nocache=nocache,
                rm=True,
                forcerm=True,
                decode=True,
            )
            for chunk in stream:
                if "error" in chunk:
                    raise BuildFailed(
                        f"build of {tag} failed at {step or 'the first step'}: {chunk['error'].strip()}",
                        f"run `cdb-ops rebuild --no-cache` (a stale cached layer is the usual cause), or fix "
                        f"{context / dockerfile}",
                        details={"step": step, "log_tail": lines[-20:]},
                    )
                text = chunk.get("stream") or chunk.get("status") or ""
                for line in text.splitlines():
                    if line.strip():
                        lines.append(line)
                        if line.startswith("Step "):
                            step = line.strip()
                        if on_line:
                            on_line(line)
        except (requests.exceptions.ConnectionError, docker.errors.DockerException) as exc:
            if isinstance(exc, docker.errors.APIError):
                raise BuildFailed(f"build of {tag} failed: {exc.explanation}", "check the Dockerfile") from None
            raise EngineUnavailable(f"Docker engine unreachable: {_short(exc)}", _ENGINE_REMEDY) from None
        found = self.image(tag)
        if found is None:
            raise BuildFailed(f"build of {tag} produced no image", "run the build by hand to see why")
        return found


@dataclass(frozen=True)
class _CgroupSample:
    at: float
    memory: int
    limit: int
    cpu_ns: int


_CGROUP = Path("/sys/fs/cgroup")


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return None if text == "max" else int(text)


def _memory_stat(path: Path, key: str) -> int:
    try:
        for line in path.read_text().splitlines():
            k, _, v = line.partition(" ")
            if k == key:
                return int(v)
    except OSError:
        pass
    return 0


def _cgroup_sample(cid: str) -> _CgroupSample | None:
    """One reading of a container's cgroup (v1 cgroupfs or v2, systemd or cgroupfs driver)."""
    now = time.monotonic()
    v1_mem = _CGROUP / "memory" / "docker" / cid
    if v1_mem.is_dir():
        usage = _read_int(v1_mem / "memory.usage_in_bytes")
        cpu = _read_int(_CGROUP / "cpuacct" / "docker" / cid / "cpuacct.usage")
        if usage is None or cpu is None:
            return None
        # like `docker stats`: page cache the kernel can drop is not the service's memory
        usage -= _memory_stat(v1_mem / "memory.stat", "total_inactive_file")
        limit = _read_int(v1_mem / "memory.limit_in_bytes") or 0
        return _CgroupSample(now, max(usage, 0), limit, cpu)
    for v2 in (_CGROUP / "system.slice" / f"docker-{cid}.scope", _CGROUP / "docker" / cid):
        if v2.is_dir():
            usage = _read_int(v2 / "memory.current")
            usec = _memory_stat(v2 / "cpu.stat", "usage_usec")
            if usage is None:
                return None
            usage -= _memory_stat(v2 / "memory.stat", "inactive_file")
            return _CgroupSample(now, max(usage, 0), _read_int(v2 / "memory.max") or 0, usec * 1000)
    return None


def _short(exc: BaseException | str) -> str:
    text = str(exc)
    return text if len(text) < 300 else text[:300] + "…"
