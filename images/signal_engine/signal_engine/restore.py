"""Signal engine state after a restart: the rolling windows and cooldowns come back, so a restart (or a
recreate during `rebuild`) changes no decision.

- Cooldowns: from `signals` (the latest event time per symbol and side). Exact: it is what was emitted.
- Windows: the ticks the engine already handled are still in `cdb:ticks` (the group's entries up to
  its last-delivered id, trimmed at ~200,000). They are read back, newest first, until the last
  SIGNAL_WINDOW_SECONDS + 60 s of event time are covered, and replayed into the windows without
  deciding anything. A symbol quiet for longer starts from its last price in `market_snapshots`
  (the price in effect at its window start, which is all its window needs).
- Entries delivered but never acked (the old container's, claimed here at once) are left out of the
  replay and their signals out of the cooldowns: they are handled again as if for the first time, in
  order, so they yield the same signals (same derived ids) as before.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from cdb_common.events import derived_id
from cdb_common.timeutil import ms_to_datetime

from .momentum import MomentumEngine

CHUNK = 2000
MAX_ENTRIES = 250_000  # more than the stream keeps: reading back always ends
MARGIN_MS = 60_000

SELECT_COOLDOWNS = """
SELECT symbol, side, max(tick_time) FROM signals
WHERE NOT is_probe AND portfolio = %s AND NOT (signal_id = ANY(%s::uuid[]))
GROUP BY symbol, side
"""
SELECT_LAST_PRICES = """
SELECT DISTINCT ON (symbol) symbol, price, event_time FROM market_snapshots
WHERE NOT is_probe AND minute >= %(since)s AND event_time < %(before)s
  AND (source = 'replay') = (%(book)s = 'replay')
ORDER BY symbol, event_time DESC
"""


@dataclass(frozen=True)
class PastTick:
    entry_id: str
    symbol: str
    price: Decimal
    tick_time: int


@dataclass
class RestoreResult:
    ticks: list[PastTick] = field(default_factory=list)  # oldest first
    pending_ids: list[str] = field(default_factory=list)
    pending_tick_ids: list[str] = field(default_factory=list)


def datetime_ms(value: datetime) -> int:
    """Epoch ms of an aware datetime, exactly (integer arithmetic)."""
    delta = value - datetime(1970, 1, 1, tzinfo=value.tzinfo)
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def parse_past(entry_id: str, fields: dict[str, Any], book: str = "live") -> tuple[PastTick | None, str | None]:
    """(tick, event_id) of a stream entry; tick None for probes, another feed's ticks (its book's windows
    are not this engine's) and entries that are no valid tick."""
    try:
        data = json.loads(fields["data"])
        event_id = str(data["event_id"])
        if data.get("is_probe") or data.get("portfolio", "live") != book:
            return None, event_id
        tick_time = data["tick_time"]
        if isinstance(tick_time, bool) or not isinstance(tick_time, int):
            return None, event_id
        price = Decimal(str(data["price"]))
        if not price.is_finite() or price <= 0:
            return None, event_id
        return PastTick(entry_id, str(data["symbol"]), price, tick_time), event_id
    except (KeyError, TypeError, ValueError, ArithmeticError):
        return None, None


def covered(newest_first: list[PastTick], window_ms: int) -> bool:
    """True once the ticks read back reach window + margin behind the newest event time."""
    if not newest_first:
        return False
    newest = max(t.tick_time for t in newest_first[: CHUNK * 2])
    return newest_first[-1].tick_time < newest - window_ms - MARGIN_MS


def apply(
    engine: MomentumEngine,
    ticks: Iterable[PastTick],
    cooldowns: Iterable[tuple[str, str, int]],
    last_prices: Iterable[tuple[str, Decimal, int]],
) -> int:
    """Seed the engine: last prices first (oldest first), then the ticks in stream order, then cooldowns."""
    restored = 0
    for symbol, price, tick_time in sorted(last_prices, key=lambda row: row[2]):
        engine.restore_point(symbol, price, tick_time)
    for tick in ticks:
        restored += engine.restore_point(tick.symbol, tick.price, tick.tick_time)
    for symbol, side, tick_time in cooldowns:
        engine.restore_cooldown(symbol, side, tick_time)
    return restored


