"""The HTTP side of every service (aiohttp): `GET /health` (JSON facts) and `GET /metrics` (Prometheus).

/health answers 200 for "ok" and "degraded" and 503 for "unhealthy", so Docker's health check and
`cdb-ops validate` agree on what is broken.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from .health import HealthReport

log = logging.getLogger(__name__)


class HttpServer:
    """Serves /health and /metrics plus any routes a service adds (the screener's POST /probe)."""

    def __init__(self, service: str, port: int, health: Callable[[], HealthReport], host: str = "0.0.0.0") -> None:
        self.service = service
        self.port = port
        self.host = host
        self.health = health
        self.app = web.Application(client_max_size=64 * 1024)
        self.app.router.add_get("/health", self._health)
        self.app.router.add_get("/metrics", self._metrics)
        self._runner: web.AppRunner | None = None

    def add_route(self, method: str, path: str, handler: Callable[[web.Request], Any]) -> None:
        self.app.router.add_route(method, path, handler)

    async def _health(self, _request: web.Request) -> web.Response:
        report = self.health()
        body = {"status": report.status, "service": self.service, "checks": report.checks}
        return web.json_response(body, status=503 if report.status == "unhealthy" else 200, dumps=report.dumps)

    async def _metrics(self, _request: web.Request) -> web.Response:
        # CONTENT_TYPE_LATEST carries a charset; aiohttp wants it split off.
        return web.Response(body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, shutdown_timeout=0.5)
        await site.start()
        log.info("http listening", extra={"port": self.port})

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
