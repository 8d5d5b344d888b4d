"""Does the exchange's stream answer? One bounded check, stage by stage: DNS, TCP, TLS, websocket.

Standard library only, so the same file runs inside the screener image (on the engine's own network:
the DNS, routes and CA certificates the screener will have) and on the host when no engine answers:
`python3 -m screener.feedcheck URL [--timeout S]` or `python3 feedcheck.py URL`. Prints one JSON
object ({"ok", "stage", "detail", "seconds"}) and exits 0 when a websocket upgrade was answered with
101 and a first frame arrived, 1 otherwise. The stage that failed says what to fix: `dns` (no name
resolution: offline or no DNS), `tcp` (no route, firewall, port closed), `tls` (interception, a
proxy, wrong certificates), `websocket` (the server answered but not as a stream).
"""

from __future__ import annotations

import base64
import json
import os
import socket
import ssl
import sys
import time
from urllib.parse import urlsplit

STAGES = ("url", "dns", "tcp", "tls", "websocket", "frame")


class StageFailed(Exception):
    def __init__(self, stage: str, detail: str) -> None:
        super().__init__(detail)
        self.stage = stage
        self.detail = detail


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("time budget used up")
    return left


def check(url: str, timeout: float = 5.0) -> dict[str, object]:
    """Run the stages in order within `timeout` seconds in total; never raises."""
    started = time.monotonic()
    deadline = started + timeout
    stage = "url"
    try:
        parts = urlsplit(url)
        if parts.scheme not in ("ws", "wss") or not parts.hostname:
            raise StageFailed("url", f"not a ws:// or wss:// URL: scheme {parts.scheme!r}")
        host = parts.hostname
        port = parts.port or (443 if parts.scheme == "wss" else 80)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")

        stage = "dns"
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise StageFailed("dns", f"{host} does not resolve ({exc.strerror})") from None

        stage = "tcp"
        sock: socket.socket | None = None
        last_error = "no address"
        for family, kind, proto, _name, address in infos:
            candidate = socket.socket(family, kind, proto)
            candidate.settimeout(min(3.0, _remaining(deadline)))
            try:
                candidate.connect(address)
                sock = candidate
                break
            except OSError as exc:
                candidate.close()
                last_error = f"{address[0]}:{port}: {exc.strerror or exc.__class__.__name__}"
        if sock is None:
            raise StageFailed("tcp", f"cannot connect to {host}:{port} ({last_error})")

        stream: socket.socket = sock
        if parts.scheme == "wss":
            stage = "tls"
            context = ssl.create_default_context()
            stream.settimeout(_remaining(deadline))
            try:
                stream = context.wrap_socket(sock, server_hostname=host)
            except (ssl.SSLError, OSError) as exc:
                sock.close()
                raise StageFailed("tls", f"TLS handshake with {host}:{port} failed ({exc})") from None

        stage = "websocket"
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nUser-Agent: cdb-ops-feedcheck\r\n\r\n"
        )
        with stream:
            stream.settimeout(_remaining(deadline))
            stream.sendall(request.encode())
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 16384:
                chunk = stream.recv(4096)
                if not chunk:
                    break
                head += chunk
            status_line = head.split(b"\r\n", 1)[0].decode("latin-1", "replace")
            if not status_line.startswith("HTTP/1.1 101"):
                shown = status_line[:80] or "connection closed without an answer"
                raise StageFailed("websocket", f"the server did not upgrade to a websocket: {shown!r}")
            # The all-market stream sends its first array within a second or two; a server that
            # upgrades and then stays silent is not a usable feed.
            stage = "frame"
            rest = head.split(b"\r\n\r\n", 1)[1]
            if not rest:
                stream.settimeout(_remaining(deadline))
                rest = stream.recv(4096)
            if not rest:
                raise StageFailed("frame", "the websocket closed before the first frame")
        return {"ok": True, "stage": "frame", "detail": "websocket answered and sent a frame", **_took(started)}
    except StageFailed as exc:
        return {"ok": False, "stage": exc.stage, "detail": exc.detail, **_took(started)}
    except TimeoutError:
        return {"ok": False, "stage": stage, "detail": f"no answer within {timeout:g} s", **_took(started)}
    except OSError as exc:
        return {"ok": False, "stage": stage, "detail": exc.strerror or str(exc), **_took(started)}


def _took(started: float) -> dict[str, float]:
    return {"seconds": round(time.monotonic() - started, 3)}


def main(argv: list[str]) -> int:
    if not argv or argv[0].startswith("-"):
        print("usage: feedcheck URL [--timeout SECONDS]", file=sys.stderr)
        return 2
    timeout = 5.0
    if len(argv) >= 3 and argv[1] == "--timeout":
        timeout = float(argv[2])
    result = check(argv[0], timeout)
    print(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
