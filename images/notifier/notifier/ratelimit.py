"""At most N messages per minute to one destination; what is over the limit is held and later sent as
one summary message. Pure (the clock is an argument), unit-tested."""

from __future__ import annotations

from collections import deque
from decimal import Decimal

from .formatting import Message, format_held

WINDOW_SECONDS = 60.0
TITLES_KEPT = 10  # the held summary names the first few


class RateLimiter:
    """A sliding window: a message may go when fewer than `per_minute` went in the last 60 s."""

    def __init__(self, per_minute: int, window: float = WINDOW_SECONDS) -> None:
        if per_minute < 1:
            raise ValueError("per_minute must be at least 1")
        self.per_minute = per_minute
        self.window = window
        self._sent: deque[float] = deque()

    def _expire(self, now: float) -> None:
        while self._sent and self._sent[0] <= now - self.window:
            self._sent.popleft()

    def admit(self, now: float) -> bool:
        """True (and the slot is taken) when one more message may go now."""
        self._expire(now)
        if len(self._sent) < self.per_minute:
            self._sent.append(now)
            return True
        return False

    def wait(self, now: float) -> float:
        """Seconds until a slot is free (0 when one is)."""
        self._expire(now)
        if len(self._sent) < self.per_minute:
            return 0.0
        return max(0.0, self._sent[0] + self.window - now)


class Held:
    """Messages the limit (or a full queue) kept back: counted by kind, exits' PnL summed."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.pnl = Decimal(0)
        self.titles: list[str] = []

    def __bool__(self) -> bool:
        return bool(self.counts)

    def add(self, message: Message) -> None:
        self.counts[message.kind] = self.counts.get(message.kind, 0) + 1
        if message.pnl is not None:
            self.pnl += message.pnl
        if len(self.titles) < TITLES_KEPT:
            self.titles.append(message.title)

    def take(self, per_minute: int) -> Message:
        """The summary message, and the backlog is empty again."""
        message = format_held(self.counts, self.pnl, self.titles, per_minute)
        self.counts, self.pnl, self.titles = {}, Decimal(0), []
        return message
