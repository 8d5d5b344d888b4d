"""The risk checks of SPEC §4, free of I/O: one signal + a portfolio view + limits → one decision.

Order of the checks (the first that fails decides):
0. the book's trading state (table book_states, set by `cdb-ops trading halt|reduce|resume`): HALTED
   rejects every signal (`halted`), REDUCING rejects BUYs (`reducing`) and lets exits through. The breaker
   below is the same model: while it is tripped the book is REDUCING until the next UTC day, so
   `effective_state` is the one answer to "may this book open a position now?".
1. daily-drawdown circuit breaker, on the EQUITY curve (cash + positions marked to market) against
   the start-of-UTC-day equity: down by ≥ MAX_DAILY_DRAWDOWN % halts BUYs until the next UTC day
   (latched: a recovery within the day does not re-open it). SELLs always pass (exits are never blocked).
2. one position per symbol: BUY on a held (or already ordered) symbol → `position_exists`;
   SELL without a position → `no_position`; SELL while a SELL is pending → `order_pending`.
3. size: qty = (equity · MAX_POSITION_SIZE / 100) / price, rounded down to 1e-8 coin; below
   MIN_ORDER_NOTIONAL → `below_min_notional`. A SELL closes the whole long (qty = held qty).
4. total exposure ≤ MAX_TOTAL_EXPOSURE % of equity AFTER the costs (held positions at market + pending
   BUYs, against the equity left once the pending BUYs and this one paid slippage and fee):
   with c = cap/100, k = (1 + bps/10000)·(1 + fee/100) − 1, P = pending BUY notional, X = exposure,
   E = equity, the order's notional n must satisfy X + n ≤ c·(E − k·P − k·n), i.e.
   n ≤ room = (c·(E − k·P) − X) / (1 + c·k). Shrink the BUY to the room (`approved_shrunk`) or reject
   when the room is below MIN_ORDER_NOTIONAL (`exposure_limit`).
5. cash: a BUY (with slippage and fee) never spends more than the free cash, which is the cash minus
   the full cost (notional + slippage + fee) of every pending BUY (`insufficient_cash` or shrink).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import ROUND_DOWN, Decimal

from cdb_common.config import Settings, TradingLimits, env_decimal

APPROVED = "APPROVED"
REJECTED = "REJECTED"

QTY_STEP = Decimal("0.00000001")
MONEY_STEP = Decimal("0.000000000001")
PCT_STEP = Decimal("0.000001")
ZERO = Decimal(0)
HUNDRED = Decimal(100)

# The trading states of a book (NautilusTrader's names): ACTIVE trades, REDUCING takes exits only,
# HALTED takes nothing new.
ACTIVE, REDUCING, HALTED = "ACTIVE", "REDUCING", "HALTED"
TRADING_STATES = (ACTIVE, REDUCING, HALTED)


def effective_state(stored: str, breaker_tripped: bool) -> str:
    """The state a book trades under: the trader's (stored) one, made at least REDUCING while the daily
    breaker is tripped (exits pass, entries wait for the next UTC day)."""
    if stored == HALTED:
        return HALTED
    return REDUCING if stored == REDUCING or breaker_tripped else ACTIVE


def floor_qty(value: Decimal) -> Decimal:
    return value.quantize(QTY_STEP, rounding=ROUND_DOWN) if value > 0 else ZERO


def plain(value: Decimal) -> str:
    """Positional notation for JSON ("0.000000000000", never "0E-12")."""
    return format(value, "f")


def money(value: Decimal) -> Decimal:
    return value.quantize(MONEY_STEP)


@dataclass(frozen=True)
class RiskLimits:
    max_daily_drawdown_pct: Decimal
    max_position_size_pct: Decimal
    max_total_exposure_pct: Decimal
    initial_capital: Decimal
    min_order_notional: Decimal = Decimal(1)
    fee_pct: Decimal = Decimal("0.1")
    slippage_bps: Decimal = Decimal(5)

    @classmethod
    def from_trading(cls, limits: TradingLimits, fee_pct: Decimal, slippage_bps: Decimal) -> RiskLimits:
        return cls(
            max_daily_drawdown_pct=limits.max_daily_drawdown_pct,
            max_position_size_pct=limits.max_position_size_pct,
            max_total_exposure_pct=limits.max_total_exposure_pct,
            initial_capital=limits.initial_capital,
            min_order_notional=limits.min_order_notional,
            fee_pct=fee_pct,
            slippage_bps=slippage_bps,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> RiskLimits:
        """The memo's limits plus FEE_PCT and SLIPPAGE_BPS (to keep cash for fees)."""
        return cls.from_trading(
            settings.limits,
            fee_pct=env_decimal(settings.env, "FEE_PCT", "0.1", minimum=Decimal(0)),
            slippage_bps=env_decimal(settings.env, "SLIPPAGE_BPS", "5", minimum=Decimal(0)),
        )

    @property
    def cost_factor(self) -> Decimal:
        """What one USDT of BUY notional at the reference price costs with slippage and fee."""
        return (1 + self.slippage_bps / 10000) * (1 + self.fee_pct / HUNDRED)

    def as_json(self) -> dict[str, str]:
        return {
            "max_daily_drawdown_pct": plain(self.max_daily_drawdown_pct),
            "max_position_size_pct": plain(self.max_position_size_pct),
            "max_total_exposure_pct": plain(self.max_total_exposure_pct),
            "initial_capital": plain(self.initial_capital),
            "min_order_notional": plain(self.min_order_notional),
            "fee_pct": plain(self.fee_pct),
            "slippage_bps": plain(self.slippage_bps),
        }


