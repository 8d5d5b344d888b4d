"""A notification destination for the tests: records every POST it accepts, refuses or hangs by path.

Run inside a container on the stack's network (`python3 receiver.py PORT`): POST /ok/... answers 200 and
keeps the body, POST /refuse/... answers 500, POST /hang/... waits 120 s before answering; GET /received
lists what /ok took (JSON), GET /attempts counts every POST per first path segment and every GET /beat
(a heartbeat). Standard library only."""

from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

RECEIVED: list[dict[str, object]] = []
ATTEMPTS: dict[str, int] = {}
LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def _reply(self, code: int, body: bytes = b"{}") -> None:
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        kind = self.path.strip("/").split("/")[0]
        with LOCK:
            ATTEMPTS[kind] = ATTEMPTS.get(kind, 0) + 1
        if kind == "refuse":
            self._reply(500, b'{"error": "refused on purpose"}')
        elif kind == "hang":
            time.sleep(120)
            self._reply(200)
        else:
            try:
                body = json.loads(raw)
            except ValueError:
                body = {"raw": raw.decode("utf-8", "replace")}
            with LOCK:
                RECEIVED.append({"path": self.path, "at": time.time(), "body": body})
            self._reply(200)

    def do_GET(self) -> None:  # noqa: N802
        if self.path.startswith("/beat"):  # a heartbeat (dead-man's switch) call: counted
            with LOCK:
                ATTEMPTS["beat"] = ATTEMPTS.get("beat", 0) + 1
            self._reply(200)
            return
        with LOCK:
            data = RECEIVED if self.path.startswith("/received") else ATTEMPTS
            self._reply(200, json.dumps(data).encode())

    def log_message(self, *_args: object) -> None:
        pass


if __name__ == "__main__":
    ThreadingHTTPServer(("0.0.0.0", int(sys.argv[1])), Handler).serve_forever()
