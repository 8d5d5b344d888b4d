"""cdb_common.turns: a transaction that meets a held lock steps back (rolls back) and tries again, with a
lock timeout set in every try, until its wait is over — then it names what could not take its turn."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import psycopg.errors
import pytest
from cdb_common import turns
from cdb_common.turns import NoTurn, in_turn


class _Conn:
    """An autocommit connection whose first `busy` bodies meet a held lock."""

    def __init__(self, busy: int) -> None:
        self.busy = busy
        self.log: list[str] = []

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        self.log.append("BEGIN")
        try:
            yield
        except BaseException:
            self.log.append("ROLLBACK")
            raise
        self.log.append("COMMIT")

    def execute(self, sql: str, params: Any = None) -> None:
        self.log.append(sql if params is None else f"{sql} {params}")


def _body(conn: _Conn) -> Any:
    def body() -> str:
        if conn.busy:
            conn.busy -= 1
            raise psycopg.errors.LockNotAvailable("canceling statement due to lock timeout")
        return "done"

    return body


def test_a_held_lock_rolls_the_turn_back_and_the_next_try_goes_through(monkeypatch):
    slept: list[float] = []
    monkeypatch.setattr(turns.time, "sleep", slept.append)
    conn = _Conn(busy=3)
    assert in_turn(conn, _body(conn), "halting book replay") == "done"
    limit = f"SELECT set_config('lock_timeout', %s, true) ('{turns.TURN_LOCK_TIMEOUT}',)"
    assert conn.log == ["BEGIN", limit, "ROLLBACK"] * 3 + ["BEGIN", limit, "COMMIT"]
    assert slept == [0.05, 0.1, 0.2]  # a short pause, doubling


def test_a_lock_held_past_the_wait_is_named(monkeypatch):
    clock = iter(range(0, 10_000, 5))
    monkeypatch.setattr(turns.time, "monotonic", lambda: float(next(clock)))
    monkeypatch.setattr(turns.time, "sleep", lambda _: None)
    conn = _Conn(busy=10_000)
    with pytest.raises(NoTurn, match=r"^migration 042_x: the locks it needs were not free within 60 s"):
        in_turn(conn, _body(conn), "migration 042_x", wait_seconds=60)
    assert conn.log[-1] == "ROLLBACK"


def test_another_error_is_not_retried():
    conn = _Conn(busy=0)

    def body() -> None:
        raise psycopg.errors.UndefinedTable("relation does not exist")

    with pytest.raises(psycopg.errors.UndefinedTable):
        in_turn(conn, body, "x")
    assert conn.log.count("BEGIN") == 1