@dataclass(frozen=True)
class Holding:
    qty: Decimal
    mark_price: Decimal  # last price known to execution


@dataclass(frozen=True)
class PendingOrder:
    """An approved order that execution has not filled yet (status NEW)."""

    symbol: str
    side: str
    qty: Decimal
    reference_price: Decimal


@dataclass(frozen=True)
class PortfolioView:
    cash: Decimal
    holdings: dict[str, Holding] = field(default_factory=dict)
    pending: tuple[PendingOrder, ...] = ()
    day: date | None = None  # UTC day that `day_start_equity` and `breaker_latched` belong to
    day_start_equity: Decimal | None = None
    breaker_latched: bool = False
    trading_state: str = ACTIVE  # the trader's state of the book (book_states); ACTIVE when none is stored

    @classmethod
    def fresh(cls, capital: Decimal) -> PortfolioView:
        """A portfolio that never traded: all cash (INITIAL_CAPITAL)."""
        return cls(cash=capital)


@dataclass(frozen=True)
class SignalIn:
    symbol: str
    side: str
    price: Decimal


@dataclass(frozen=True)
class RiskDecision:
    decision: str
    reason: str
    symbol: str
    side: str
    requested_qty: Decimal
    approved_qty: Decimal
    price: Decimal
    equity: Decimal
    exposure: Decimal
    day: date
    day_start_equity: Decimal
    daily_drawdown_pct: Decimal
    breaker_tripped: bool
    limits: dict[str, str]
    trading_state: str = ACTIVE  # effective_state(the stored state, breaker_tripped) at this decision

    @property
    def approved(self) -> bool:
        return self.decision == APPROVED


def mark_to_market(view: PortfolioView, symbol: str, price: Decimal) -> tuple[Decimal, Decimal]:
    """(equity, exposure): cash + positions at market; exposure also counts pending BUYs at their price.

    The signal's own symbol is marked at the signal's price, the freshest one known.
    """
    positions_value = ZERO
    for held_symbol, holding in view.holdings.items():
        mark = price if held_symbol == symbol else holding.mark_price
        positions_value += holding.qty * mark
    pending_buys = sum((o.qty * o.reference_price for o in view.pending if o.side == "BUY"), ZERO)
    return view.cash + positions_value, positions_value + pending_buys


def daily_drawdown_pct(day_start_equity: Decimal, equity: Decimal) -> Decimal:
    if day_start_equity <= 0 or equity >= day_start_equity:
        return ZERO
    return min(HUNDRED, (day_start_equity - equity) / day_start_equity * HUNDRED)


