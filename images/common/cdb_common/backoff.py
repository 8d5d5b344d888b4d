"""Exponential backoff with jitter, and an outage tracker that escalates WARNING to ERROR after 60 s."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable


class Backoff:
    """Delays base·2^n capped at `cap`, with "equal jitter" (half fixed, half random).

    Equal jitter keeps a floor under the delay, so a crowd of restarting services spreads out without
    any of them hammering a recovering server with near-zero waits.
    """

    def __init__(self, base: float = 0.5, cap: float = 30.0, rng: random.Random | None = None) -> None:
        self.base = base
        self.cap = cap
        self.attempt = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        ceiling = min(self.cap, self.base * (2**self.attempt))
        self.attempt += 1
        return ceiling / 2 + self._rng.uniform(0, ceiling / 2)

    def reset(self) -> None:
        self.attempt = 0


class Outage:
    """Tracks one dependency's availability for /health and for escalating logs.

    While down: WARNING per retry; once down for more than `error_after` seconds, a single ERROR
    (the words in `error_label`, e.g. "database connection", let ops grep for it).
    """

    def __init__(
        self,
        name: str,
        log: logging.Logger,
        error_label: str,
        error_after: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.log = log
        self.error_label = error_label
        self.error_after = error_after
        self.clock = clock
        self.connected = False
        self.down_since: float | None = clock()  # not connected yet at start
        self.escalated = False
        self.failures = 0

    def up(self) -> None:
        if not self.connected and self.failures:
            self.log.warning(f"{self.name} reachable again", extra={"dependency": self.name})
        self.connected = True
        self.down_since = None
        self.escalated = False

    def down(self, exc: BaseException, retry_in: float) -> None:
        now = self.clock()
        self.failures += 1
        if self.down_since is None:
            self.down_since = now
        self.connected = False
        outage = now - self.down_since
        if outage > self.error_after and not self.escalated:
            self.escalated = True
            self.log.error(
                f"{self.error_label} failing for {outage:.0f} s: {exc}",
                extra={"dependency": self.name, "outage_seconds": round(outage, 1)},
            )
        else:
            self.log.warning(
                f"{self.name} unreachable, retrying in {retry_in:.1f} s: {type(exc).__name__}: {exc}",
                extra={"dependency": self.name, "outage_seconds": round(outage, 1)},
            )

    def outage_seconds(self) -> float:
        return 0.0 if self.down_since is None else self.clock() - self.down_since
