"""Market replay service: a websocket server speaking the exchange's `!miniTicker@arr` format.

Clients connect to ws://<host>:HTTP_PORT/ws (any path below /ws too, e.g. /ws/!miniTicker@arr). The
frames come from REPLAY_FILE (in REPLAY_DIR; plain `.jsonl` or gzip, streamed line by line, so a file
of any size plays in constant memory) or, when none is configured/found, from the generated
REPLAY_SCENARIO, paced by the frames' E at REPLAY_SPEED (0 = as fast as possible).
REPLAY_MODE=client (default): each connection gets its own playback from the start of the file.
REPLAY_MODE=market: one shared playback, as the exchange's market is: it starts with the first
connection and runs on; every connection sees the same frames from the moment it connects.
REPLAY_LOOP=1 starts over at the end; otherwise the last state of every symbol is re-sent once a
second (a flat market) so the screener stays fed. The exchange's connection rules are enforced
(rules.py, exchange.py) and POST /control injects its faults. Uses no Redis and no Postgres.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from cdb_common.config import ConfigError, Settings, env_bool, env_int
from cdb_common.events import now_ms
from cdb_common.health import HealthReport
from cdb_common.runtime import BaseService
from prometheus_client import Counter, Gauge

from .exchange import Session
from .replayfile import Pacer, hold_frame, loop_shift, shifted
from .rules import ConnectionRules, parse_control
from .scenario import generate
from .source import ReplaySource, ReplaySourceError, file_source, lines_source

FRAMES_SENT = Counter("cdb_replay_frames_sent_total", "Frames sent to clients")
LOOPS = Counter("cdb_replay_loops_total", "Complete passes over the replay")
CLIENTS = Gauge("cdb_replay_clients", "Connected websocket clients")
CONTROLS = Counter("cdb_replay_control_total", "Faults injected through POST /control", ["action"])
MODES = ("client", "market")


def replay_speed(raw: str) -> float:
    try:
        speed = float(raw)  # a pacing factor, not money
    except ValueError:
        raise ConfigError(f"REPLAY_SPEED={raw!r} is not a number") from None
    if speed < 0:
        raise ConfigError(f"REPLAY_SPEED={raw} must be >= 0 (0 = as fast as possible)")
    return speed


class ReplayService(BaseService):
    name = "market_replay"
    default_port = 8010
    uses_postgres = False
    uses_redis = False

    def __init__(self, settings: Settings, log: logging.Logger) -> None:
        super().__init__(settings, log)
        self.speed = replay_speed(settings.get("REPLAY_SPEED", "1.0"))
        self.loop_enabled = env_bool(settings.env, "REPLAY_LOOP", False)
        self.rewrite_time = env_bool(settings.env, "REPLAY_REWRITE_TIME", True)
        self.seed = env_int(settings.env, "REPLAY_SEED", 7)
        self.mode = settings.get("REPLAY_MODE", "client").strip().lower() or "client"
        if self.mode not in MODES:
            raise ConfigError(f"REPLAY_MODE={self.mode!r} must be one of {', '.join(MODES)}")
        self.rules = ConnectionRules.from_env(settings.env)
        self.source = self._load(settings)
        self.sessions: set[Session] = set()
        self.sent = 0
        self.frames_per_pass: int | None = None
        self.market: asyncio.Task[None] | None = None
        self.http.add_route("GET", "/ws", self.websocket)
        self.http.add_route("GET", "/ws/{tail:.*}", self.websocket)
        self.http.add_route("POST", "/control", self.control)

    def _load(self, settings: Settings) -> ReplaySource:
        name = settings.get("REPLAY_FILE", "")
        if name:
            path = name if os.path.isabs(name) else os.path.join(settings.get("REPLAY_DIR", "/replays"), name)
            if os.path.isfile(path):
                try:
                    source = file_source(path)
                except ReplaySourceError as exc:
                    raise ConfigError(str(exc)) from None
                self.log.info(
                    "replay file opened (streamed)",
                    extra={"path": path, "bytes": source.size_bytes, "gzip": source.compressed},
                )
                return source
            self.log.warning("replay file not found, using the generated scenario", extra={"path": path})
        scenario = settings.get("REPLAY_SCENARIO", "momentum")
        try:
            lines = generate(scenario, seed=self.seed)
        except KeyError as exc:
            raise ConfigError(str(exc)) from None
        self.log.info("generated scenario", extra={"scenario": scenario, "frames": len(lines)})
        self.frames_per_pass = len(lines)
        return lines_source(f"scenario:{scenario}", lines)

    # -- connections ------------------------------------------------------------------------------
    async def websocket(self, request: web.Request) -> web.StreamResponse:
        # autoping off: the session answers pings itself and must see each pong's payload (rules.py).
        ws = web.WebSocketResponse(autoping=False, timeout=2.0)
        await ws.prepare(request)
        session = Session(ws, request, self.rules, self.log)
        self.sessions.add(session)
        CLIENTS.set(len(self.sessions))
        self.log.info("client connected", extra={"peer": session.peer, "source": self.source.name, "mode": self.mode})
        helpers = [asyncio.create_task(session.read()), asyncio.create_task(session.watch(self.stop))]
        try:
            if self.mode == "market":
                self._start_market()
                helpers.append(asyncio.create_task(session.pump()))
                await asyncio.wait(helpers, return_when=asyncio.FIRST_COMPLETED)
            else:
                player = asyncio.create_task(self._play(session.deliver, lambda: session.closed))
                await asyncio.wait([player, *helpers], return_when=asyncio.FIRST_COMPLETED)
                helpers.append(player)
        except (ConnectionResetError, RuntimeError, asyncio.CancelledError):
            pass  # the client went away (or we are stopping)
        finally:
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            self.sessions.discard(session)
            CLIENTS.set(len(self.sessions))
            if not ws.closed:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await ws.close()
            self.log.info("client disconnected", extra={"peer": session.peer, "ended_by_server": session.ended})
        return ws

    def _start_market(self) -> None:
        """The shared playback starts with the first connection and then runs on, like a market."""
        if self.market is None or self.market.done():
            self.market = asyncio.create_task(self._play(self._broadcast, lambda: False))

    async def _broadcast(self, text: str) -> None:
        for session in list(self.sessions):
            session.offer(text)

    # -- playback ---------------------------------------------------------------------------------
    async def _play(self, emit: Callable[[str], Awaitable[None]], ended: Callable[[], bool]) -> None:
        """Play the source through `emit` (one client's send, or the broadcast) until `ended()`: paced,
        time-shifted, looped or held. Reads one frame at a time: memory does not grow with the file."""
        loop = asyncio.get_running_loop()
        last_sent: int | None = None
        last_items: dict[str, dict[str, Any]] = {}

        async def send(text: str) -> None:
            await emit(text)
            self.sent += 1
            FRAMES_SENT.inc()

        while not ended() and not self.stop.is_set():
            pacer = Pacer(self.speed)
            shift: int | None = None
            start = loop.time()
            frames = self.source.frames()
            with contextlib.closing(frames):
                for index, frame in enumerate(frames):
                    delay = start + pacer.offset(frame.event_time) - loop.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    elif index % 200 == 0:
                        await asyncio.sleep(0)  # at speed 0, still let /health and other clients run
                    if ended() or self.stop.is_set():
                        return
                    if shift is None and frame.event_time is not None:
                        # the pass starts "now" (and never behind what was sent): the shift template
                        shift = loop_shift(frame.event_time, now_ms(), last_sent) if self.rewrite_time else 0
                    await send(shifted(frame, shift or 0))
                    if frame.event_time is not None:
                        last_sent = frame.event_time + (shift or 0)
                        for item in frame.items or []:
                            if isinstance(item, dict) and isinstance(item.get("s"), str):
                                last_items[item["s"]] = item
            stats = self.source.last_pass
            if stats is not None:
                self._pass_done(stats)
            LOOPS.inc()
            if not self.loop_enabled or not self.frames_per_pass:
                break  # a pass that found no frame would spin
        await self._hold(send, ended, last_items, last_sent)

    def _pass_done(self, stats: Any) -> None:
        self.frames_per_pass = stats.frames
        if stats.too_long:
            self.log.warning(
                "replay lines skipped: longer than a frame can be",
                extra={"source": self.source.name, "lines": stats.too_long},
            )
        if stats.error:
            self.log.error("replay pass ended early", extra={"source": self.source.name, "error": stats.error})

    async def _hold(
        self,
        send: Callable[[str], Awaitable[None]],
        ended: Callable[[], bool],
        last_items: dict[str, dict[str, Any]],
        last_sent: int | None,
    ) -> None:
        event_time = last_sent or now_ms()
        while not ended() and not self.stop.is_set():
            with contextlib.suppress(TimeoutError):  # a hold frame a second; SIGTERM ends the wait at once
                await asyncio.wait_for(self.stop.wait(), timeout=1.0)
            if self.stop.is_set() or ended():
                return
            event_time = max(now_ms(), event_time + 1000)
            frame = hold_frame(last_items, event_time)
            if frame is not None:
                await send(frame)

    # -- faults -----------------------------------------------------------------------------------
    async def control(self, request: web.Request) -> web.Response:
        """POST /control {"action": "shutdown" | "silence" | "close", "seconds": N}: the exchange's faults,
        applied to every open connection (serverShutdown then a close after REPLAY_SHUTDOWN_CLOSE_SECONDS;
        nothing at all sent for N s; the TCP connection dropped without a close frame)."""
        try:
            action, seconds = parse_control(await request.json())
        except ValueError as exc:  # a JSON decode error is a ValueError too
            return web.json_response({"error": str(exc)}, status=400)
        sessions = [s for s in self.sessions if not s.closed]
        for session in sessions:
            if action == "shutdown":
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await session.announce_shutdown()
            elif action == "silence":
                session.silence(seconds)
            else:
                session.abort()
        CONTROLS.labels(action).inc()
        self.log.info("fault injected", extra={"action": action, "seconds": seconds, "connections": len(sessions)})
        return web.json_response({"action": action, "seconds": seconds, "connections": len(sessions)})

    def add_checks(self, report: HealthReport) -> None:
        report.checks["source"] = self.source.name
        report.checks["source_bytes"] = self.source.size_bytes
        report.checks["gzip"] = self.source.compressed
        report.checks["frames_per_pass"] = self.frames_per_pass  # known once a pass has been read through
        report.checks["mode"] = self.mode
        report.checks["speed"] = self.speed
        report.checks["loop"] = self.loop_enabled
        report.checks["clients"] = len(self.sessions)
        report.checks["frames_sent"] = self.sent  # in market mode: frames played (once for all clients)
        report.checks["connections"] = [s.facts() for s in list(self.sessions)[:20]]
        report.checks["rules"] = self.rules.as_dict()
        report.checks["websocket_path"] = "/ws"
        if not self.source.has_frames:
            report.worsen("unhealthy")

    async def close(self) -> None:
        # Give open websockets a moment to see the stop flag.
        deadline = time.monotonic() + 0.3
        while self.sessions and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if self.market is not None:
            self.market.cancel()
