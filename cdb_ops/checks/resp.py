"""Redis' wire protocol (RESP2), just enough for the readiness probe and validate: AUTH, PING, INFO.

Why not redis-py here: since 6.x its `import redis` imports redis.asyncio and its parsers — 0.13–0.23 s
on this machine, more than the whole Postgres check — and validate (every no-op rebuild ends with it)
needs three commands. The commands that do more with Redis (a drain's XPENDING, a flatten's XADD) keep
redis-py. Redis' own `redis-cli ping` is what the image's health check runs; this is the same question
asked from the host."""

from __future__ import annotations

import socket
from typing import Any


class RedisError(Exception):
    """Redis answered with an error (its message, e.g. `WRONGPASS …`), or closed or garbled the reply.
    Redis never echoes an AUTH argument, so the message holds no password."""


def _read(f: Any) -> Any:
    line = f.readline(65536)
    if not line.endswith(b"\r\n"):
        raise RedisError("the connection closed before Redis answered")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode("utf-8", "replace")
    if kind == b"-":
        raise RedisError(rest.decode("utf-8", "replace"))
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)
        if len(data) != n + 2:
            raise RedisError("the connection closed in the middle of Redis' answer")
        return data[:-2]
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_read(f) for _ in range(n)]
    raise RedisError(f"not a Redis answer (starts with {line[:16]!r})")


def _encode(*args: str) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        data = a.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


class RedisConnection:
    """One connection, authenticated (the default user, as `requirepass` sets it), used for a few commands
    and closed: `with RedisConnection(host, port, password, timeout) as r: r.command("PING")`."""

    def __init__(self, host: str, port: int, password: str | None, timeout: float) -> None:
        self._where = f"{host}:{port}"
        try:
            self._sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as exc:
            raise RedisError(f"cannot connect to Redis at {self._where}: {exc.strerror or exc}") from None
        self._file = self._sock.makefile("rb")
        try:
            if password:
                self.command("AUTH", password)
        except BaseException:
            self.close()
            raise

    def command(self, *args: str) -> Any:
        try:
            self._sock.sendall(_encode(*args))
            return _read(self._file)
        except OSError as exc:  # a timeout or a reset mid-command
            raise RedisError(f"Redis at {self._where} did not answer {args[0]}: {exc.strerror or exc}") from None

    def close(self) -> None:
        self._file.close()
        self._sock.close()

    def __enter__(self) -> RedisConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def info_fields(text: bytes) -> dict[str, str]:
    """INFO's `key:value` lines (sections and comments skipped)."""
    out = {}
    for line in text.decode("utf-8", "replace").splitlines():
        key, sep, value = line.partition(":")
        if sep and not line.startswith("#"):
            out[key] = value
    return out
