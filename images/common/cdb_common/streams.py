"""Redis Streams with consumer groups: at-least-once delivery, acked after commit, trimmed, reclaimed.

Consumers: XGROUP CREATE ... MKSTREAM, XREADGROUP, XACK only after the handler's Postgres transaction
committed and its output events were added. At start (and after every Redis reconnect) a consumer
first re-reads its own pending entries (id 0), then takes over entries idle for longer than
`claim_idle_ms` from dead consumers with XAUTOCLAIM, and repeats the claim periodically.
Handlers must be idempotent (producer-chosen ids + ON CONFLICT DO NOTHING) because of redelivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import redis.asyncio as aioredis
from redis import exceptions as redis_errors

from .backoff import Backoff, Outage
from .config import RedisSettings
from .db import Conflict, Database, Unavailable, sleep_or_stop
from .events import Event, EventError, now_ms
from .metrics import (
    DEPENDENCY_UP,
    EVENT_LATENCY,
    EVENTS_CONSUMED,
    EVENTS_INVALID,
    EVENTS_PUBLISHED,
    EVENTS_RECLAIMED,
    RECONNECTS,
    STREAM_LAG,
    STREAM_PENDING,
)

# Bounded streams: ~MAXLEN entries are kept (approximate trimming is O(1) per XADD).
DEFAULT_MAXLEN = {"cdb:ticks": 200_000, "cdb:signals": 100_000, "cdb:orders": 100_000, "cdb:fills": 100_000}
DEAD_LETTER_STREAM = "cdb:deadletter"
# The last price of every symbol the screener published (a hash: symbol -> price), written with the ticks.
# Execution marks and fills from it instead of consuming every tick on the path its orders take.
MARKS_KEY = "cdb:marks"


# KEYS: the stream, the marks hash. ARGV: maxlen, the number of marks n, n (symbol, price) pairs, then the
# events' JSON. HSET takes the pairs in chunks: Lua's unpack() has a limit on how many values it returns.
ADD_BATCH = """
local maxlen, n = ARGV[1], tonumber(ARGV[2])
local last = 2 + 2 * n
for first = 3, last, 200 do
  redis.call('HSET', KEYS[2], unpack(ARGV, first, math.min(first + 199, last)))
end
for i = last + 1, #ARGV do
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', maxlen, '*', 'data', ARGV[i])
end
return #ARGV - last
"""


def marks_key(book: str) -> str:
    """The marks hash of one feed's book (`cdb:marks:live`, `cdb:marks:replay`): replay prices never mark
    the live account. Probe symbols (unique per probe) go into the hash of the screener's feed."""
    return f"{MARKS_KEY}:{book}"


REDIS_ERRORS: tuple[type[BaseException], ...] = (
    redis_errors.ConnectionError,  # includes BusyLoadingError while Redis replays its AOF
    redis_errors.TimeoutError,
    ConnectionError,
    OSError,
    asyncio.TimeoutError,
)

Outputs = Sequence[tuple[str, Event]]
Handler = Callable[[str, dict[str, Any]], Awaitable[Outputs]]


def consumer_name() -> str:
    """The container's hostname: stable across restarts of one container, so its pending entries come back."""
    return socket.gethostname()


