"""Paper fills (execution/paper.py, executor.py): slippage, fee, PnL, equity, drawdown, idempotency."""

from __future__ import annotations

import asyncio
from datetime import date
from decimal import Decimal as D

import pytest
from cdb_common.events import Fill as FillEvent
from cdb_common.events import Order
from execution.executor import ExecutionConfig, execute
from execution.paper import Book, Fill, FillRejected, Position, apply_fill, fill_price, snapshot

BPS, FEE = D("5"), D("0.1")
DAY1, DAY2 = date(2025, 1, 11), date(2025, 1, 12)


def bought() -> tuple[Book, Fill]:
    book = Book.fresh("main", D("1000"))
    fill = apply_fill(book, "BUY", "BTCUSDT", D("0.002"), D("50000"), BPS, FEE)
    return book, fill


def test_fill_price_adds_slippage_on_buy_and_subtracts_it_on_sell() -> None:
    assert fill_price("BUY", D("50000"), BPS) == D("50025")
    assert fill_price("SELL", D("50000"), BPS) == D("49975")
    assert fill_price("BUY", D("50000"), D("0")) == D("50000")


def test_buy_arithmetic() -> None:
    book, fill = bought()
    assert fill.price == D("50025")  # 50000 · 1.0005
    assert fill.notional == D("100.05")  # 0.002 · 50025
    assert fill.fee == D("0.10005")  # 0.1 % of the notional
    assert fill.realized_pnl == D("0")
    assert book.cash == D("899.84995")  # 1000 − 100.05 − 0.10005
    position = book.positions["BTCUSDT"]
    assert position.qty == D("0.002")
    assert position.avg_entry_price == D("50075.025")  # cost basis incl. the fee: 100.15005 / 0.002


def test_sell_arithmetic_and_realized_pnl_net_of_both_fees() -> None:
    book, _ = bought()
    fill = apply_fill(book, "SELL", "BTCUSDT", D("0.002"), D("51000"), BPS, FEE)
    assert fill.price == D("50974.5")  # 51000 · 0.9995
    assert fill.notional == D("101.949")
    assert fill.fee == D("0.101949")
    assert fill.realized_pnl == D("1.697001")  # 101.949 − 0.101949 − 0.002 · 50075.025
    assert book.cash == D("1001.697001")
    assert book.positions["BTCUSDT"].qty == 0  # closed: the row stays with qty 0
    assert book.positions["BTCUSDT"].realized_pnl == D("1.697001")
    snap = snapshot(book)
    assert snap.equity == D("1001.697001") and snap.exposure == 0 and snap.realized_pnl == D("1.697001")


def test_equity_is_capital_plus_realized_plus_unrealized() -> None:
    book, _ = bought()
    book.mark("BTCUSDT", D("52000"))
    snap = snapshot(book)
    assert snap.equity == D("1003.84995")  # 899.84995 + 0.002 · 52000
    assert snap.unrealized_pnl == D("3.84995")  # 0.002 · (52000 − 50075.025)
    assert snap.equity == D("1000") + snap.realized_pnl + snap.unrealized_pnl


def test_drawdown_from_peak_and_from_day_start_on_marked_equity() -> None:
    book, _ = bought()
    book.roll_day(DAY1)  # day starts at 999.84995 (after the buy's fee and slippage, marked at 50000)
    book.mark("BTCUSDT", D("55000"))
    assert snapshot(book).peak_equity == D("1009.84995")  # a new high of the equity curve
    book.mark("BTCUSDT", D("45000"))
    snap = snapshot(book)
    assert snap.equity == D("989.84995")
    assert snap.drawdown_pct == D("1.980492")  # (1009.84995 − 989.84995) / 1009.84995 · 100
    assert snap.daily_drawdown_pct == D("1.000150")  # (999.84995 − 989.84995) / 999.84995 · 100


def test_day_start_rolls_at_the_first_event_of_a_new_utc_day() -> None:
    book, _ = bought()
    assert book.roll_day(DAY1) is True
    book.mark("BTCUSDT", D("45000"))
    assert book.roll_day(DAY1) is False and book.day_start_equity == D("999.84995")
    assert book.roll_day(DAY2) is True and book.day_start_equity == D("989.84995")


