"""Reads from a local engine straight off its Unix socket: the two reads `status` makes (one list call,
container, all at once) over the Unix socket with the standard library — no docker-py, requests or
urllib3 to import. Anything it cannot do (a remote engine, an error) is left to `DockerEngine`: the
caller falls back, so every error is still reported one way."""

from __future__ import annotations

import json
import os
import selectors
import socket
import time
from typing import Any
from urllib.parse import quote

from cdb_ops.engine.cgroups import CgroupSample, cgroup_sample
from cdb_ops.engine.mapping import inspect_facts
from cdb_ops.model.facts import ContainerFacts, ContainerStats

_DEFAULT_SOCKET = "/var/run/docker.sock"
# CPU is a rate: two cgroup readings this far apart at least (the inspects run in between)
MIN_CPU_WINDOW = 0.03
# A reading an earlier `status` left is the window's start when it is at most this old: CPU over the seconds
# since then (a steadier figure than 30 ms), and no waiting for a window (the 30 ms were most of the time
# `status` takes once its start-up is cheap).
EARLIER_SAMPLE_SECONDS = 10.0


class LeanUnavailable(Exception):
    """The socket reader cannot answer; use `DockerEngine` (which reports the real problem, if any)."""


def local_socket() -> str | None:
    host = os.environ.get("DOCKER_HOST", "")
    path = host[len("unix://") :] if host.startswith("unix://") else (_DEFAULT_SOCKET if not host else None)
    return path if path and os.path.exists(path) else None


Address = str | tuple[str, int]  # a Unix socket's path, or a TCP (host, port)


def http_get(address: Address, url: str, timeout: float) -> tuple[int, bytes]:
    """One `GET` of `url` (a path); (status, body). From the engine's socket, or from a plain-HTTP endpoint
    on TCP, e.g. a stack service's /health on its published port (what `status` asks beside the engine)."""
    return _http_many(address, [url], timeout)[0]


def http_request(address: Address, method: str, url: str, timeout: float) -> tuple[int, bytes]:
    """One request without a body (`POST /containers/x/stop`, `DELETE /networks/x`); (status, body)."""
    return _http_many(address, [url], timeout, method)[0]


def _http_many(path: Address, urls: list[str], timeout: float, method: str = "GET") -> list[tuple[int, bytes]]:
    """`GET`s over the Unix socket (or TCP), all in flight at once on one connection each (HTTP/1.1 with
    `Connection: close`), the replies read as they come with a selector; (status, body) per URL, in order.
    Plain sockets: http.client would import the email package, a fifth of this path's start-up; no
    threads: starting a pool of them for the inspects cost more than the inspects."""
    host = path[0] if isinstance(path, tuple) else "docker"
    deadline = time.monotonic() + timeout
    selector = selectors.DefaultSelector()
    socks: list[socket.socket] = []
    replies: list[list[bytes]] = [[] for _ in urls]
    try:
        for i, url in enumerate(urls):
            if isinstance(path, tuple):
                sock = socket.create_connection(path, timeout=timeout)
            else:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(timeout)
                sock.connect(path)
            socks.append(sock)
            length = "" if method == "GET" else "Content-Length: 0\r\n"
            sock.sendall(f"{method} {url} HTTP/1.1\r\nHost: {host}\r\n{length}Connection: close\r\n\r\n".encode())
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ, i)
        open_ = len(urls)
        while open_:
            left = deadline - time.monotonic()
            events = selector.select(left) if left > 0 else []
            if not events:
                raise TimeoutError(f"no reply from the engine within {timeout:g} s")
            for key, _mask in events:
                conn = key.fileobj
                assert isinstance(conn, socket.socket)
                data = conn.recv(65536)
                if data:
                    replies[key.data].append(data)
                else:
                    selector.unregister(conn)
                    open_ -= 1
    finally:
        selector.close()
        for sock in socks:
            sock.close()
    return [_response(b"".join(chunks)) for chunks in replies]


