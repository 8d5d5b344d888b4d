"""Bookkeeping of the screener's exchange connections, free of I/O: which ticks were already published
(across connections), when a connection must be rotated, and the gaps a reconnect leaves.

The exchange (SPEC §8) closes a connection after 24 h, announces maintenance with `serverShutdown`, may
go silent without closing and may close abruptly. The screener rotates before the 24 h limit by opening
the new connection before it closes the old one, and hands over once the old connection has delivered
everything up to the new one's first frame: a planned rotation misses no frame. While both are open the
same event can arrive twice; it is published once.

Dedupe: a connection delivers every event of a symbol from its first to its last (that is what a stream
is), so a tick (symbol, E) from one connection is a duplicate exactly when another recent connection's
range for that symbol holds E. Memory: two integers per symbol per connection, a few connections.

Gaps: when a connection is replaced, the event time between the last frame of the old one and the first
frame of the new one, less the usual spacing of frames, is what was missed (0 for a clean handover).
Reported in event-time seconds: at REPLAY_SPEED 10, one wall second of outage is ten seconds missed.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime

RECENT_LINKS = 3  # retired connections whose ranges still dedupe (the one replaced, and before it)


@dataclass
class LinkState:
    """What one connection delivered: per symbol the first and last E, the frames' times and spacing."""

    number: int
    opened_at: float  # monotonic
    last_message_at: float
    ranges: dict[str, list[int]] = field(default_factory=dict)  # symbol -> [first E, last E]
    first_event_time: int | None = None
    last_event_time: int | None = None
    spacing_ms: int | None = None  # between its last two frames, in event time
    frames: int = 0

    def saw_frame(self, event_time: int, at: float) -> None:
        self.last_message_at = at
        self.frames += 1
        if self.first_event_time is None:
            self.first_event_time = event_time
        elif self.last_event_time is not None and event_time > self.last_event_time:
            self.spacing_ms = event_time - self.last_event_time
        if self.last_event_time is None or event_time > self.last_event_time:
            self.last_event_time = event_time


class Dedupe:
    """Ticks already published by another connection (see the module docstring)."""

    def __init__(self) -> None:
        self.live: dict[int, LinkState] = {}
        self.retired: deque[LinkState] = deque(maxlen=RECENT_LINKS)
        self.dropped = 0

    def track(self, link: LinkState) -> None:
        self.live[link.number] = link

    def retire(self, link: LinkState) -> None:
        if self.live.pop(link.number, None) is not None:
            self.retired.append(link)

    def accept(self, link: LinkState, symbol: str, event_time: int) -> bool:
        """True when (symbol, E) is new: then it is recorded in `link`'s range. False for a duplicate."""
        for other in (*self.live.values(), *self.retired):
            if other is link:
                continue
            span = other.ranges.get(symbol)
            if span is not None and span[0] <= event_time <= span[1]:
                self.dropped += 1
                return False
        span = link.ranges.get(symbol)
        if span is None:
            link.ranges[symbol] = [event_time, event_time]
        else:
            span[0] = min(span[0], event_time)
            span[1] = max(span[1], event_time)
        return True


def handover_ready(old: LinkState, new: LinkState) -> bool:
    """The old connection has delivered everything up to the new one's first frame: closing it now
    loses nothing (frames after that come on the new one)."""
    if new.first_event_time is None:
        return False
    return old.last_event_time is not None and old.last_event_time >= new.first_event_time


def missed_ms(old: LinkState | None, first_new: int) -> int:
    """Event time missed between `old`'s last frame and a new connection's first frame at `first_new`."""
    if old is None or old.last_event_time is None:
        return 0
    spacing = old.spacing_ms or 0
    return max(0, first_new - old.last_event_time - spacing)


@dataclass(frozen=True)
class Gap:
    cause: str  # rotation, server_shutdown, silence, closed, error
    seconds: float  # event time missed
    at: str  # when it was measured (UTC, ISO 8601)
    from_event_time: int | None  # last E before, first E after
    to_event_time: int

    def as_dict(self) -> dict[str, object]:
        return {
            "cause": self.cause,
            "seconds": self.seconds,
            "at": self.at,
            "from_event_time": self.from_event_time,
            "to_event_time": self.to_event_time,
        }


class GapLog:
    """Every replacement of a connection and what it missed, for /health (the last few) and totals."""

    def __init__(self, keep: int = 20) -> None:
        self.recent: deque[Gap] = deque(maxlen=keep)
        self.count = 0
        self.seconds_total = 0.0

    def record(self, cause: str, old: LinkState | None, first_new: int, now: datetime | None = None) -> Gap:
        seconds = missed_ms(old, first_new) / 1000
        gap = Gap(
            cause=cause,
            seconds=seconds,
            at=(now or datetime.now(UTC)).isoformat(timespec="milliseconds"),
            from_event_time=None if old is None else old.last_event_time,
            to_event_time=first_new,
        )
        self.recent.append(gap)
        self.count += 1
        self.seconds_total += seconds
        return gap

    def as_dict(self) -> dict[str, object]:
        return {
            "count": self.count,
            "seconds_total": round(self.seconds_total, 3),
            "recent": [gap.as_dict() for gap in self.recent],
        }


def rotation_due(link: LinkState, now: float, rotate_seconds: float) -> bool:
    return now - link.opened_at >= rotate_seconds


def silent_for(link: LinkState, now: float) -> float:
    return now - link.last_message_at