def test_average_entry_over_two_buys() -> None:
    book = Book.fresh("main", D("1000"))
    apply_fill(book, "BUY", "X", D("1"), D("100"), D(0), D(0))
    apply_fill(book, "BUY", "X", D("1"), D("200"), D(0), D(0))
    assert book.positions["X"].avg_entry_price == D("150") and book.positions["X"].qty == D("2")


def test_sell_never_sells_more_than_held() -> None:
    book, _ = bought()
    fill = apply_fill(book, "SELL", "BTCUSDT", D("1"), D("50000"), BPS, FEE)
    assert fill.qty == D("0.002") and book.positions["BTCUSDT"].qty == 0


def test_sell_without_position_is_rejected() -> None:
    with pytest.raises(FillRejected) as info:
        apply_fill(Book.fresh("main", D("1000")), "SELL", "BTCUSDT", D("0.002"), D("50000"), BPS, FEE)
    assert info.value.reason == "no_position"


def test_buy_beyond_cash_is_rejected() -> None:
    with pytest.raises(FillRejected) as info:
        apply_fill(Book.fresh("main", D("100")), "BUY", "BTCUSDT", D("0.002"), D("50000"), BPS, FEE)
    assert info.value.reason == "insufficient_cash"


class MemoryStore:
    """ExecutionStore in memory, with the UNIQUE(order_id) rule of the trades table."""

    def __init__(self) -> None:
        self.trades: dict[str, FillEvent] = {}
        self.orders: dict[str, str] = {}
        self.book = Book.fresh("main", D("1000"))

    async def find_trade(self, order_id: str) -> FillEvent | None:
        return self.trades.get(order_id)

    async def order_status(self, order_id: str) -> str | None:
        return self.orders.get(order_id)

    async def load_book(self, portfolio, today, capital, only_symbol):  # noqa: ANN001, ANN201
        return self.book

    async def save_fill(self, order, trade_id, fill, book, snap, today) -> None:  # noqa: ANN001
        from execution.executor import fill_event

        assert order.event_id not in self.trades, "double fill"
        self.trades[order.event_id] = fill_event(order, trade_id, fill)
        self.orders[order.event_id] = "FILLED"

    async def reject_order(self, order_id: str, reason: str) -> None:
        self.orders[order_id] = "REJECTED"


def order(side: str = "BUY", qty: str = "0.002") -> Order:
    return Order(
        event_id="7d1f6c1e-0000-4000-8000-000000000001", risk_event_id="r", signal_id="s", symbol="BTCUSDT",
        side=side, qty=D(qty), reference_price=D("50000"), portfolio="main", tick_time=1, received_at=1,
        produced_at=1,
    )  # fmt: skip


CONFIG = ExecutionConfig(slippage_bps=BPS, fee_pct=FEE, initial_capital=D("1000"))


def test_redelivered_order_fills_once() -> None:
    store = MemoryStore()
    store.orders[order().event_id] = "NEW"
    first = asyncio.run(execute(store, order(), D("50000"), CONFIG, DAY1))
    second = asyncio.run(execute(store, order(), D("51000"), CONFIG, DAY1))
    assert first.fresh and not second.fresh
    assert len(store.trades) == 1
    assert first.fill is not None and second.fill is not None
    assert second.fill.event_id == first.fill.event_id  # the same trade, re-announced
    assert store.book.cash == D("899.84995")  # money moved once


def test_fill_uses_reference_price_without_a_last_price() -> None:
    store = MemoryStore()
    store.orders[order().event_id] = "NEW"
    outcome = asyncio.run(execute(store, order(), None, CONFIG, DAY1))
    assert outcome.fill is not None and outcome.fill.price == D("50025")


def test_rejected_fill_marks_the_order() -> None:
    store = MemoryStore()
    store.orders[order("SELL").event_id] = "NEW"
    outcome = asyncio.run(execute(store, order("SELL"), D("50000"), CONFIG, DAY1))
    assert outcome.rejected == "no_position" and store.orders[order().event_id] == "REJECTED"
    assert not store.trades


def test_position_row_kept_at_zero_is_not_a_holding() -> None:
    book = Book.fresh("main", D("1000"))
    book.positions["X"] = Position("X", D(0), D("10"), D("10"), D("1"))
    assert book.exposure == 0 and snapshot(book).unrealized_pnl == 0
