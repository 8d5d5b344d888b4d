"""Paper-trading arithmetic, free of I/O: fills with slippage and fee, positions, PnL, equity, drawdown.

Conventions (exact, tested):
- BUY fills at last·(1 + bps/10000), SELL at last·(1 − bps/10000); fee = FEE_PCT % of the notional.
- avg_entry_price is the cost basis per coin INCLUDING the buying fee, so realized PnL of a SELL
  (proceeds − sell fee − qty·avg_entry) is net of both fees, and at every moment
  equity = initial capital + realized PnL + unrealized PnL.
- A position closed to qty 0 keeps its row (qty 0, realized PnL kept); risk treats qty > 0 as held.
- Equity = cash + Σ qty·last price (marked to market); drawdown % from the peak of that equity
  curve; daily drawdown % from the equity at the start of the UTC day.
- Money is rounded half-even to 1e-12 (the columns' scale), quantities are whole 1e-8 coins.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

MONEY_STEP = Decimal("0.000000000001")
PCT_STEP = Decimal("0.000001")
ZERO = Decimal(0)
HUNDRED = Decimal(100)
BPS = Decimal(10000)


def money(value: Decimal) -> Decimal:
    return value.quantize(MONEY_STEP)


def pct(value: Decimal) -> Decimal:
    return min(HUNDRED, max(ZERO, value)).quantize(PCT_STEP)


class FillRejected(Exception):
    """The order cannot be filled (no position to sell, not enough cash); `reason` is stored on the order."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Position:
    symbol: str
    qty: Decimal = ZERO
    avg_entry_price: Decimal = ZERO
    last_price: Decimal = ZERO
    realized_pnl: Decimal = ZERO

    @property
    def value(self) -> Decimal:
        return self.qty * self.last_price

    @property
    def unrealized_pnl(self) -> Decimal:
        return self.qty * (self.last_price - self.avg_entry_price) if self.qty > 0 else ZERO


@dataclass
class Book:
    """One portfolio's state as execution keeps it in Postgres."""

    portfolio: str
    cash: Decimal
    positions: dict[str, Position] = field(default_factory=dict)
    peak_equity: Decimal = ZERO
    day: date | None = None
    day_start_equity: Decimal | None = None

    @classmethod
    def fresh(cls, portfolio: str, capital: Decimal) -> Book:
        return cls(portfolio=portfolio, cash=capital, peak_equity=capital)

    @property
    def equity(self) -> Decimal:
        return self.cash + sum((p.value for p in self.positions.values()), ZERO)

    @property
    def exposure(self) -> Decimal:
        return sum((p.value for p in self.positions.values()), ZERO)

    def mark(self, symbol: str, price: Decimal) -> bool:
        """Mark a held symbol to `price`; True when something changed."""
        position = self.positions.get(symbol)
        if position is None or position.last_price == price:
            return False
        position.last_price = price
        return True

    def roll_day(self, today: date) -> bool:
        """Fix the start-of-day equity at the first event of a new UTC day; True when the day changed."""
        if self.day == today and self.day_start_equity is not None:
            return False
        self.day = today
        self.day_start_equity = money(self.equity)
        return True


@dataclass(frozen=True)
class Fill:
    symbol: str
    side: str
    qty: Decimal
    price: Decimal
    reference_price: Decimal
    slippage_bps: Decimal
    fee: Decimal
    notional: Decimal
    realized_pnl: Decimal


@dataclass(frozen=True)
class Snapshot:
    cash: Decimal
    equity: Decimal
    exposure: Decimal
    realized_pnl: Decimal
    unrealized_pnl: Decimal
    peak_equity: Decimal
    day_start_equity: Decimal
    drawdown_pct: Decimal
    daily_drawdown_pct: Decimal


def fill_price(side: str, last_price: Decimal, slippage_bps: Decimal) -> Decimal:
    """A BUY pays the slippage on top of the last price, a SELL receives that much less."""
    factor = 1 + slippage_bps / BPS if side == "BUY" else 1 - slippage_bps / BPS
    return money(last_price * factor)


def apply_fill(
    book: Book, side: str, symbol: str, qty: Decimal, last_price: Decimal, slippage_bps: Decimal, fee_pct: Decimal
) -> Fill:
    """Fill one order against `book` (mutated). Raises FillRejected when it cannot be filled."""
    if qty <= 0 or last_price <= 0:
        raise FillRejected("invalid_order")
    price = fill_price(side, last_price, slippage_bps)
    position = book.positions.get(symbol)
    if side == "BUY":
        notional = money(qty * price)
        fee = money(notional * fee_pct / HUNDRED)
        cost = notional + fee
        if cost > book.cash:
            raise FillRejected("insufficient_cash")
        if position is None:
            position = book.positions[symbol] = Position(symbol=symbol)
        held = position.qty
        position.avg_entry_price = money((held * position.avg_entry_price + cost) / (held + qty))
        position.qty = held + qty
        position.last_price = last_price
        book.cash -= cost
        realized = ZERO
    else:
        if position is None or position.qty <= 0:
            raise FillRejected("no_position")
        qty = min(qty, position.qty)  # spot: never sell more than held (no shorts)
        notional = money(qty * price)
        fee = money(notional * fee_pct / HUNDRED)
        realized = money(notional - fee - qty * position.avg_entry_price)
        position.qty -= qty
        position.realized_pnl += realized
        position.last_price = last_price
        book.cash += notional - fee
    return Fill(
        symbol=symbol,
        side=side,
        qty=qty,
        price=price,
        reference_price=last_price,
        slippage_bps=slippage_bps,
        fee=fee,
        notional=notional,
        realized_pnl=realized,
    )


def snapshot(book: Book) -> Snapshot:
    """The book's equity picture; raises the peak when equity made a new high."""
    equity = money(book.equity)
    book.peak_equity = max(book.peak_equity, equity)
    peak = book.peak_equity
    day_start = book.day_start_equity if book.day_start_equity is not None else equity
    drawdown = (peak - equity) / peak * HUNDRED if peak > 0 else ZERO
    daily = (day_start - equity) / day_start * HUNDRED if day_start > 0 else ZERO
    return Snapshot(
        cash=money(book.cash),
        equity=equity,
        exposure=money(book.exposure),
        realized_pnl=money(sum((p.realized_pnl for p in book.positions.values()), ZERO)),
        unrealized_pnl=money(sum((p.unrealized_pnl for p in book.positions.values()), ZERO)),
        peak_equity=peak,
        day_start_equity=money(day_start),
        drawdown_pct=pct(drawdown),
        daily_drawdown_pct=pct(daily),
    )