def _response(raw: bytes) -> tuple[int, bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = _dechunk(body)
    return status, body


def _dechunk(body: bytes) -> bytes:
    out: list[bytes] = []
    i = 0
    while True:
        j = body.index(b"\r\n", i)
        size = int(body[i:j].split(b";")[0], 16)
        if size == 0:
            return b"".join(out)
        out.append(body[j + 2 : j + 2 + size])
        i = j + 2 + size + 2


class SocketReader:
    """`containers()` and `stats_many()` of `EngineFacts`, for a local engine, read-only."""

    def __init__(
        self, path: str, timeout: float = 10.0, earlier: dict[str, CgroupSample] | None = None, cpu: bool = True
    ) -> None:
        self._path, self._timeout, self._cpu = path, timeout, cpu  # cpu: take the first cgroup reading on list
        self._first: dict[str, CgroupSample | None] = {}
        self._first_at = 0.0
        self._earlier = earlier or {}  # readings of an earlier run (cgroups.load_samples)
        self.latest: dict[str, CgroupSample] = {}  # this run's last readings, for the next run

    def _get(self, url: str) -> Any:
        try:
            status, body = http_get(self._path, url, self._timeout)
        except (OSError, ValueError, IndexError) as exc:
            raise LeanUnavailable(str(exc)) from None
        if status != 200:
            raise LeanUnavailable(f"{url}: HTTP {status}")
        return json.loads(body)

    def containers(self, label: str | None = None, detail: bool = True) -> list[ContainerFacts]:
        url = "/containers/json?all=1"
        if label:
            url += "&filters=" + quote(json.dumps({"label": [label]}))
        summaries = self._get(url)
        ids = [s["Id"] for s in summaries]
        # the first cgroup reading now, so the CPU window overlaps the inspects instead of being waited for
        if self._cpu:
            self._first = {s["Id"]: cgroup_sample(s["Id"]) for s in summaries if s.get("State") == "running"}
        self._first_at = time.monotonic()
        if not detail:
            from cdb_ops.engine.mapping import summary_facts

            return [summary_facts(s) for s in summaries]
        if not ids:
            return []
        try:
            replies = _http_many(self._path, [f"/containers/{cid}/json" for cid in ids], self._timeout)
        except (OSError, ValueError, IndexError) as exc:
            raise LeanUnavailable(str(exc)) from None
        # a container removed between list and inspect (404) is left out, like DockerEngine does
        return [inspect_facts(json.loads(body)) for status, body in replies if status == 200]

    def stats_many(self, ids: list[str], cpu: bool = True) -> dict[str, ContainerStats]:
        """From the cgroups only; what they do not answer is left out (`status` shows '-')."""
        first = {cid: self._first.get(cid) or cgroup_sample(cid) for cid in ids}
        read = {cid: v for cid, v in first.items() if v is not None}
        earlier = {cid: self._earlier.get(cid) for cid in read}
        pairs: dict[str, tuple[CgroupSample | None, CgroupSample | None]]
        if cpu and read and all(_window_start(e, b) for e, b in zip(earlier.values(), read.values(), strict=True)):
            pairs = {cid: (earlier[cid], b) for cid, b in read.items()}
        else:
            if cpu and read:
                wait = MIN_CPU_WINDOW - (time.monotonic() - self._first_at)
                if wait > 0:
                    time.sleep(wait)
            pairs = {cid: (a, (cgroup_sample(cid) if cpu else a)) for cid, a in read.items()}
        out: dict[str, ContainerStats] = {}
        for cid, (a, b) in pairs.items():
            if a is not None and b is not None:
                pct = max(0.0, (b.cpu_ns - a.cpu_ns) / (b.at - a.at) / 1e9 * 100.0) if cpu and b.at > a.at else None
                out[cid] = ContainerStats(b.memory, pct)
                self.latest[cid] = b
        return out


def _window_start(earlier: CgroupSample | None, now: CgroupSample) -> bool:
    """Whether an earlier run's reading can start this run's CPU window: recent, not too recent, and of the
    same cgroup (a restarted container's counter starts again from 0)."""
    return (
        earlier is not None
        and MIN_CPU_WINDOW <= now.at - earlier.at <= EARLIER_SAMPLE_SECONDS
        and now.cpu_ns >= earlier.cpu_ns
    )