async def read_back(
    redis: Any, stream: str, group: str, consumer: str, window_ms: int, book: str = "live"
) -> RestoreResult:
    """Claim every pending entry for `consumer` and read the handled ticks back (see the module doc)."""
    result = RestoreResult()
    groups = await redis.xinfo_groups(stream)
    info = next((g for g in groups if g.get("name") == group), None)
    if info is None:
        return result
    last_delivered = str(info.get("last-delivered-id") or "0-0")
    pending = await redis.xpending_range(stream, group, "-", "+", MAX_ENTRIES)
    if pending:
        result.pending_ids = [str(p["message_id"]) for p in pending]
        foreign = [str(p["message_id"]) for p in pending if p["consumer"] != consumer]
        for start in range(0, len(foreign), CHUNK):
            # The previous container is gone: its unacked entries are handled now and in order,
            # not 60 s later (XAUTOCLAIM) behind newer ticks.
            await redis.xclaim(stream, group, consumer, 0, foreign[start : start + CHUNK], justid=True)
        end = "(" + min(result.pending_ids, key=_id_key)
    else:
        end = last_delivered
    if end in ("0-0", "(0-0"):
        return result
    newest_first: list[PastTick] = []
    read = 0
    while read < MAX_ENTRIES:
        entries = await redis.xrevrange(stream, max=end, min="-", count=CHUNK)
        if not entries:
            break
        read += len(entries)
        for entry_id, fields in entries:
            tick, _event_id = parse_past(entry_id, fields or {}, book)
            if tick is not None:
                newest_first.append(tick)
        end = "(" + str(entries[-1][0])
        if covered(newest_first, window_ms):
            break
    if result.pending_ids:
        wanted = set(result.pending_ids)
        low, high = min(wanted, key=_id_key), max(wanted, key=_id_key)
        while wanted:
            entries = await redis.xrange(stream, low, high, count=CHUNK)
            if not entries:
                break
            for entry_id, fields in entries:
                if entry_id in wanted:
                    _tick, event_id = parse_past(entry_id, fields or {})
                    if event_id:
                        result.pending_tick_ids.append(event_id)
            low = "(" + str(entries[-1][0])
    newest_first.reverse()
    result.ticks = newest_first
    return result


def _id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


async def restore(
    engine: MomentumEngine,
    redis: Any,
    conn_factory: Any,
    stream: str,
    group: str,
    consumer: str,
    log: logging.Logger,
    book: str = "live",
) -> dict[str, int]:
    """Everything above, against Redis and Postgres; returns what was restored (for the log)."""
    window_ms = engine.config.window_seconds * 1000
    past = await read_back(redis, stream, group, consumer, window_ms, book)
    excluded = [derived_id(tick_id, "signal") for tick_id in past.pending_tick_ids]
    before = past.ticks[0].tick_time if past.ticks else None
    async with conn_factory() as conn:
        cooldowns = [
            (symbol, side, datetime_ms(tick_time))
            for symbol, side, tick_time in await (await conn.execute(SELECT_COOLDOWNS, (book, excluded))).fetchall()
        ]
        last_prices: list[tuple[str, Decimal, int]] = []
        if before is not None or not past.ticks:
            bound = ms_to_datetime(before) if before is not None else None
            if bound is None:
                row = await (await conn.execute("SELECT max(event_time) FROM market_snapshots")).fetchone()
                bound = row[0] + timedelta(milliseconds=1) if row and row[0] else None
            if bound is not None:
                since = bound - max(timedelta(hours=1), timedelta(milliseconds=window_ms + MARGIN_MS))
                rows = await (
                    await conn.execute(SELECT_LAST_PRICES, {"since": since.replace(second=0, microsecond=0),
                                                            "before": bound, "book": book})
                ).fetchall()  # fmt: skip
                last_prices = [(s, p, datetime_ms(t)) for s, p, t in rows]
    restored = apply(engine, past.ticks, cooldowns, last_prices)
    facts = {
        "ticks_replayed": restored,
        "pending_redelivered": len(past.pending_ids),
        "cooldowns": len(cooldowns),
        "last_prices": len(last_prices),
        "symbols": engine.symbols(),
    }
    log.info("state restored", extra=facts)
    return facts
