"""The exchange check names the stage that failed (DNS, TCP, TLS, websocket, first frame), against
servers on loopback that fail at each stage — never the real exchange."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from screener.feedcheck import check


@contextmanager
def _server(answer: Callable[[socket.socket], None]) -> Iterator[int]:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(3)
            try:
                conn.recv(4096)
                answer(conn)
            except OSError:
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        listener.close()
        thread.join(timeout=3)


def _upgrade(frame: bytes) -> Callable[[socket.socket], None]:
    def answer(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n" + frame)

    return answer


def test_a_stream_that_upgrades_and_sends_a_frame_answers() -> None:
    with _server(_upgrade(b"\x81\x02[]")) as port:
        result = check(f"ws://127.0.0.1:{port}/ws/!miniTicker@arr", timeout=3)
    assert result["ok"] is True and result["stage"] == "frame"


def test_each_failing_stage_is_named() -> None:
    assert check("ws://cdb-nowhere.invalid/ws", timeout=2)["stage"] == "dns"
    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    result = check(f"ws://127.0.0.1:{port}/ws", timeout=2)
    assert (result["ok"], result["stage"]) == (False, "tcp") and "refused" in str(result["detail"]).lower()
    with _server(lambda c: c.sendall(b"HTTP/1.1 404 Not Found\r\n\r\n")) as port:
        result = check(f"ws://127.0.0.1:{port}/ws", timeout=2)
    assert (result["stage"], "404" in str(result["detail"])) == ("websocket", True)
    with _server(lambda c: c.sendall(b"not tls at all\r\n")) as port:
        assert check(f"wss://127.0.0.1:{port}/ws", timeout=2)["stage"] == "tls"
    with _server(_upgrade(b"")) as port:  # upgrades, then closes: no usable feed
        assert check(f"ws://127.0.0.1:{port}/ws", timeout=2)["stage"] == "frame"
    assert check("http://example.invalid/", timeout=1)["stage"] == "url"


def test_a_silent_server_is_bounded_by_the_timeout() -> None:
    with _server(lambda c: time.sleep(2)) as port:  # accepts, never answers
        result = check(f"ws://127.0.0.1:{port}/ws", timeout=1)
    assert result["ok"] is False and result["stage"] == "websocket" and float(result["seconds"]) < 2  # type: ignore[arg-type]
