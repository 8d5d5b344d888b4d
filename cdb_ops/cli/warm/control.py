"""Asking this installation's warm server about itself, or to quit (`cdb-ops warm status|stop`)."""

from __future__ import annotations

import json
import socket
import time
from typing import Any

from cdb_ops.cli.warm import address, protocol


def _ask(kind: bytes, path: str | None = None) -> bytes | None:
    path = path or address.socket_path()
    if not address.private_dir(path, create=False):
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(5)
    try:
        sock.connect(path)
        sock.sendall(kind)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError:
        return None
    finally:
        sock.close()


def info(path: str | None = None) -> dict[str, Any] | None:
    """pid, socket, started_at, modules, source_files, commands_served, idle_timeout_seconds, rss_bytes;
    None when no server answers. `path`: another socket than this installation's."""
    reply = _ask(protocol.INFO, path)
    if not reply:
        return None
    found: dict[str, Any] = json.loads(reply)
    return found


def start(timeout: float = 60.0) -> dict[str, Any] | None:
    """The running server's info, starting one first if none answers; None when it did not come up
    within `timeout` (its log is next to the socket)."""
    found = info()
    if found is not None:
        return found
    from cdb_ops.cli.warm.client import start_server

    start_server(address.socket_path())
    deadline = time.monotonic() + timeout
    while (found := info()) is None and time.monotonic() < deadline:
        time.sleep(0.1)
    return found


def stop(path: str | None = None) -> dict[str, Any] | None:
    """The server's info as it quit; None when none was running. `path`: as for `info`."""
    found = info(path)
    if found is None or _ask(protocol.QUIT, path) != b"K":
        return None
    return found
