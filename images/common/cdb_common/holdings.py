"""What the account holds, as the screener and the signal engine need to know it (SPEC §8).

Filters (USDT quote, MIN_VOLUME) decide what may be *entered*; a symbol with an open position or an
unfilled order keeps flowing for marks and exits. Both facts live in Postgres (execution's positions,
risk's orders in status NEW), so every service reads them from there: at start (a restart forgets
nothing) and then every HELD_REFRESH_SECONDS. While Postgres is down the last known view is kept.
Only the service's own book (CDB_FEED) counts: probe rows (portfolio 'probe') are synthetic and come with
their own volume, and the other feed's book is not traded by this stack.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the view itself is pure (unit tests run without the services' I/O libraries)
    from .db import Database

SELECT_POSITIONS = "SELECT DISTINCT symbol FROM positions WHERE qty > 0 AND portfolio = %s"
SELECT_PENDING = "SELECT DISTINCT symbol, side FROM orders WHERE status = 'NEW' AND portfolio = %s"


@dataclass(frozen=True)
class Holdings:
    """One consistent read: symbols with an open position, and the sides of unfilled orders per symbol."""

    positions: frozenset[str] = frozenset()
    pending: dict[str, frozenset[str]] = field(default_factory=dict)
    loaded_at: float = 0.0  # time.monotonic() of the read; 0 = never read

    @property
    def symbols(self) -> frozenset[str]:
        """Everything that must keep flowing: open positions and symbols with an unfilled order."""
        return self.positions | frozenset(self.pending)

    def has_position(self, symbol: str) -> bool:
        return symbol in self.positions

    def exit_pending(self, symbol: str) -> bool:
        return "SELL" in self.pending.get(symbol, frozenset())


class HoldingsWatcher:
    """Keeps `current` fresh from Postgres; `refresh()` once at start, `run()` as a loop."""

    def __init__(self, db: Database, interval: float, book: str) -> None:
        self.db = db
        self.book = book
        self.interval = interval
        self.current = Holdings()

    async def refresh(self) -> Holdings:
        """Read the view now (raises Unavailable while Postgres is down; the old view stays)."""
        started = time.monotonic()
        async with self.db.transaction("REPEATABLE READ") as conn:
            positions = frozenset(r[0] for r in await (await conn.execute(SELECT_POSITIONS, (self.book,))).fetchall())
            pending: dict[str, set[str]] = {}
            for symbol, side in await (await conn.execute(SELECT_PENDING, (self.book,))).fetchall():
                pending.setdefault(symbol, set()).add(side)
        view = Holdings(positions, {s: frozenset(v) for s, v in pending.items()}, loaded_at=started)
        self.current = view
        return view

    async def run(self, stop: asyncio.Event) -> None:
        from .db import Unavailable, sleep_or_stop

        while not stop.is_set():
            # While Postgres is down the database monitor reports it; the last view is kept meanwhile.
            with contextlib.suppress(Unavailable):
                await self.refresh()
            await sleep_or_stop(stop, self.interval)
