"""One client connection of the fake exchange: frames out, the connection rules (rules.py) enforced, and
the faults a test injects through POST /control.

Pings carry a payload (the send time in ms) and only a pong that echoes one counts; a connection older
than its max age is closed; `serverShutdown` is sent and the connection closed a little later, the way
the exchange announces maintenance; a silenced connection sends nothing at all (no frame, no ping, no
pong) for N seconds while staying open; an abrupt close drops the TCP connection without a close frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from aiohttp import WSMsgType, web
from cdb_common.events import now_ms
from prometheus_client import Counter

from .rules import ConnectionRules, PingLedger, server_shutdown_event

DISCONNECTS = Counter("cdb_replay_disconnects_total", "Connections ended by the server", ["reason"])
QUEUE_FRAMES = 2000  # frames a connection may fall behind a shared playback before it is dropped as too slow


class Session:
    """A connected client. Frames reach it through `deliver` (own playback) or `offer` (shared playback)."""

    def __init__(self, ws: web.WebSocketResponse, request: web.Request, rules: ConnectionRules, log: logging.Logger):
        self.ws = ws
        self.request = request
        self.rules = rules
        self.log = log
        self.peer = request.remote
        self.connected_at = time.monotonic()
        self.silent_until = 0.0
        self.shutdown_at: float | None = None
        self.pings = PingLedger()
        self.ended: str | None = None  # why the server ended it
        self.sent = 0
        self.queue: asyncio.Queue[str] = asyncio.Queue(QUEUE_FRAMES)

    # -- state ------------------------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self.ended is not None or self.ws.closed

    def silent(self, now: float | None = None) -> bool:
        return (time.monotonic() if now is None else now) < self.silent_until

    def facts(self) -> dict[str, object]:
        now = time.monotonic()
        return {
            "peer": self.peer,
            "age_seconds": round(now - self.connected_at, 1),
            "silent_for_seconds": round(max(0.0, self.silent_until - now), 1),
            "unanswered_pings": self.pings.unanswered(),
            "frames_sent": self.sent,
        }

    # -- frames -----------------------------------------------------------------------------------
    async def deliver(self, text: str) -> None:
        """Send one frame now (own playback); a silenced connection drops it, as a hung server would."""
        if self.closed or self.silent():
            return
        await self.ws.send_str(text)
        self.sent += 1

    def offer(self, text: str) -> None:
        """Queue one frame of the shared playback; a client too slow to take them is dropped."""
        if self.closed or self.silent():
            return
        try:
            self.queue.put_nowait(text)
        except asyncio.QueueFull:
            self.end("too slow")

    async def pump(self) -> None:
        """Send what `offer` queued, until the connection ends."""
        while not self.closed:
            text = await self.queue.get()
            if not self.silent() and not self.closed:
                await self.ws.send_str(text)
                self.sent += 1

    # -- rules ------------------------------------------------------------------------------------
    async def read(self) -> None:
        """Answer the client's pings and take its pongs (autoping is off: the payload must be seen)."""
        async for msg in self.ws:
            if msg.type == WSMsgType.PING:
                if not self.silent():
                    await self.ws.pong(msg.data)
            elif msg.type == WSMsgType.PONG:
                self.pings.pong(bytes(msg.data))
            elif msg.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
                break

    async def watch(self, stop: asyncio.Event) -> None:
        """The rules, checked a few times a second: ping, pong deadline, max age, maintenance close."""
        rules = self.rules
        next_ping = self.connected_at + rules.ping_seconds
        tick = min(0.25, rules.ping_seconds / 4)
        while not self.closed and not stop.is_set():
            await asyncio.sleep(tick)
            now = time.monotonic()
            if now - self.connected_at >= rules.max_connection_seconds:
                await self.close("max age", 1001, b"connection max age reached")
            elif self.pings.overdue(now, rules.pong_timeout_seconds):
                await self.close("pong timeout", 1008, b"no pong within the deadline")
            elif self.shutdown_at is not None and now >= self.shutdown_at + rules.shutdown_close_seconds:
                await self.close("server shutdown", 1001, b"server shutdown")
            elif now >= next_ping:
                next_ping = now + rules.ping_seconds
                if not self.silent(now):
                    payload = str(now_ms()).encode()
                    self.pings.sent(payload, now)
                    await self.ws.ping(payload)

    # -- faults -----------------------------------------------------------------------------------
    async def announce_shutdown(self) -> None:
        if self.closed:
            return
        self.shutdown_at = time.monotonic()
        await self.ws.send_str(server_shutdown_event(now_ms()))

    def silence(self, seconds: float) -> None:
        self.silent_until = time.monotonic() + seconds

    def abort(self) -> None:
        """Drop the TCP connection without a close frame, as a crashed server or a cut link does."""
        self.end("abrupt close")
        transport = self.request.transport
        if transport is not None:
            transport.abort()

    def end(self, reason: str) -> None:
        if self.ended is None:
            self.ended = reason
            DISCONNECTS.labels(reason).inc()
            self.log.info("server ended the connection", extra={"peer": self.peer, "reason": reason})
            with contextlib.suppress(asyncio.QueueFull):
                self.queue.put_nowait("")  # wakes pump() so it sees the end

    async def close(self, reason: str, code: int, message: bytes) -> None:
        self.end(reason)
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.ws.close(code=code, message=message)
