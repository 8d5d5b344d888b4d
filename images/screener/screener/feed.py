"""The screener's connections to the exchange's stream, under the exchange's rules (SPEC §8).

Pings: the websockets library answers every server ping with its payload (inside its protocol, no code
here), which is the pong the exchange wants within 60 s; it also pings the server itself.
Silence: no message for FEED_SILENCE_SECONDS → the connection is dropped and a new one opened.
serverShutdown: a new connection is opened at once, while the old one (which the exchange keeps open a
little longer) still streams; the old one is closed at the handover.
Max age: FEED_ROTATE_SECONDS (default 23 h 50 min, under the exchange's 24 h) after a connection opened,
the same make-before-break rotation: a planned rotation misses no frame.
Abrupt close or error: reconnect at once when the connection had been streaming, else with backoff
(the exchange allows 300 connections per 5 minutes per IP).
Every replacement is recorded with the event time it missed (feedlinks.GapLog), and every tick is
published once however many connections delivered it (feedlinks.Dedupe).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import websockets
from cdb_common.backoff import Backoff
from cdb_common.db import sleep_or_stop
from prometheus_client import Counter, Gauge

from .feedlinks import Dedupe, GapLog, LinkState, handover_ready, rotation_due, silent_for
from .frames import MAX_FRAME_BYTES, FrameResult

FEED_CONNECTED = Gauge("cdb_feed_connected", "1 while the websocket feed is connected")
FEED_CONNECTIONS = Gauge("cdb_feed_connections", "Open exchange connections (2 while a rotation overlaps)")
FEED_RECONNECTS = Counter("cdb_feed_reconnects_total", "Websocket (re)connection attempts that failed or ended")
FEED_ROTATIONS = Counter("cdb_feed_rotations_total", "Make-before-break rotations, by reason", ["reason"])
FEED_GAPS = Counter(
    "cdb_feed_gaps_total", "Connections replaced, by cause (a clean handover is a gap of 0 s)", ["cause"]
)
FEED_GAP_SECONDS = Counter("cdb_feed_gap_seconds_total", "Event-time seconds of frames missed, by cause", ["cause"])
FEED_LAST_GAP = Gauge("cdb_feed_last_gap_seconds", "Event-time seconds missed by the last replacement")

HEALTHY_LINK_SECONDS = 5.0  # a connection that streamed this long is replaced at once when it ends
HANDOVER_SECONDS = 10.0  # the longest a rotation waits for the old connection to catch up
ROTATION_RETRY_SECONDS = 5.0


class Link:
    """One open connection: its websocket, the task reading it, and what it delivered."""

    def __init__(
        self, number: int, ws: Any, inbox: asyncio.Queue[tuple[Link, Any]], oversized: Callable[[], None]
    ) -> None:
        now = time.monotonic()
        self.state = LinkState(number=number, opened_at=now, last_message_at=now)
        self.ws = ws
        self.end_reason: str | None = None
        self.reader = asyncio.create_task(self._read(inbox, oversized))

    async def _read(self, inbox: asyncio.Queue[tuple[Link, Any]], oversized: Callable[[], None]) -> None:
        try:
            async for raw in self.ws:
                await inbox.put((self, raw))
            self.end_reason = f"closed ({self.ws.close_code})"
        except websockets.exceptions.ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd else (exc.sent.code if exc.sent else None)
            if code == 1009:
                oversized()  # larger than the client takes at all: counted like the frames parse_frame drops
            self.end_reason = f"connection closed ({code})"
        except (OSError, websockets.exceptions.WebSocketException) as exc:
            self.end_reason = f"{type(exc).__name__}: {exc}"
        # Not in a `finally`: a reader cancelled because its connection is being closed reports nothing
        # (and must not block on a full inbox that nobody reads any more).
        await inbox.put((self, None))  # the end marker

    async def close(self) -> None:
        self.reader.cancel()
        with contextlib.suppress(Exception):
            await self.ws.close()


class Feed:
    def __init__(
        self,
        url: str,
        stop: asyncio.Event,
        log: logging.Logger,
        on_frame: Callable[[LinkState, Any], Awaitable[FrameResult]],
        silence_seconds: float,
        rotate_seconds: float,
        oversized: Callable[[], None],
    ) -> None:
        self.oversized = oversized
        self.url = url
        self.stop = stop
        self.log = log
        self.on_frame = on_frame
        self.silence_seconds = silence_seconds
        self.rotate_seconds = rotate_seconds
        self.inbox: asyncio.Queue[tuple[Link, Any]] = asyncio.Queue(64)
        self.dedupe = Dedupe()
        self.gaps = GapLog()
        self.current: Link | None = None
        self.next: Link | None = None  # the new connection of a rotation, until the handover
        self.opening: asyncio.Task[Link | None] | None = None
        self.rotation_reason = ""
        self.rotation_started = 0.0
        self.retry_rotation_at = 0.0
        self.lost: tuple[LinkState, str] | None = None  # the connection lost unplanned, and why
        self.links_opened = 0
        self.open_error = ""  # why the last connection attempt failed
        self.rotations = 0
        self.backoff = Backoff(base=1.0, cap=30.0)  # polite to the exchange, back within 30 s

    @property
    def connected(self) -> bool:
        return self.current is not None

    async def _open(self) -> Link | None:
        try:
            ws = await websockets.connect(
                self.url,
                # No pings of our own: the exchange pings every 20 s (the library answers with the payload)
                # and a silent connection is caught by FEED_SILENCE_SECONDS. Our own keepalive only hurt:
                # under a burst its pong queues behind unread frames and the library closed a healthy
                # connection (1011) that was merely busy.
                ping_interval=None,
                close_timeout=1,
                open_timeout=10,
                max_size=MAX_FRAME_BYTES * 4,  # larger frames are counted by parse_frame, not fatal
                max_queue=64,
            )
        except (TimeoutError, OSError, websockets.exceptions.WebSocketException) as exc:
            self.open_error = f"{type(exc).__name__}: {exc}"
            return None
        self.links_opened += 1
        link = Link(self.links_opened, ws, self.inbox, self.oversized)
        self.dedupe.track(link.state)
        self.log.info("feed connected", extra={"url": self.url, "connection": link.state.number})
        return link

    def _publish_state(self) -> None:
        FEED_CONNECTED.set(1 if self.current else 0)
        FEED_CONNECTIONS.set(sum(1 for link in (self.current, self.next) if link is not None))

    async def run(self) -> None:
        try:
            while not self.stop.is_set():
                if self.current is None and not await self._connect():
                    continue
                try:
                    link, raw = await asyncio.wait_for(self.inbox.get(), timeout=0.25)
                except TimeoutError:
                    link, raw = None, None
                if link is not None:
                    if raw is None:
                        await self._ended(link)
                    else:
                        await self._message(link, raw)
                await self._check(time.monotonic())
        finally:
            for link in (self.current, self.next):
                if link is not None:
                    await link.close()
            if self.opening is not None:
                self.opening.cancel()
            self.current = self.next = None
            self._publish_state()

    async def _connect(self) -> bool:
        """No connection: open one (after a backoff delay unless the lost one had been streaming)."""
        link = await self._open()
        if link is None:
            FEED_RECONNECTS.inc()
            delay = self.backoff.next_delay()
            self.log.warning(
                "feed disconnected, reconnecting", extra={"reason": self.open_error, "retry_in_s": round(delay, 2)}
            )
            await sleep_or_stop(self.stop, delay)
            return False
        self.current = link
        self._publish_state()
        return True

    async def _message(self, link: Link, raw: Any) -> None:
        state = link.state
        state.last_message_at = time.monotonic()
        if link is not self.current and link is not self.next:
            return  # a connection being closed: what it still had is not needed
        result = await self.on_frame(state, raw)
        if result.shutdown:
            if link is self.current:
                self._start_rotation("server_shutdown")
            return
        if result.rejected or not result.tickers:
            return
        event_time = max(t.event_time for t in result.tickers)
        first = state.first_event_time is None
        state.saw_frame(event_time, time.monotonic())
        if link is self.current:
            self.backoff.reset()
            if first and self.lost is not None:
                old, cause = self.lost
                self._gap(cause, old, event_time)
                self.lost = None
        elif link is self.next and self.current is not None and handover_ready(self.current.state, state):
            await self._hand_over()

    def _gap(self, cause: str, old: LinkState | None, first_new: int) -> None:
        gap = self.gaps.record(cause, old, first_new)
        FEED_GAPS.labels(cause).inc()
        FEED_GAP_SECONDS.labels(cause).inc(gap.seconds)
        FEED_LAST_GAP.set(gap.seconds)
        log = self.log.warning if gap.seconds > 0 else self.log.info
        log("feed connection replaced", extra={"cause": cause, "missed_seconds": gap.seconds})

    def _start_rotation(self, reason: str) -> None:
        if self.next is not None or self.opening is not None:
            return
        self.rotation_reason = reason
        self.rotation_started = time.monotonic()
        self.log.info("feed rotation: opening the new connection first", extra={"reason": reason})
        self.opening = asyncio.create_task(self._open())

    async def _hand_over(self) -> None:
        """The new connection becomes the feed; the old one is closed (in the background: its close
        handshake must not hold up frames)."""
        old, new = self.current, self.next
        assert old is not None and new is not None and new.state.first_event_time is not None
        self._gap(self.rotation_reason, old.state, new.state.first_event_time)
        self.rotations += 1
        FEED_ROTATIONS.labels(self.rotation_reason).inc()
        self.current, self.next = new, None
        self._retire(old)
        self._publish_state()

    def _retire(self, link: Link) -> None:
        self.dedupe.retire(link.state)
        task = asyncio.create_task(link.close())
        task.add_done_callback(lambda _t: gc.collect())  # see _ended: a dead connection's buffers

    async def _ended(self, link: Link) -> None:
        reason = link.end_reason or "closed"
        if link is self.next:
            self.next = None
            self.dedupe.retire(link.state)
            self.retry_rotation_at = time.monotonic() + ROTATION_RETRY_SECONDS
            self.log.warning("feed rotation: the new connection ended first", extra={"reason": reason})
        elif link is self.current:
            await self._lose(link, "closed", reason)
        self._publish_state()

    async def _lose(self, link: Link, cause: str, reason: str) -> None:
        """The current connection is gone unplanned: a rotation in flight takes over, else reconnect."""
        healthy = link.state.frames > 0 and time.monotonic() - link.state.opened_at >= HEALTHY_LINK_SECONDS
        self.current = None
        self._retire(link)
        FEED_RECONNECTS.inc()
        if self.next is not None:
            self.current, self.next = self.next, None
            if self.current.state.first_event_time is not None:
                self._gap(cause, link.state, self.current.state.first_event_time)
            else:
                self.lost = (link.state, cause)
            return
        self.lost = (link.state, cause)
        # A dropped connection leaves reference cycles (exception, traceback, protocol) that hold its
        # read buffers - up to max_size. Collect them now: left to the GC's own pace, a feed that keeps
        # dropping the connection grows the heap by megabytes per reconnect up to the memory limit.
        gc.collect()
        delay = 0.0 if healthy else self.backoff.next_delay()
        self.log.warning("feed disconnected, reconnecting", extra={"reason": reason, "retry_in_s": round(delay, 2)})
        if delay:
            await sleep_or_stop(self.stop, delay)

    async def _check(self, now: float) -> None:
        if self.opening is not None and self.opening.done():
            link = self.opening.result()
            self.opening = None
            if link is None:
                self.retry_rotation_at = now + ROTATION_RETRY_SECONDS
                self.log.warning("feed rotation: the new connection failed", extra={"reason": self.open_error})
            elif self.current is None:
                self.current = link  # the old one died meanwhile: this one is the feed now
            else:
                self.next = link
            self._publish_state()
        current = self.current
        if current is None:
            return
        if silent_for(current.state, now) > self.silence_seconds:
            await self._lose(current, "silence", f"no message for {self.silence_seconds:g} s")
        elif self.next is not None:
            if silent_for(self.next.state, now) > self.silence_seconds:
                link, self.next = self.next, None
                self._retire(link)
            elif now - self.rotation_started > HANDOVER_SECONDS and self.next.state.first_event_time is not None:
                await self._hand_over()  # the old one never caught up (it went quiet): what it missed is a gap
        elif now >= self.retry_rotation_at and rotation_due(current.state, now, self.rotate_seconds):
            self._start_rotation("rotation")

    def facts(self) -> dict[str, object]:
        now = time.monotonic()
        current = self.current
        return {
            "feed_connection": None if current is None else current.state.number,
            "feed_connection_age_seconds": None if current is None else round(now - current.state.opened_at, 1),
            "feed_connections_open": sum(1 for link in (self.current, self.next) if link is not None),
            "feed_rotations": self.rotations,
            "feed_gaps": self.gaps.as_dict(),
            "duplicate_ticks_dropped": self.dedupe.dropped,
        }
