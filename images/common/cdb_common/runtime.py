"""Service lifecycle shared by every image: start HTTP, run the loops, stop cleanly on SIGTERM.

SIGTERM sets one stop event; loops finish their current event (at most one block interval), the
service flushes, and everything still running after the grace period is cancelled, all within 2 s.
A loop that dies of a bug ends the process with exit code 1 so Docker's restart policy steps in.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any

from . import gcpause, metrics
from .config import ConfigError, Settings, env_int, load_settings
from .db import Database
from .health import HealthReport, dependency_verdict
from .http import HttpServer
from .jsonlog import setup_logging
from .streams import Bus

SHUTDOWN_GRACE_SECONDS = 1.2


class BaseService:
    """What every service has: settings, a logger, Redis, optionally Postgres, HTTP and a stop event."""

    name = "service"
    default_port = 8000
    uses_postgres = True
    uses_redis = True

    def __init__(self, settings: Settings, log: logging.Logger) -> None:
        self.settings = settings
        self.log = log
        self.stop = asyncio.Event()
        self.started = time.monotonic()
        self.grace_seconds = env_int(settings.env, "HEALTH_GRACE_SECONDS", 30, minimum=0)
        self.bus = Bus(settings.redis, log) if self.uses_redis else None
        self.db = Database(settings.postgres, log) if self.uses_postgres else None
        self.http = HttpServer(self.name, settings.http_port, self.health)
        metrics.export_settings(settings)  # the thresholds the alert rules judge this service by

    # -- to override --------------------------------------------------------------------------
    def loops(self) -> list[Coroutine[Any, Any, None]]:
        """The long-running coroutines of the service (consumers, feeds, flushers)."""
        return []

    def add_checks(self, report: HealthReport) -> None:
        """Add service-specific facts to /health and worsen its status where they say so."""

    async def open(self) -> None:
        """Prepare before the loops start (must not fail just because a dependency is down)."""

    async def close(self) -> None:
        """Flush and release after the loops stopped."""

    @property
    def redis_bus(self) -> Bus:
        """The bus of a service that declared `uses_redis` (all but the replay)."""
        assert self.bus is not None, "service declared uses_redis = False"
        return self.bus

    # -- shared -----------------------------------------------------------------------------------
    def health(self) -> HealthReport:
        report = HealthReport()
        report.checks["uptime_seconds"] = round(time.monotonic() - self.started, 1)
        deps = ([("redis", self.bus.outage)] if self.bus else []) + ([("postgres", self.db.outage)] if self.db else [])
        for name, outage in deps:
            report.checks[f"{name}_connected"] = outage.connected
            if not outage.connected:
                report.checks[f"{name}_down_seconds"] = round(outage.outage_seconds(), 1)
            report.worsen(dependency_verdict(outage.connected, outage.outage_seconds(), self.grace_seconds))
        self.add_checks(report)
        return report

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.stop.set)
        await self.http.start()
        await self.open()
        gcpause.settle()
        tasks = [asyncio.create_task(coro) for coro in self.loops()]
        if self.bus is not None:
            tasks.append(asyncio.create_task(self.bus.monitor(self.stop)))
        if self.db is not None:
            tasks.append(asyncio.create_task(self.db.monitor(self.stop)))
        stopper = asyncio.create_task(self.stop.wait())
        self.log.info("started", extra={"port": self.settings.http_port, "book": self.settings.feed})
        done, _pending = await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
        exit_code = 0
        for task in done:
            exc = None if task is stopper or task.cancelled() else task.exception()
            if exc is not None:
                self.log.error("loop crashed, exiting", exc_info=exc)
                exit_code = 1
        self.stop.set()
        still_running: set[asyncio.Task[None]] = set()
        if tasks:
            _, still_running = await asyncio.wait(tasks, timeout=SHUTDOWN_GRACE_SECONDS)
        for task in still_running:
            task.cancel()
        await asyncio.gather(*still_running, return_exceptions=True)
        try:
            await asyncio.wait_for(self._close_all(), timeout=0.6)
        except TimeoutError:
            self.log.warning("shutdown flush timed out")
        self.log.info("stopped", extra={"exit_code": exit_code})
        return exit_code

    async def _close_all(self) -> None:
        try:
            await self.close()
        finally:
            await self.http.stop()
            if self.bus is not None:
                await self.bus.close()
            if self.db is not None:
                await self.db.close()


def main(service_cls: Callable[[Settings, logging.Logger], BaseService], name: str, default_port: int) -> None:
    """Entry point of `python3 -m <service>`: config errors exit 3 with one JSON line, never a traceback."""

    def refuse(exc: ConfigError) -> int:
        print(json.dumps({"level": "ERROR", "service": name, "msg": f"config error: {exc}"}), flush=True)
        return 3

    try:
        settings = load_settings(name, default_port)
    except ConfigError as exc:
        sys.exit(refuse(exc))
    log = setup_logging(name, settings.log_level)
    gcpause.watch()

    async def _run() -> int:
        # Built inside the loop: the Redis pool and locks belong to the running loop.
        try:
            service = service_cls(settings, log)
        except ConfigError as exc:  # service-specific settings are read by the service itself
            return refuse(exc)
        return await service.run()

    # Not asyncio.run(): its teardown waits for the default executor's threads, and while a dependency's
    # container is not running (after a reboot the engine starts containers in no order) a thread may sit
    # in getaddrinfo() for its name for 5-10 s, which every `docker stop` and the daemon's own shutdown then
    # waited out. The loop is left as it is; os._exit below ends the threads with the process.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    code = loop.run_until_complete(_run())
    # Everything is closed and flushed by now (connections, HTTP, the "stopped" line): skip the
    # interpreter's teardown of every module, a tenth of a second of a `docker stop` here.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
