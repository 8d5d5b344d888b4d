"""The momentum rule of SPEC §4, free of I/O: rolling event-time window per symbol, threshold, cooldown.

Definitions (exact, tested):
- The window is measured in exchange event time (the frames' E), never wall-clock, so a replay at
  any speed forms the same windows.
- reference price = the price in effect at the window start (the last tick at or before
  `tick_time - window`), or the oldest tick seen when the history is shorter than the window;
  change % = (price / reference − 1) · 100.
- BUY when change ≥ threshold and 24h quote volume ≥ MIN_VOLUME and the tick passed the screener's
  entry filters (`entry_allowed`: a held symbol flows below MIN_VOLUME for marks and exits only);
  SELL when change ≤ −threshold (an exit: no volume condition, just as risk never blocks exits).
  Spot only: a SELL can only close a long, which risk and execution enforce.
- cooldown, in event time, holds back repeated ENTRIES: after a BUY no further BUY for that symbol for
  `cooldown_seconds`. An exit is never held back by a cooldown: a SELL for a symbol with an open
  position fires whatever SELL came before (e.g. one rejected `no_position` before the entry filled);
  only while an exit order for it is already under way (`exit_pending`) is no second one sent.
  A SELL for a symbol without a position closes nothing, so its repeats follow the cooldown (one
  per cooldown, not one per tick). Probe ticks ignore the cooldown.
- confidence = min(1, |change| / (2 · threshold)), rounded down to 5 decimals: 0.5 exactly on the
  threshold, 1 at twice the threshold or more.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

from cdb_common.config import Settings, env_int

BUY = "BUY"
SELL = "SELL"
CONFIDENCE_STEP = Decimal("0.00001")
CHANGE_STEP = Decimal("0.00000001")
MAX_CHANGE_PCT = Decimal(10) ** 10  # what signals.change_pct NUMERIC(18, 8) holds


@dataclass(frozen=True)
class MomentumConfig:
    threshold_pct: Decimal
    min_volume: Decimal
    window_seconds: int = 300
    cooldown_seconds: int = 600

    @classmethod
    def from_settings(cls, settings: Settings) -> MomentumConfig:
        """SIGNAL_THRESHOLD, MIN_VOLUME, SIGNAL_WINDOW_SECONDS, SIGNAL_COOLDOWN_SECONDS."""
        return cls(
            threshold_pct=settings.limits.signal_threshold_pct,
            min_volume=settings.limits.min_volume,
            window_seconds=env_int(settings.env, "SIGNAL_WINDOW_SECONDS", 300, minimum=1),
            cooldown_seconds=env_int(settings.env, "SIGNAL_COOLDOWN_SECONDS", 600, minimum=0),
        )


@dataclass(frozen=True)
class MomentumSignal:
    symbol: str
    side: str
    price: Decimal
    reference_price: Decimal
    change_pct: Decimal  # rounded to 8 decimals (the column's scale)
    quote_volume: Decimal
    confidence: Decimal
    tick_time: int
    window_seconds: int
    threshold_pct: Decimal


def change_pct(price: Decimal, reference: Decimal) -> Decimal:
    return (price / reference - 1) * 100


def confidence(change: Decimal, threshold: Decimal) -> Decimal:
    raw = min(Decimal(1), abs(change) / (2 * threshold))
    return raw.quantize(CONFIDENCE_STEP, rounding=ROUND_DOWN)


class MomentumEngine:
    """Keeps each symbol's price history for one window and decides on every tick."""

    def __init__(self, config: MomentumConfig) -> None:
        self.config = config
        self._window_ms = config.window_seconds * 1000
        self._cooldown_ms = config.cooldown_seconds * 1000
        # (event time ms, price); consecutive equal prices are stored once (the price in effect is the same).
        self._history: dict[str, deque[tuple[int, Decimal]]] = {}
        self._last_seen: dict[str, int] = {}  # newest event time per symbol (history skips repeats)
        self._last_signal: dict[tuple[str, str], int] = {}
        self.out_of_order = 0

    def symbols(self) -> int:
        return len(self._history)

    def reference_price(self, symbol: str) -> Decimal | None:
        history = self._history.get(symbol)
        return history[0][1] if history else None

    def restore_point(self, symbol: str, price: Decimal, tick_time: int) -> bool:
        """Put one past tick into the window without deciding anything (restart: the window comes back)."""
        return self._record(symbol, price, tick_time)

    def restore_cooldown(self, symbol: str, side: str, tick_time: int) -> None:
        """The event time of the last signal of `side` for `symbol` (restart: the cooldown comes back)."""
        key = (symbol, side)
        self._last_signal[key] = max(tick_time, self._last_signal.get(key, tick_time))

    def _record(self, symbol: str, price: Decimal, tick_time: int) -> bool:
        """Add the tick to the symbol's window; False when it is older than what was seen (ignored)."""
        history = self._history.setdefault(symbol, deque())
        last_seen = self._last_seen.get(symbol)
        if last_seen is not None and tick_time < last_seen:
            self.out_of_order += 1  # an older frame after a newer one: it says nothing about "now"
            return False
        self._last_seen[symbol] = tick_time
        if history and history[-1][1] == price:
            pass  # same price still in effect: keep the earlier point, it carries the older timestamp
        elif history and history[-1][0] == tick_time:
            history[-1] = (tick_time, price)
        else:
            history.append((tick_time, price))
        window_start = tick_time - self._window_ms
        # Evict while the next point is still at or before the window start: that next point is then
        # the price in effect at the window start, so the oldest one is no longer needed.
        while len(history) > 1 and history[1][0] <= window_start:
            history.popleft()
        return True

    def on_tick(
        self,
        symbol: str,
        price: Decimal,
        quote_volume: Decimal,
        tick_time: int,
        *,
        is_probe: bool = False,
        entry_allowed: bool = True,
        has_position: bool = False,
        exit_pending: bool = False,
    ) -> MomentumSignal | None:
        """Decide one tick. `has_position`/`exit_pending`: what the account holds (cdb_common.holdings)."""
        if not self._record(symbol, price, tick_time):
            return None
        reference = self._history[symbol][0][1]
        change = change_pct(price, reference)
        if abs(change) >= MAX_CHANGE_PCT:
            return None  # a move of 10^10 % is a broken feed, not a market (and no column would hold it)
        threshold = self.config.threshold_pct
        if change >= threshold and quote_volume >= self.config.min_volume and entry_allowed:
            side = BUY
        elif change <= -threshold:
            side = SELL
        else:
            return None

        key = (symbol, side)
        if side == SELL and has_position and not is_probe:
            if exit_pending:
                return None  # one exit at a time: the order for it is on its way
        else:
            last = self._last_signal.get(key)
            if not is_probe and last is not None and tick_time - last < self._cooldown_ms:
                return None
        self._last_signal[key] = tick_time
        return MomentumSignal(
            symbol=symbol,
            side=side,
            price=price,
            reference_price=reference,
            change_pct=change.quantize(CHANGE_STEP),
            quote_volume=quote_volume,
            confidence=confidence(change, threshold),
            tick_time=tick_time,
            window_seconds=self.config.window_seconds,
            threshold_pct=threshold,
        )
