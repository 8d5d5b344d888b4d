"""Screener service: exchange websocket → filtered ticks on cdb:ticks + market_snapshots (batched).

Three loops: the feed (feed.py: websocket connections under the exchange's rules - silence detected,
`serverShutdown` and the 24 h limit met by a make-before-break rotation, ticks published once, every
gap reported), the publisher (XADD from a bounded in-memory queue, so a Redis
restart loses nothing that fits in the queue), and the snapshot flusher (one upsert per symbol and
minute every few seconds, kept and retried while Postgres is down). POST /probe injects the
end-to-end probe's synthetic frames through the same path as real frames. A fourth loop reads what the
account holds (cdb_common.holdings): held symbols pass the entry filters, flagged `entry_allowed=false`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections import deque
from decimal import Decimal, InvalidOperation
from itertools import islice
from typing import Any

from aiohttp import web
from cdb_common.backoff import Backoff
from cdb_common.config import Settings, env_int
from cdb_common.db import Unavailable, sleep_or_stop
from cdb_common.events import STREAM_TICKS, now_ms, random_ids, tick_json
from cdb_common.health import HealthReport
from cdb_common.holdings import HoldingsWatcher
from cdb_common.retention import MARKET_SNAPSHOTS
from cdb_common.retention_task import RetentionTask
from cdb_common.runtime import BaseService
from cdb_common.streams import REDIS_ERRORS
from prometheus_client import Counter, Gauge

from .feed import Feed
from .feedlinks import LinkState
from .frames import FrameResult, MiniTicker, parse_frame, probe_frame
from .snapshots import UPSERT_SNAPSHOTS, snapshot_rows_json

DEFAULT_FEED_URL = "wss://stream.binance.com:9443/ws/!miniTicker@arr"
ROTATE_SECONDS = 23 * 3600 + 50 * 60  # Binance closes a connection after 24 h: rotate before, at this age
# ticks of a feed frame queued per turn of the event loop (a 300-pair frame: six turns, ~1.5 ms each)
FEED_SLICE = 50

FRAMES_RECEIVED = Counter("cdb_frames_received_total", "Websocket messages received")
FRAMES_REJECTED = Counter("cdb_frames_rejected_total", "Frames or frame items dropped", ["reason"])
TICKS_RECEIVED = Counter("cdb_ticks_received_total", "Valid miniTicker items received (before filtering)")
TICKS_FILTERED = Counter("cdb_ticks_filtered_total", "Items filtered out", ["reason"])
TICKS_HELD = Counter(
    "cdb_ticks_held_total", "Ticks that failed an entry filter but flow because the symbol is held (marks, exits)"
)
TICKS_PUBLISHED = Counter("cdb_ticks_published_total", "Ticks added to cdb:ticks")
TICKS_DROPPED = Counter("cdb_ticks_dropped_total", "Ticks dropped because the publish queue overflowed")
SNAPSHOT_ROWS = Counter("cdb_snapshot_rows_written_total", "market_snapshots rows upserted")
TICKS_DUPLICATE = Counter(
    "cdb_ticks_duplicate_total", "Ticks not published again: another connection delivered them (rotation overlap)"
)
PROBES = Counter("cdb_probes_total", "End-to-end probes injected")
LAST_FRAME = Gauge(
    "cdb_feed_last_frame_timestamp_seconds",
    "When the last valid feed frame arrived (probes do not count); the service's start before the first",
)


class ScreenerService(BaseService):
    name = "screener"
    default_port = 8000

    def __init__(self, settings: Settings, log: logging.Logger) -> None:
        super().__init__(settings, log)
        self.feed_url = settings.get("FEED_URL", DEFAULT_FEED_URL)
        # market_snapshots.source: where the prices came from (a replay must never pass for the exchange).
        self.source = settings.get("FEED_SOURCE", "binance" if "binance" in self.feed_url else "replay")
        self.min_volume = settings.limits.min_volume
        self.stale_seconds = env_int(settings.env, "FRAME_STALE_SECONDS", 30, minimum=1)
        self.flush_seconds = env_int(settings.env, "SNAPSHOT_FLUSH_SECONDS", 5, minimum=1)
        self.max_queue = env_int(settings.env, "MAX_PENDING_TICKS", 100_000, minimum=1000)
        # (symbol, price, tick event JSON): serialised once, with what cdb:marks needs beside it
        self.queue: deque[tuple[str, str, str]] = deque()
        self.queue_ready = asyncio.Event()
        self.snapshots: dict[tuple[str, int], tuple[MiniTicker, bool]] = {}
        self.last_frame_at: float | None = None
        self.feed = Feed(
            self.feed_url,
            self.stop,
            log,
            self.on_feed_frame,
            silence_seconds=env_int(settings.env, "FEED_SILENCE_SECONDS", 30, minimum=1),
            rotate_seconds=env_int(settings.env, "FEED_ROTATE_SECONDS", ROTATE_SECONDS, minimum=1),
            oversized=lambda: FRAMES_REJECTED.labels("oversized").inc(),
        )
        self.published = 0
        self.dropped = 0
        self.http.add_route("POST", "/probe", self.probe)
        assert self.db is not None
        self.holdings = HoldingsWatcher(
            self.db, env_int(settings.env, "HELD_REFRESH_SECONDS", 1, minimum=1), settings.feed
        )
        self.retention = RetentionTask(MARKET_SNAPSHOTS, settings, log)  # ages out old market_snapshots
        # computed at each scrape from the monotonic clock (no cost per frame); the feed-stale alert
        # counts from the service's start until a first frame came
        started_wall = time.time()
        LAST_FRAME.set_function(lambda: started_wall + ((self.last_frame_at or self.started) - self.started))

    def loops(self) -> list[Any]:
        return [self.feed_loop(), self.publish_loop(), self.flush_loop(), self.holdings.run(self.stop), self._wake(),
                self.retention.run(self.stop)]  # fmt: skip

    async def _wake(self) -> None:
        """SIGTERM wakes the publisher at once: it drains the queue and returns instead of sleeping out its
        idle wait (up to 0.5 s of every `docker stop`)."""
        await self.stop.wait()
        self.queue_ready.set()

    async def open(self) -> None:
        # Know what is held before the first frame, so a restart never drops a held symbol's ticks.
        with contextlib.suppress(Unavailable, TimeoutError):
            await asyncio.wait_for(self.holdings.refresh(), timeout=10)

    # -- frames -----------------------------------------------------------------------------------
    def handle_frame(self, raw: str | bytes, *, is_probe: bool = False) -> FrameResult:
        """The one path every frame takes, real or probe: parse, filter, queue ticks and snapshots."""
        result = self._accept(raw, is_probe)
        if result.tickers and not result.rejected and not result.shutdown:
            self._emit(result, result.tickers, now_ms(), is_probe)
        return result

    async def handle_feed_frame(self, raw: str | bytes, link: LinkState | None = None) -> FrameResult:
        """handle_frame for the feed: the ticks are queued in slices with the event loop let in between,
        so the publisher sends the first slice to Redis (and the signal engine works on it) while the
        rest of a 300-pair frame is still being turned into ticks, and a probe waiting on the HTTP port
        is not held behind the whole frame."""
        result = self._accept(raw, False)
        if not result.tickers or result.rejected or result.shutdown:
            return result
        tickers = result.tickers
        if link is not None:
            accept = self.feed.dedupe.accept
            tickers = [t for t in tickers if accept(link, t.symbol, t.event_time)]
            if len(tickers) < len(result.tickers):
                TICKS_DUPLICATE.inc(len(result.tickers) - len(tickers))
        received = now_ms()
        for start in range(0, len(tickers), FEED_SLICE):
            if start:
                await asyncio.sleep(0)
            self._emit(result, tickers[start : start + FEED_SLICE], received, False)
        return result

    def _accept(self, raw: str | bytes, is_probe: bool) -> FrameResult:
        FRAMES_RECEIVED.inc()
        result = parse_frame(raw, self.min_volume, held=self.holdings.current.symbols)
        if result.rejected:
            FRAMES_REJECTED.labels(result.rejected).inc()
            self.log.debug("frame rejected", extra={"reason": result.rejected})
            return result
        if result.shutdown:
            return result
        if not is_probe:
            self.last_frame_at = time.monotonic()
        if result.bad_items:
            FRAMES_REJECTED.labels("bad_item").inc(result.bad_items)
        for reason, count in result.filtered.items():
            TICKS_FILTERED.labels(reason).inc(count)
        TICKS_RECEIVED.inc(len(result.tickers) + sum(result.filtered.values()))
        if result.exit_only:
            TICKS_HELD.inc(sum(1 for t in result.tickers if t.symbol in result.exit_only))
        return result

    def _emit(self, result: FrameResult, tickers: list[MiniTicker], received: int, is_probe: bool) -> None:
        for ticker, event_id in zip(tickers, random_ids(len(tickers)), strict=True):
            data = tick_json(
                event_id, ticker.symbol, ticker.close, ticker.open, ticker.high, ticker.low,
                ticker.base_volume, ticker.quote_volume, ticker.event_time, received, received, is_probe,
                "probe" if is_probe else self.source, ticker.symbol not in result.exit_only, self.settings.feed,
            )  # fmt: skip
            self._enqueue((ticker.symbol, format(ticker.close, "f"), data))
            key = (ticker.symbol, ticker.event_time // 60_000)
            previous = self.snapshots.get(key)
            if previous is None or previous[0].event_time <= ticker.event_time:
                self.snapshots[key] = (ticker, is_probe)

    def _enqueue(self, tick: tuple[str, str, str]) -> None:
        if len(self.queue) >= self.max_queue:
            self.queue.popleft()
            TICKS_DROPPED.inc()
            self.dropped += 1
            if self.dropped % 10_000 == 1:  # one warning per 10,000 drops, not one per tick
                self.log.warning("publish queue full, dropping oldest ticks", extra={"dropped": self.dropped})
        self.queue.append(tick)
        self.queue_ready.set()

    # -- feed -------------------------------------------------------------------------------------
    async def feed_loop(self) -> None:
        await self.feed.run()

    async def on_feed_frame(self, link: LinkState, raw: str | bytes) -> FrameResult:
        """A feed frame from one of the exchange connections: last_frame_at counts any of them; a tick
        another connection already delivered (a rotation's overlap) is published once."""
        return await self.handle_feed_frame(raw, link)

    # -- publisher --------------------------------------------------------------------------------
    async def publish_loop(self) -> None:
        backoff = Backoff(base=0.5, cap=5.0)
        bus = self.redis_bus
        while not self.stop.is_set() or self.queue:
            if not self.queue:
                self.queue_ready.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.queue_ready.wait(), timeout=0.5)
                continue
            batch = list(islice(self.queue, 500))
            try:
                # the last price per symbol of the batch: later ticks of a symbol overwrite earlier ones
                marks = {symbol: price for symbol, price, _data in batch}
                await bus.publish_json(STREAM_TICKS, [data for _s, _p, data in batch], marks, self.settings.feed)
            except REDIS_ERRORS as exc:
                if self.stop.is_set():
                    return  # stopping while Redis is down: nothing more can be delivered
                delay = backoff.next_delay()
                bus.mark_down(exc, delay)
                await sleep_or_stop(self.stop, delay)
                continue
            backoff.reset()
            bus.mark_up()
            for _ in batch:
                self.queue.popleft()
            self.published += len(batch)
            TICKS_PUBLISHED.inc(len(batch))

    # -- snapshots --------------------------------------------------------------------------------
    async def flush_loop(self) -> None:
        while not self.stop.is_set():
            await sleep_or_stop(self.stop, self.flush_seconds)
            await self.flush()

    async def flush(self) -> None:
        if not self.snapshots or self.db is None:
            return
        pending, self.snapshots = self.snapshots, {}
        try:
            await self.db.execute(UPSERT_SNAPSHOTS, (snapshot_rows_json(pending.values(), self.source),))
            SNAPSHOT_ROWS.inc(len(pending))
        except Unavailable as exc:
            # Keep them (newer ticks of the same minute win) and try again next round.
            for key, value in pending.items():
                current = self.snapshots.get(key)
                if current is None or current[0].event_time < value[0].event_time:
                    self.snapshots[key] = value
            self.db.report_failure(exc, self.flush_seconds)

    async def close(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.flush(), timeout=0.5)

    # -- probe ------------------------------------------------------------------------------------
    async def probe(self, request: web.Request) -> web.Response:
        """POST /probe {"probe_id": uuid, "move_pct": 5.0}: two synthetic ticks for CDBPROBE<8 hex>USDT."""
        try:
            body = await request.json(loads=lambda s: json.loads(s, parse_float=Decimal))
            probe_id = uuid.UUID(str(body["probe_id"]))
            move_pct = Decimal(str(body.get("move_pct", "5.0")))
        except (ValueError, KeyError, TypeError, InvalidOperation, AttributeError):
            return web.json_response({"error": 'body must be {"probe_id": "<uuid>", "move_pct": <number>}'}, status=400)
        if not move_pct.is_finite() or not Decimal(0) < move_pct <= Decimal(50):
            return web.json_response({"error": "move_pct must be in (0, 50]"}, status=400)
        symbol = f"CDBPROBE{probe_id.hex[:8].upper()}USDT"
        base = Decimal(100)
        moved = base * (1 + move_pct / 100)
        volume = max(self.min_volume * 10, Decimal(1_000_000))
        for frame in probe_frame(symbol, [base, moved], now_ms(), volume):
            self.handle_frame(frame, is_probe=True)
        PROBES.inc()
        self.log.info("probe injected", extra={"probe_id": str(probe_id), "symbol": symbol, "move_pct": move_pct})
        return web.json_response(
            {"probe_id": str(probe_id), "symbol": symbol, "ticks": 2, "prices": [str(base), str(moved)]}, status=202
        )

    def add_checks(self, report: HealthReport) -> None:
        age = None if self.last_frame_at is None else time.monotonic() - self.last_frame_at
        since_start = time.monotonic() - self.started
        report.checks["feed_url"] = self.feed_url
        report.checks["feed_connected"] = self.feed.connected
        report.checks["last_frame_age_seconds"] = None if age is None else round(age, 1)
        report.checks["ticks_published"] = self.published
        report.checks["pending_ticks"] = len(self.queue)
        report.checks["pending_snapshots"] = len(self.snapshots)
        report.checks["held_symbols"] = len(self.holdings.current.symbols)
        stale = (age if age is not None else since_start) > self.stale_seconds
        if stale:
            report.checks["frame_stale"] = f"no frame for more than {self.stale_seconds} s"
            report.worsen("unhealthy")
        elif not self.feed.connected:
            report.worsen("degraded")
        # last: a probe shows the first 500 characters of these facts, the verdict's reasons must be in them
        report.checks.update(self.feed.facts())
