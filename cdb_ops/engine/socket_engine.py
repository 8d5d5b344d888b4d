"""The quick `down`'s engine: what stopping and removing a stack needs (apply/stopping.py's `StopEngine`,
the stack's network and a volume's labels), over a local engine's Unix socket with the standard library,
like the socket reader `status` uses — no docker-py, requests or urllib3 to import.

It reports every failure as `LeanUnavailable` and never translates it for the user: the quick `down`
then hands over to the full command, which does the rest of the work and reports whatever is still wrong
the one way (engine/docker_base.py's `translate`)."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

from cdb_ops.engine.mapping import inspect_facts
from cdb_ops.engine.socket_reader import LeanUnavailable, SocketReader, http_request
from cdb_ops.model.facts import ContainerExit, ContainerFacts

# `POST /containers/x/stop?t=10` answers once the container is gone: up to the grace period plus Docker's
# teardown of its network and mounts, which is slow when a dozen containers stop at once on a small machine
STOP_REPLY_SECONDS = 60.0


class SocketEngine(SocketReader):
    def _call(self, method: str, url: str, ok: tuple[int, ...], timeout: float | None = None) -> tuple[int, bytes]:
        try:
            status, body = http_request(self._path, method, url, timeout or self._timeout)
        except (OSError, ValueError, IndexError) as exc:
            raise LeanUnavailable(f"{method} {url}: {exc}") from None
        if status not in ok:
            raise LeanUnavailable(f"{method} {url}: HTTP {status} {body[:300]!r}")
        return status, body

    def container(self, name: str) -> ContainerFacts | None:
        status, body = self._call("GET", f"/containers/{quote(name)}/json", (200, 404))
        return inspect_facts(json.loads(body)) if status == 200 else None

    def stop(self, name: str, timeout: int = 10) -> None:
        # 304: it had stopped already; 404: it is gone — both are what a stop wants
        self._call("POST", f"/containers/{quote(name)}/stop?t={timeout}", (204, 304, 404), timeout + STOP_REPLY_SECONDS)

    def remove_container(self, name: str) -> None:
        self._call("DELETE", f"/containers/{quote(name)}?force=1", (204, 404), STOP_REPLY_SECONDS)

    def network(self, name: str) -> dict[str, Any] | None:
        """The network's inspect document (with its members), None when there is none by that name."""
        status, body = self._call("GET", f"/networks/{quote(name)}", (200, 404))
        doc: dict[str, Any] | None = json.loads(body) if status == 200 else None
        return doc if doc and doc.get("Name") == name else None  # (the engine also matches id prefixes)

    def remove_network(self, name: str) -> None:
        self._call("DELETE", f"/networks/{quote(name)}", (204, 404), STOP_REPLY_SECONDS)

    def volume_labels(self, name: str) -> dict[str, str] | None:
        status, body = self._call("GET", f"/volumes/{quote(name)}", (200, 404))
        return (json.loads(body).get("Labels") or {}) if status == 200 else None

    def watch_exits(self, label: str) -> SocketExits:
        """Subscribed once this returns (the engine sends the reply's head at once), so no exit after it
        is missed."""
        filters = quote(json.dumps({"type": ["container"], "event": ["die"], "label": [label]}))
        return SocketExits(self._path, f"/events?filters={filters}", self._timeout)


class SocketExits:
    """`ExitWatch` over `GET /events` on the socket: one JSON object per line of a chunked reply, read
    until `close()` shuts the socket (from any thread, which ends a read blocked in another)."""

    def __init__(self, path: str, url: str, timeout: float) -> None:
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._closed = threading.Event()
        try:
            self._sock.settimeout(timeout)
            self._sock.connect(path)
            self._sock.sendall(f"GET {url} HTTP/1.1\r\nHost: docker\r\n\r\n".encode())
            head = b""
            while b"\r\n\r\n" not in head:
                data = self._sock.recv(4096)
                if not data:
                    raise LeanUnavailable("the engine closed the event stream")
                head += data
            status_line, _, self._rest = head.partition(b"\r\n\r\n")
            if b" 200 " not in status_line.split(b"\r\n")[0] + b" ":
                raise LeanUnavailable(f"/events: {status_line.splitlines()[0]!r}")
            self._sock.settimeout(None)  # events come when they come: close() ends the wait
        except (OSError, ValueError) as exc:
            self._sock.close()
            raise LeanUnavailable(f"/events: {exc}") from None
        except LeanUnavailable:
            self._sock.close()
            raise

    def __iter__(self) -> Iterator[ContainerExit]:
        buffer = self._rest
        try:
            while not self._closed.is_set():
                # whole chunks only: a chunk's size line, its bytes, CRLF; one event is one or more chunks
                body, buffer = _complete_chunks(buffer)
                for line in body.splitlines():
                    event = json.loads(line)
                    attrs = (event.get("Actor") or {}).get("Attributes") or {}
                    code = str(attrs.get("exitCode", ""))
                    yield ContainerExit(str(attrs.get("name", "")), int(code) if code.lstrip("-").isdigit() else -1)
                data = self._sock.recv(65536)
                if not data:
                    return
                buffer += data
        except (OSError, ValueError):
            return  # closed, or the engine went: whoever waits falls back to the stop's own return

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()


def _complete_chunks(buffer: bytes) -> tuple[bytes, bytes]:
    """The data of the complete chunks at the start of `buffer`, and what is left of it."""
    out: list[bytes] = []
    i = 0
    while True:
        j = buffer.find(b"\r\n", i)
        if j < 0:
            break
        size = int(buffer[i:j].split(b";")[0], 16)
        end = j + 2 + size + 2
        if len(buffer) < end:
            break
        out.append(buffer[j + 2 : j + 2 + size])
        i = end
    return b"".join(out), buffer[i:]


__all__ = ["LeanUnavailable", "SocketEngine", "SocketExits"]
