"""The few bytes client and server exchange over the Unix socket.

client -> server: one kind byte (`R` run, `I` info, `Q` quit); for `R` then a header with the file
descriptors (SCM_RIGHTS) and the payload's length, then the payload (JSON).
server -> client for `R`: `P` + the command's pid (it leads its process group), later its exit code;
or `X` when the server is stale (it has quit; run the command yourself)."""

from __future__ import annotations

import json
import socket
import struct
from typing import Any

RUN, INFO, QUIT = b"R", b"I", b"Q"
STARTED, STALE = b"P", b"X"
_HEADER = struct.Struct("!I")
_INT = struct.Struct("!i")


def send_run(sock: socket.socket, fds: list[int], payload: dict[str, Any]) -> None:
    body = json.dumps(payload).encode()
    socket.send_fds(sock, [RUN + _HEADER.pack(len(body))], fds)
    sock.sendall(body)


def recv_kind(sock: socket.socket) -> tuple[bytes, bytes, list[int]]:
    """The kind byte, whatever of a run's header came with it, and the descriptors. One recvmsg: the
    descriptors travel with the first byte, and a plain recv() would drop (close) them."""
    data, fds, _, _ = socket.recv_fds(sock, 1 + _HEADER.size, 3)
    return data[:1], data[1:], list(fds)


def recv_payload(sock: socket.socket, head: bytes) -> dict[str, Any]:
    head += recv_exact(sock, _HEADER.size - len(head))
    (length,) = _HEADER.unpack(head)
    payload: dict[str, Any] = json.loads(recv_exact(sock, length))
    return payload


def recv_exact(sock: socket.socket, n: int) -> bytes:
    chunks, got = [], 0
    while got < n:
        chunk = sock.recv(n - got)
        if not chunk:
            raise ConnectionError("the other side closed the connection")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def pack_int(value: int) -> bytes:
    return _INT.pack(value)


def recv_int(sock: socket.socket) -> int:
    return int(_INT.unpack(recv_exact(sock, _INT.size))[0])