class Bus:
    """The Redis connection of a service (redis-py asyncio; its pool reconnects on the next command)."""

    def __init__(self, settings: RedisSettings, log: logging.Logger) -> None:
        self.log = log
        self.outage = Outage("redis", log, "redis connection")
        # Typed as Any: the images run redis-py 4.3, whose replies differ from newer stubs.
        self.redis: Any = aioredis.Redis(
            host=settings.host,
            port=settings.port,
            password=settings.password or None,
            decode_responses=True,
            socket_connect_timeout=5,
            # Must exceed XREADGROUP's BLOCK time, or every idle read would look like a timeout.
            socket_timeout=15,
            health_check_interval=30,
        )
        self._add_batch: Any = None  # the ADD_BATCH script, registered on first use
        self.groups: set[tuple[str, str]] = set()  # (stream, group) this service consumes: its backlog is exported

    @property
    def connected(self) -> bool:
        return self.outage.connected

    def mark_up(self) -> None:
        if not self.outage.connected:
            DEPENDENCY_UP.labels("redis").set(1)
        self.outage.up()

    def mark_down(self, exc: BaseException, retry_in: float) -> None:
        DEPENDENCY_UP.labels("redis").set(0)
        RECONNECTS.labels("redis").inc()
        self.outage.down(exc, retry_in)

    async def monitor(self, stop: asyncio.Event, interval: float = 5.0) -> None:
        """PING periodically so /health knows about Redis even when no event flows."""
        backoff = Backoff(base=0.5, cap=5.0)
        while not stop.is_set():
            try:
                await self.redis.ping()
                self.mark_up()
                await self.export_backlog()
                backoff.reset()
                delay = interval
            except REDIS_ERRORS as exc:
                delay = backoff.next_delay()
                self.mark_down(exc, delay)
            await sleep_or_stop(stop, delay)

    async def export_backlog(self) -> None:
        """Pending and lag of each group this service consumes (XINFO GROUPS; Redis >= 7 reports lag, and
        none while it cannot tell, e.g. right after a trim past the group): what the lag alerts read."""
        for stream, group in sorted(self.groups):
            try:
                infos = await self.redis.xinfo_groups(stream)
            except redis_errors.ResponseError:  # no such stream yet (the group is made on first read)
                continue
            for info in infos:
                name = info.get("name")
                if (name.decode() if isinstance(name, bytes) else name) != group:
                    continue
                STREAM_PENDING.labels(stream, group).set(int(info.get("pending") or 0))
                lag = info.get("lag")
                if lag is not None:
                    STREAM_LAG.labels(stream, group).set(int(lag))

    async def publish(self, items: Outputs) -> None:
        """XADD each (stream, event) with MAXLEN ~ trimming, in one round trip."""
        if not items:
            return
        pipe = self.redis.pipeline(transaction=False)
        counts: dict[str, int] = {}
        for stream, event in items:
            pipe.xadd(stream, event.to_fields(), maxlen=DEFAULT_MAXLEN.get(stream, 100_000), approximate=True)
            counts[stream] = counts.get(stream, 0) + 1
        await pipe.execute()
        for stream, count in counts.items():
            EVENTS_PUBLISHED.labels(stream).inc(count)

    async def publish_json(
        self, stream: str, payloads: Sequence[str], marks: dict[str, str] | None = None, book: str = "live"
    ) -> None:
        """XADD events already in their JSON form (the screener serialises each tick once, as it queues it);
        `marks` (symbol -> last price) go to `book`'s marks hash first, all in one command: a Lua script
        (ADD_BATCH) that Redis runs atomically. A pipeline of one XADD per tick cost the screener, the
        stack's busiest process at full speed, 40 % of its time packing commands and parsing one reply each."""
        if not payloads:
            return
        args: list[Any] = [DEFAULT_MAXLEN.get(stream, 100_000), len(marks or ())]
        for symbol, price in (marks or {}).items():
            args += (symbol, price)
        args += payloads
        if self._add_batch is None:
            self._add_batch = self.redis.register_script(ADD_BATCH)
        # redis-py runs EVALSHA and loads the script again when Redis lost it (NOSCRIPT after a restart)
        await self._add_batch(keys=[stream, marks_key(book)], args=args)
        EVENTS_PUBLISHED.labels(stream).inc(len(payloads))

    async def ensure_group(self, stream: str, group: str) -> None:
        try:
            # Start at 0: events produced before this consumer ever ran are still handled.
            await self.redis.xgroup_create(stream, group, id="0", mkstream=True)
        except redis_errors.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def close(self) -> None:
        closer = getattr(self.redis, "aclose", None) or self.redis.close
        with contextlib.suppress(Exception):  # shutting down; nothing left to save
            await closer()


