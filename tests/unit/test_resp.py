"""The Redis wire client of the readiness probe and validate, against a Redis speaking on a loopback
socket (a tiny server in a thread that answers what a real Redis answers)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from cdb_ops.checks.probes import RedisProbe
from cdb_ops.checks.resp import RedisConnection, RedisError, info_fields

PASSWORD = "s3cret-pw"
INFO = b"# Persistence\r\nloading:0\r\naof_enabled:1\r\n"


def _serve(server: socket.socket, password: str) -> None:
    while True:
        try:
            conn, _ = server.accept()
        except OSError:
            return
        with conn, conn.makefile("rb") as f:
            authed = not password
            while True:
                header = f.readline()
                if not header:
                    break
                args = []
                for _ in range(int(header[1:-2])):
                    n = int(f.readline()[1:-2])
                    args.append(f.read(n + 2)[:-2].decode())
                cmd = args[0].upper()
                if cmd == "AUTH":
                    authed = args[1] == password
                    conn.sendall(b"+OK\r\n" if authed else b"-WRONGPASS invalid username-password pair\r\n")
                elif not authed:
                    conn.sendall(b"-NOAUTH Authentication required.\r\n")
                elif cmd == "PING":
                    conn.sendall(b"+PONG\r\n")
                elif cmd == "INFO":
                    conn.sendall(b"$%d\r\n%s\r\n" % (len(INFO), INFO))
                elif cmd == "QUIT":
                    break
                else:
                    conn.sendall(b"-ERR unknown command\r\n")


@pytest.fixture
def redis_port() -> Iterator[int]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    threading.Thread(target=_serve, args=(server, PASSWORD), daemon=True).start()
    yield server.getsockname()[1]
    server.close()


def test_ping_and_aof_with_the_password(redis_port):
    result = RedisProbe("127.0.0.1", redis_port, PASSWORD, 2, persistence=True)()
    assert result.ok and result.detail == "PING -> PONG" and result.facts == {"aof_enabled": True}


def test_a_wrong_password_is_a_failed_probe_naming_redis_answer_never_the_password(redis_port):
    result = RedisProbe("127.0.0.1", redis_port, "wrong-pw", 2)()
    assert not result.ok and "WRONGPASS" in result.detail and "wrong-pw" not in result.detail


def test_no_password_where_one_is_required_says_so(redis_port):
    with RedisConnection("127.0.0.1", redis_port, None, 2) as r, pytest.raises(RedisError, match="NOAUTH"):
        r.command("PING")


def test_nothing_listening_is_a_failed_probe_with_the_address():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # a port nothing listens on
    result = RedisProbe("127.0.0.1", port, PASSWORD, 1)()
    assert not result.ok and f"127.0.0.1:{port}" in result.detail and "refused" in result.detail.lower()


def test_a_server_that_closes_mid_answer_is_an_error_not_a_hang():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()

    def half_answer() -> None:
        conn, _ = server.accept()
        conn.recv(100)
        conn.sendall(b"$10\r\nabc")
        conn.close()

    threading.Thread(target=half_answer, daemon=True).start()
    with RedisConnection("127.0.0.1", server.getsockname()[1], None, 2) as r, pytest.raises(RedisError):
        r.command("INFO")
    server.close()


def test_info_fields_skip_sections_and_keep_values_with_colons():
    assert info_fields(b"# Server\r\nredis_version:7.2.4\r\nexecutable:/usr/bin/redis:x\r\n\r\n") == {
        "redis_version": "7.2.4",
        "executable": "/usr/bin/redis:x",
    }
