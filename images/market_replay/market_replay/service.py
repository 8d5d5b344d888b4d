"""Market replay service: a websocket server speaking the exchange's `!miniTicker@arr` format.

Each client connecting to ws://<host>:HTTP_PORT/ws (any path below /ws too, e.g. /ws/!miniTicker@arr)
gets its own playback of REPLAY_FILE (from REPLAY_DIR) or, when none is configured/found, of the
generated REPLAY_SCENARIO, paced by the frames' E at REPLAY_SPEED (0 = as fast as possible).
REPLAY_LOOP=1 starts over at the end; otherwise the last state of every symbol is re-sent once a
second (a flat market) so the screener stays fed. Uses no Redis and no Postgres.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from typing import Any

from aiohttp import WSMsgType, web
from cdb_common.config import ConfigError, Settings, env_bool, env_int
from cdb_common.events import now_ms
from cdb_common.health import HealthReport
from cdb_common.runtime import BaseService
from prometheus_client import Counter, Gauge

from .replayfile import ReplayFrame, hold_frame, load_file, load_frames, loop_shift, schedule, shifted
from .scenario import generate

FRAMES_SENT = Counter("cdb_replay_frames_sent_total", "Frames sent to clients")
LOOPS = Counter("cdb_replay_loops_total", "Complete passes over the replay")
CLIENTS = Gauge("cdb_replay_clients", "Connected websocket clients")


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
        self.source, self.frames = self._load(settings)
        self.offsets = schedule([f.event_time for f in self.frames], self.speed)
        self.first_event_time = next((f.event_time for f in self.frames if f.event_time is not None), 0)
        self.clients = 0
        self.sent = 0
        self.http.add_route("GET", "/ws", self.websocket)
        self.http.add_route("GET", "/ws/{tail:.*}", self.websocket)

    def _load(self, settings: Settings) -> tuple[str, list[ReplayFrame]]:
        name = settings.get("REPLAY_FILE", "")
        if name:
            path = name if os.path.isabs(name) else os.path.join(settings.get("REPLAY_DIR", "/replays"), name)
            if os.path.isfile(path):
                frames = load_file(path)
                self.log.info("replay file loaded", extra={"path": path, "frames": len(frames)})
                return path, frames
            self.log.warning("replay file not found, using the generated scenario", extra={"path": path})
        scenario = settings.get("REPLAY_SCENARIO", "momentum")
        try:
            lines = generate(scenario, seed=self.seed)
        except KeyError as exc:
            raise ConfigError(str(exc)) from None
        self.log.info("generated scenario", extra={"scenario": scenario, "frames": len(lines)})
        return f"scenario:{scenario}", load_frames(lines)

    async def websocket(self, request: web.Request) -> web.StreamResponse:
        # Pings every 20 s like the exchange; a client that stops answering is dropped.
        ws = web.WebSocketResponse(heartbeat=20.0, autoping=True)
        await ws.prepare(request)
        self.clients += 1
        CLIENTS.set(self.clients)
        peer = request.remote
        self.log.info("client connected", extra={"peer": peer, "source": self.source})
        reader = asyncio.create_task(self._drain(ws))
        try:
            await self._play(ws)
        except (ConnectionResetError, RuntimeError, asyncio.CancelledError):
            pass  # the client went away (or we are stopping)
        finally:
            reader.cancel()
            self.clients -= 1
            CLIENTS.set(self.clients)
            if not ws.closed:
                await ws.close()
            self.log.info("client disconnected", extra={"peer": peer})
        return ws

    async def _drain(self, ws: web.WebSocketResponse) -> None:
        """Read (and ignore) what the client sends, so close frames and pongs are processed."""
        async for msg in ws:
            if msg.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
                break

    async def _play(self, ws: web.WebSocketResponse) -> None:
        loop = asyncio.get_running_loop()
        last_sent: int | None = None
        last_items: dict[str, dict[str, Any]] = {}
        while not ws.closed and not self.stop.is_set():
            shift = loop_shift(self.first_event_time, now_ms(), last_sent) if self.rewrite_time else 0
            start = loop.time()
            for index, (frame, offset) in enumerate(zip(self.frames, self.offsets, strict=True)):
                delay = start + offset - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                elif index % 200 == 0:
                    await asyncio.sleep(0)  # at speed 0, still let /health and other clients run
                if ws.closed or self.stop.is_set():
                    return
                await ws.send_str(shifted(frame, shift))
                self.sent += 1
                FRAMES_SENT.inc()
                if frame.event_time is not None:
                    last_sent = frame.event_time + shift
                    for item in frame.items or []:
                        if isinstance(item, dict) and isinstance(item.get("s"), str):
                            last_items[item["s"]] = item
            LOOPS.inc()
            if not self.loop_enabled:
                break
        await self._hold(ws, last_items, last_sent)

    async def _hold(
        self, ws: web.WebSocketResponse, last_items: dict[str, dict[str, Any]], last_sent: int | None
    ) -> None:
        event_time = last_sent or now_ms()
        while not ws.closed and not self.stop.is_set():
            with contextlib.suppress(TimeoutError):  # a hold frame a second; SIGTERM ends the wait at once
                await asyncio.wait_for(self.stop.wait(), timeout=1.0)
            if self.stop.is_set():
                return
            event_time = max(now_ms(), event_time + 1000)
            frame = hold_frame(last_items, event_time)
            if frame is not None and not ws.closed:
                await ws.send_str(frame)
                self.sent += 1
                FRAMES_SENT.inc()

    def add_checks(self, report: HealthReport) -> None:
        report.checks["source"] = self.source
        report.checks["frames_loaded"] = len(self.frames)
        report.checks["speed"] = self.speed
        report.checks["loop"] = self.loop_enabled
        report.checks["clients"] = self.clients
        report.checks["frames_sent"] = self.sent
        report.checks["websocket_path"] = "/ws"
        if not self.frames:
            report.worsen("unhealthy")

    async def close(self) -> None:
        # Give open websockets a moment to see the stop flag.
        deadline = time.monotonic() + 0.3
        while self.clients and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
