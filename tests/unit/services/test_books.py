"""One book per feed (issue 11.2): the feed setting, the book an event belongs to, and per-book fills."""

from __future__ import annotations

import asyncio
from datetime import date
from decimal import Decimal as D

import pytest
from cdb_common.config import ConfigError, load_feed, load_settings
from cdb_common.events import EventError, Order, Signal, Tick, book_of
from execution.executor import ExecutionConfig, execute, fill_event
from execution.paper import Book

DAY = date(2025, 1, 11)
CONFIG = ExecutionConfig(slippage_bps=D("5"), fee_pct=D("0.1"), initial_capital=D("1000"))


def test_feed_defaults_to_live_and_is_validated() -> None:
    assert load_feed({}) == "live"
    assert load_feed({"CDB_FEED": "Replay"}) == "replay"
    with pytest.raises(ConfigError, match="CDB_FEED='paper' must be one of live, replay"):
        load_feed({"CDB_FEED": "paper"})
    assert load_settings("risk_manager", 8002, {"CDB_FEED": "replay"}).feed == "replay"


def test_the_probe_is_in_neither_feeds_book() -> None:
    assert book_of("replay", False) == "replay"
    assert book_of("live", True) == "probe"  # a probe tick of a live stack still books to 'probe'
    with pytest.raises(EventError, match="portfolio='main'"):
        book_of("main", False)  # an event from before books existed, or a producer bug: dead letter
    with pytest.raises(EventError):
        book_of("probe", False)  # only is_probe makes a probe row


def test_events_carry_their_book_and_default_to_live_when_an_old_producer_omits_it() -> None:
    tick = Tick(
        event_id="t", symbol="ETHUSDT", price=D("2500"), open=D("2400"), high=D("2500"), low=D("2400"),
        base_volume=D("1"), quote_volume=D("1"), tick_time=1, received_at=1, produced_at=1, portfolio="replay",
    )  # fmt: skip
    assert Tick.from_json(tick.to_json()).portfolio == "replay"
    raw = '{"event_id":"s","symbol":"X","side":"BUY","price":"1","change_pct":"3","window_seconds":300,'
    raw += '"quote_volume":"1","threshold_pct":"3","confidence":"0.5","tick_id":"t","tick_time":1,'
    raw += '"received_at":1,"produced_at":1}'
    assert Signal.from_json(raw).portfolio == "live"


class BooksStore:
    """ExecutionStore in memory with one Book per portfolio, as the tables keep them (PK portfolio, symbol)."""

    def __init__(self) -> None:
        self.books: dict[str, Book] = {}
        self.orders: dict[str, str] = {}
        self.trades: dict[str, object] = {}

    async def find_trade(self, order_id: str):  # noqa: ANN201
        return self.trades.get(order_id)

    async def order_status(self, order_id: str) -> str | None:
        return self.orders.get(order_id)

    async def load_book(self, portfolio, today, capital, only_symbol):  # noqa: ANN001, ANN201
        # a book that never traded starts from INITIAL_CAPITAL (no snapshot row yet)
        return self.books.setdefault(portfolio, Book.fresh(portfolio, capital))

    async def save_fill(self, order, trade_id, fill, book, snap, today) -> None:  # noqa: ANN001
        self.trades[order.event_id] = fill_event(order, trade_id, fill)
        self.orders[order.event_id] = "FILLED"

    async def reject_order(self, order_id: str, reason: str) -> None:
        self.orders[order_id] = "REJECTED"


def order(n: int, portfolio: str, side: str, qty: str, symbol: str = "ETHUSDT") -> Order:
    return Order(
        event_id=f"00000000-0000-4000-8000-{n:012d}", risk_event_id="r", signal_id="s", symbol=symbol, side=side,
        qty=D(qty), reference_price=D("2500"), portfolio=portfolio, tick_time=1, received_at=1, produced_at=1,
    )  # fmt: skip


def run(store: BooksStore, o: Order, last: str) -> str | None:
    store.orders[o.event_id] = "NEW"
    outcome = asyncio.run(execute(store, o, D(last), CONFIG, DAY))
    return outcome.rejected


def test_a_replay_fill_moves_only_the_replay_book() -> None:
    store = BooksStore()
    assert run(store, order(1, "replay", "BUY", "0.04"), "2500") is None
    # BUY 0.04 ETH at 2500 · (1 + 5/10000) = 2501.25; notional 0.04 · 2501.25 = 100.05;
    # fee 0.1 % = 0.10005; cash 1000 − 100.15005 = 899.84995
    replay = store.books["replay"]
    assert replay.cash == D("899.84995") and replay.positions["ETHUSDT"].qty == D("0.04")
    # the live book, read afterwards, is untouched: a fresh INITIAL_CAPITAL account
    live = asyncio.run(store.load_book("live", DAY, D("1000"), None))
    assert (live.cash, live.positions, live.equity) == (D("1000"), {}, D("1000"))


def test_positions_are_per_book_a_live_sell_cannot_close_a_replay_position() -> None:
    store = BooksStore()
    run(store, order(1, "replay", "BUY", "0.04"), "2500")
    assert run(store, order(2, "live", "SELL", "0.04"), "2600") == "no_position"
    assert store.books["replay"].positions["ETHUSDT"].qty == D("0.04")
    # the replay SELL does close it: 0.04 · 2600 · (1 − 5/10000) = 0.04 · 2598.7 = 103.948, fee 0.103948,
    # proceeds 103.844052; cash 899.84995 + 103.844052 = 1003.694002
    assert run(store, order(3, "replay", "SELL", "0.04"), "2600") is None
    assert store.books["replay"].cash == D("1003.694002")
    assert store.books["live"].cash == D("1000")


def test_each_book_has_its_own_day_start_so_one_books_loss_never_trips_the_others_breaker() -> None:
    store = BooksStore()
    run(store, order(1, "replay", "BUY", "0.04"), "2500")
    run(store, order(2, "live", "BUY", "0.04", symbol="BTCUSDT"), "2500")
    replay, live = store.books["replay"], store.books["live"]
    # both days start at the equity before their first fill: 1000 each, fixed per book
    assert (replay.day_start_equity, live.day_start_equity) == (D("1000"), D("1000"))
    replay.mark("ETHUSDT", D("1000"))  # a crash of the replay's ETH: 899.84995 + 0.04 · 1000 = 939.84995
    assert replay.equity == D("939.84995") and live.equity == D("899.84995") + D("0.04") * D("2500")


def test_a_restart_restores_windows_only_from_its_own_books_ticks() -> None:
    import json

    from signal_engine.restore import parse_past

    def entry(portfolio: str | None) -> dict[str, str]:
        data = {"event_id": "e", "symbol": "ETHUSDT", "price": "2016", "tick_time": 5}
        if portfolio is not None:
            data["portfolio"] = portfolio
        return {"data": json.dumps(data)}

    assert parse_past("1-0", entry("replay"), "replay")[0] is not None
    assert parse_past("1-0", entry("replay"), "live")[0] is None  # the old feed's prices are not this window's
    assert parse_past("1-0", entry(None), "live")[0] is not None  # ticks from before books: the live feed's
