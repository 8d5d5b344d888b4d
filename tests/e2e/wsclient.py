"""A minimal websocket client (RFC 6455) on the standard library, for tests that must control what a
client does at the frame level: answer the server's pings or not, and read a feed as fast as it comes.

The websockets library always answers pings (by design, inside its protocol), so a client that breaks
the exchange's pong rule has to be written by hand; this is that client, and nothing more: text, ping,
pong and close frames, no extensions, no fragmentation on send.
"""

from __future__ import annotations

import base64
import contextlib
import os
import socket
import struct
import time
from dataclasses import dataclass

TEXT, BINARY, CLOSE, PING, PONG = 0x1, 0x2, 0x8, 0x9, 0xA


@dataclass
class Message:
    opcode: int
    payload: bytes


class WsClient:
    def __init__(self, host: str, port: int, path: str = "/ws", *, answer_pings: bool = True, timeout: float = 10.0):
        self.answer_pings = answer_pings
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        self.buffer = bytearray()
        self.pings: list[tuple[float, bytes]] = []  # (when, payload) of every ping the server sent
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, _, rest = bytes(self.buffer).partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            raise ConnectionError(f"no websocket upgrade: {head[:80]!r}")
        self.buffer = bytearray(rest)

    def _fill(self) -> None:
        chunk = self.sock.recv(1024 * 1024)
        if not chunk:
            raise ConnectionResetError("the server closed the TCP connection")
        self.buffer += chunk

    def _take(self, count: int) -> bytes:
        while len(self.buffer) < count:
            self._fill()
        out = bytes(self.buffer[:count])
        del self.buffer[:count]
        return out

    def _send(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        size = len(payload)
        if size < 126:
            head = struct.pack("!BB", 0x80 | opcode, 0x80 | size)
        elif size < 65536:
            head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, size)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, size)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(head + mask + masked)

    def recv(self) -> Message:
        """The next text/binary/close message; pings are recorded (and answered if `answer_pings`)."""
        while True:
            first, second = self._take(2)
            opcode, size = first & 0x0F, second & 0x7F
            if size == 126:
                (size,) = struct.unpack("!H", self._take(2))
            elif size == 127:
                (size,) = struct.unpack("!Q", self._take(8))
            payload = self._take(size)  # servers never mask
            if opcode == PING:
                self.pings.append((time.monotonic(), payload))
                if self.answer_pings:
                    self._send(PONG, payload)
                continue
            if opcode == PONG:
                continue
            return Message(opcode, payload)

    def pong(self, payload: bytes) -> None:
        self._send(PONG, payload)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._send(CLOSE, struct.pack("!H", 1000))
        self.sock.close()
