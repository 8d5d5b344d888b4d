"""The probe library's HTTP side against a real HTTP server on loopback (no Docker): what `validate` and
the readiness waits conclude from a /health answer, a refused port and the probe endpoint's errors."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cdb_ops.checks.probes import HttpError, HttpProbe, http_request

ANSWERS: dict[str, tuple[int, bytes]] = {
    "/ok": (200, json.dumps({"status": "ok", "checks": {}}).encode()),
    "/degraded": (200, json.dumps({"status": "degraded", "checks": {"redis_connected": False}}).encode()),
    "/down": (503, json.dumps({"status": "unhealthy", "checks": {"postgres_connected": False}}).encode()),
    "/plain": (200, b"not json"),
}


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        code, body = ANSWERS.get(self.path, (404, b"{}"))
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # noqa: N802
        data = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        body = json.dumps({"echo": data, "type": self.headers["Content-Type"]}).encode()
        self.send_response(200 if self.path == "/probe" else 500)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_ok_is_ready_degraded_and_unhealthy_are_not_and_say_which_facts(base: str) -> None:
    ok = HttpProbe(f"{base}/ok")()
    assert ok.ok and ok.facts["http_status"] == 200 and ok.facts["status"] == "ok"
    degraded = HttpProbe(f"{base}/degraded")()
    assert not degraded.ok and "redis_connected" in degraded.detail
    down = HttpProbe(f"{base}/down")()
    assert not down.ok and down.facts["http_status"] == 503 and "postgres_connected" in down.detail
    plain = HttpProbe(f"{base}/plain")()
    assert plain.ok and plain.facts["body"] == {"raw": "not json"}  # no status field: 200 decides


def test_a_refused_port_is_a_failed_result_naming_the_reason_not_an_exception() -> None:
    result = HttpProbe(f"http://127.0.0.1:{_free_port()}/health", timeout=1.0)()
    assert not result.ok
    assert "Connection refused" in result.detail and "object at 0x" not in result.detail


def test_post_sends_json_and_ok_only_turns_an_error_answer_into_http_error(base: str) -> None:
    r = http_request("POST", f"{base}/probe", json_body={"move_pct": 6.0}, timeout=2.0, ok_only=True)
    assert r.status == 200 and r.json() == {"echo": {"move_pct": 6.0}, "type": "application/json"}
    with pytest.raises(HttpError, match="500"):
        http_request("POST", f"{base}/elsewhere", json_body={}, timeout=2.0, ok_only=True)
    assert http_request("GET", f"{base}/nosuch", timeout=2.0).status == 404  # without ok_only: the answer