class StreamConsumer:
    """Consumes one stream in one group, one entry at a time, in order."""

    def __init__(
        self,
        bus: Bus,
        db: Database | None,
        stream: str,
        group: str,
        handler: Handler,
        *,
        log: logging.Logger,
        batch: int = 500,
        # XREADGROUP's BLOCK: how long an idle read waits. It bounds how late SIGTERM is seen (the read is
        # never cancelled: an entry Redis delivered must be handled or stay pending for this consumer
        # name), so it is short; an idle consumer costs Redis ten cheap reads a second.
        block_ms: int = 100,
        claim_idle_ms: int = 60_000,
        claim_every_s: float = 30.0,
        name: str | None = None,
        on_start: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.bus = bus
        self.db = db
        self.stream = stream
        self.group = group
        self.handler = handler
        self.log = log
        self.batch = batch
        self.block_ms = block_ms
        self.claim_idle_ms = claim_idle_ms
        self.claim_every_s = claim_every_s
        self.name = name or consumer_name()
        # Runs once, after the group exists and before the first entry is handled (state restore);
        # retried with backoff while Redis or Postgres is down.
        self.on_start = on_start
        self.last_event_at: float | None = None  # monotonic time of the last handled entry
        self.handled = 0
        # Entries handled but not acked yet: their XACK goes to Redis together with the next read, one round
        # trip per batch instead of two (at full speed the consumer spent half its time waiting on replies).
        # A crash before that read leaves them pending: they are redelivered, and handlers are idempotent.
        self._unacked: list[str] = []
        self._consumed = EVENTS_CONSUMED.labels(stream)  # label lookups cost more than the increment
        bus.groups.add((stream, group))

    async def run(self, stop: asyncio.Event) -> None:
        try:
            await self._consume(stop)
        finally:
            with contextlib.suppress(*REDIS_ERRORS):  # stopping: what is not acked now is redelivered later
                await self._flush_acks()

    async def _consume(self, stop: asyncio.Event) -> None:
        backoff = Backoff(base=0.5, cap=5.0)
        needs_setup = True
        next_claim = 0.0
        while not stop.is_set():
            try:
                if needs_setup:
                    await self._flush_acks()
                    await self.bus.ensure_group(self.stream, self.group)
                    self.bus.mark_up()
                    if self.on_start is not None:
                        await self.on_start()
                        self.on_start = None
                    await self._drain_own_pending(stop)
                    needs_setup = False
                if time.monotonic() >= next_claim:
                    await self._claim_stale(stop)
                    next_claim = time.monotonic() + self.claim_every_s
                reply = await self._ack_and_read()
                self.bus.mark_up()
                backoff.reset()
                for _stream, entries in reply or []:
                    await self._handle_entries(entries, stop)
            except redis_errors.ResponseError as exc:
                if "NOGROUP" in str(exc):
                    # Redis lost the stream or the group (restart without persistence): recreate it.
                    self.log.warning("consumer group missing, recreating", extra={"stream": self.stream})
                    self._unacked = []  # their group is gone: nothing left to ack them in
                    needs_setup = True
                    continue
                raise
            except REDIS_ERRORS as exc:
                delay = backoff.next_delay()
                self.bus.mark_down(exc, delay)
                needs_setup = True  # re-read own pending entries after the reconnect
                await sleep_or_stop(stop, delay)
            except Unavailable as exc:  # Postgres, during on_start
                delay = backoff.next_delay()
                if self.db is not None:
                    self.db.report_failure(exc, delay)
                needs_setup = True
                await sleep_or_stop(stop, delay)

    async def _ack_and_read(self) -> Any:
        """XACK what was handled and XREADGROUP the next batch, in one round trip."""
        if not self._unacked:
            return await self.bus.redis.xreadgroup(
                self.group, self.name, {self.stream: ">"}, count=self.batch, block=self.block_ms
            )
        pipe = self.bus.redis.pipeline(transaction=False)
        pipe.xack(self.stream, self.group, *self._unacked)
        pipe.xreadgroup(self.group, self.name, {self.stream: ">"}, count=self.batch, block=self.block_ms)
        _acked, reply = await pipe.execute()
        self._unacked = []
        return reply

    async def _flush_acks(self) -> None:
        if self._unacked:
            await self.bus.redis.xack(self.stream, self.group, *self._unacked)
            self._unacked = []

    async def _drain_own_pending(self, stop: asyncio.Event) -> None:
        """Entries delivered to this consumer name earlier but never acked (crash, Redis outage)."""
        start = "0"
        while not stop.is_set():
            reply = await self.bus.redis.xreadgroup(self.group, self.name, {self.stream: start}, count=self.batch)
            entries = reply[0][1] if reply else []
            if not entries:
                return
            await self._handle_entries(entries, stop)
            await self._flush_acks()
            start = entries[-1][0]

    async def _claim_stale(self, stop: asyncio.Event) -> None:
        start = "0-0"
        while not stop.is_set():
            reply = await self.bus.redis.xautoclaim(
                self.stream, self.group, self.name, min_idle_time=self.claim_idle_ms, start_id=start, count=self.batch
            )
            start, entries = reply[0], [e for e in reply[1] if e and e[0]]
            if entries:
                EVENTS_RECLAIMED.labels(self.stream).inc(len(entries))
                self.log.warning(
                    "reclaimed pending entries of a dead consumer", extra={"stream": self.stream, "count": len(entries)}
                )
                await self._handle_entries(entries, stop)
                await self._flush_acks()
            if start in ("0-0", b"0-0"):
                return

    async def _handle_entries(self, entries: list[Any], stop: asyncio.Event) -> None:
        """Handle entries in order; each handled one joins `_unacked` (its outputs are already published)."""
        unacked = self._unacked
        handled = 0
        try:
            for entry_id, fields in entries:
                if stop.is_set():
                    return  # unacked entries stay pending and come back after the restart
                if not fields:
                    unacked.append(entry_id)  # trimmed while pending: nothing left to handle
                    continue
                outputs = await self._handle_one(entry_id, fields, stop)
                if outputs is None:
                    return  # stopping while the database was down: leave it pending
                if outputs:
                    await self.bus.publish(outputs)
                unacked.append(entry_id)
                handled += 1
        finally:
            if handled:  # counted per batch: a metric update per entry costs more than most handlers
                self.handled += handled
                self.last_event_at = time.monotonic()
                self._consumed.inc(handled)

    async def _handle_one(self, entry_id: str, fields: dict[str, Any], stop: asyncio.Event) -> Outputs | None:
        backoff: Backoff | None = None  # built on the first outage only: it costs more than handling a tick
        while True:
            try:
                return await self.handler(entry_id, fields)
            except EventError as exc:
                # A producer bug, not an outage: keep the entry for forensics and move on.
                EVENTS_INVALID.labels(self.stream).inc()
                self.log.error(
                    "invalid event skipped", extra={"stream": self.stream, "entry_id": entry_id, "error": str(exc)}
                )
                await self.bus.redis.xadd(
                    DEAD_LETTER_STREAM,
                    {"stream": self.stream, "entry_id": entry_id, "error": str(exc), "data": str(fields)[:10_000]},
                    maxlen=10_000,
                    approximate=True,
                )
                return []
            except Conflict:
                await asyncio.sleep(0.05)  # lost a race with another writer: the retry will see its commit
            except Unavailable as exc:
                backoff = backoff or Backoff(base=0.5, cap=5.0)
                delay = backoff.next_delay()
                if self.db is not None:
                    self.db.report_failure(exc, delay)
                await sleep_or_stop(stop, delay)
                if stop.is_set():
                    return None


_LATENCY_CHILDREN: dict[str, Any] = {}


def observe_latency(stream: str, received_at: int) -> None:
    """Record the time since the screener received the originating frame."""
    child = _LATENCY_CHILDREN.get(stream)
    if child is None:
        child = _LATENCY_CHILDREN[stream] = EVENT_LATENCY.labels(stream)
    child.observe(max(0.0, (now_ms() - received_at) / 1000.0))