def evaluate(signal: SignalIn, view: PortfolioView, limits: RiskLimits, now: datetime) -> RiskDecision:
    """Decide one signal; `now` (aware) picks the UTC day of the circuit breaker."""
    equity, exposure = mark_to_market(view, signal.symbol, signal.price)
    today = now.astimezone(UTC).date()
    if view.day == today and view.day_start_equity is not None:
        day_start, latched = view.day_start_equity, view.breaker_latched
    else:
        # First decision of a new UTC day: the day starts at the current equity, the breaker re-opens.
        day_start, latched = equity, False
    daily_dd = daily_drawdown_pct(day_start, equity)
    tripped = latched or daily_dd >= limits.max_daily_drawdown_pct
    facts = limits.as_json() | {
        "day": today.isoformat(),
        "day_start_equity": plain(money(day_start)),
        "daily_drawdown_pct": plain(daily_dd.quantize(PCT_STEP)),
    }

    def decide(decision: str, reason: str, requested: Decimal, approved: Decimal, **extra: str) -> RiskDecision:
        return RiskDecision(
            decision=decision,
            reason=reason,
            symbol=signal.symbol,
            side=signal.side,
            requested_qty=requested,
            approved_qty=approved,
            price=signal.price,
            equity=money(equity),
            exposure=money(max(ZERO, exposure)),
            day=today,
            day_start_equity=money(day_start),
            daily_drawdown_pct=daily_dd.quantize(PCT_STEP),
            breaker_tripped=tripped,
            limits=facts | extra,
            trading_state=effective_state(view.trading_state, tripped),
        )

    held = view.holdings.get(signal.symbol)
    pending_sides = {o.side for o in view.pending if o.symbol == signal.symbol}

    # 0. the trader's state: HALTED takes nothing, REDUCING no entry (its exits go on below)
    if view.trading_state == HALTED:
        return decide(REJECTED, "halted", ZERO, ZERO)
    if signal.side == "BUY" and view.trading_state == REDUCING:
        return decide(REJECTED, "reducing", ZERO, ZERO)

    if signal.side == "SELL":
        # Exits pass the breaker and the size/exposure checks: they only reduce risk.
        if "SELL" in pending_sides:
            return decide(REJECTED, "order_pending", ZERO, ZERO)
        if held is None or held.qty <= 0:
            return decide(REJECTED, "no_position", ZERO, ZERO)
        return decide(APPROVED, "approved", held.qty, held.qty)

    # 1. circuit breaker
    if tripped:
        return decide(REJECTED, "circuit_breaker", ZERO, ZERO)
    # 2. one position per symbol (an unfilled BUY counts: it becomes a position in a moment)
    if (held is not None and held.qty > 0) or "BUY" in pending_sides:
        return decide(REJECTED, "position_exists", ZERO, ZERO)
    # 3. size
    target_notional = equity * limits.max_position_size_pct / HUNDRED
    requested = floor_qty(target_notional / signal.price)
    if requested * signal.price < limits.min_order_notional or requested <= 0:
        return decide(REJECTED, "below_min_notional", requested, ZERO)
    # 4. total exposure, after the costs of the pending BUYs and of this one
    cap = limits.max_total_exposure_pct / HUNDRED
    factor = limits.cost_factor
    pending_notional = sum((o.qty * o.reference_price for o in view.pending if o.side == "BUY"), ZERO)
    room = (cap * (equity - (factor - 1) * pending_notional) - exposure) / (1 + cap * (factor - 1))
    qty, reason = requested, "approved"
    if requested * signal.price > room:
        if room < limits.min_order_notional:
            return decide(REJECTED, "exposure_limit", requested, ZERO, exposure_room=plain(money(max(room, ZERO))))
        qty, reason = floor_qty(room / signal.price), "approved_shrunk"
    # 5. cash, with the full cost (notional, slippage, fee) of every pending BUY already spoken for
    free_cash = view.cash - pending_notional * factor
    unit_cost = signal.price * factor
    if qty * unit_cost > free_cash:
        affordable = floor_qty(free_cash / unit_cost)
        if affordable * signal.price < limits.min_order_notional or affordable <= 0:
            return decide(REJECTED, "insufficient_cash", requested, ZERO, free_cash=plain(money(free_cash)))
        qty, reason = affordable, "approved_shrunk"
    if qty * signal.price < limits.min_order_notional or qty <= 0:
        return decide(REJECTED, "exposure_limit", requested, ZERO)
    return decide(APPROVED, reason, requested, qty, exposure_room=plain(money(room)))
