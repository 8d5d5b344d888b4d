"""`cdb-ops trading …` without Docker: bad input (no --reason, unknown feed → 2; resume without --yes → 7),
the error and state shapes against json_schemas/trading.schema.json, and the pieces of flatten: the exit
signal it publishes is a valid cdb:signals event of the book."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from cdb_common.events import Signal
from jsonschema import Draft202012Validator

from cdb_ops.db.trading_state import BookState, OpenLong, flatten_signal
from tests.unit.test_json_schemas import _project, cdb, load_schema, problems

MIDNIGHT = datetime(2026, 12, 8, tzinfo=UTC)


def state(stored: str = "ACTIVE", tripped: bool = False, **kw: object) -> BookState:
    fields: dict[str, object] = {"reason": None, "changed_by": None, "changed_at": None, "cancelled_orders": 0}
    if stored != "ACTIVE":
        fields = {"reason": "odd fills", "changed_by": "ops@host (cdb-ops)",
                  "changed_at": "2026-12-07T09:00:00+00:00", "cancelled_orders": 2}  # fmt: skip
    return BookState("replay", stored, breaker_tripped=tripped, next_utc_day=MIDNIGHT, **(fields | kw))  # type: ignore[arg-type]


def _valid_state(doc: dict[str, object]) -> list[str]:
    schema = load_schema("trading")
    sub = {"$defs": schema["$defs"], **schema["$defs"]["trading_state"]}
    return [e.message for e in Draft202012Validator(sub).iter_errors(doc)]


@pytest.mark.parametrize(
    ("stored", "tripped", "effective", "may_open"),
    [("ACTIVE", False, "ACTIVE", True), ("ACTIVE", True, "REDUCING", False), ("REDUCING", False, "REDUCING", False),
     ("HALTED", True, "HALTED", False)],
)  # fmt: skip
def test_book_state_answers_may_this_book_open_a_position(stored, tripped, effective, may_open):
    b = state(stored, tripped)
    assert (b.state, b.may_open) == (effective, may_open)
    assert _valid_state(b.to_dict()) == []


def test_breaker_shows_until_the_next_utc_midnight():
    b = state("ACTIVE", True)
    assert b.to_dict()["breaker_until"] == "2026-12-08T00:00:00+00:00"
    assert "breaker" in b.summary and "2026-12-08" in b.summary
    assert state("ACTIVE", False).to_dict()["breaker_until"] is None


def test_summary_says_who_and_why():
    assert state("HALTED").summary == "HALTED (by ops@host (cdb-ops) at 2026-12-07T09:00:00+00:00: odd fills)"


def test_a_state_with_an_unknown_name_fails_the_schema():
    doc = state("HALTED").to_dict() | {"state": "PAUSED"}
    assert _valid_state(doc) != []


def test_the_flatten_signal_is_a_sell_of_the_whole_position_in_its_book():
    position = OpenLong("ETHUSDT", Decimal("0.04000000"), Decimal("2512.5"), Decimal("2490"))
    signal = Signal.from_json(json.dumps(flatten_signal("replay", position, 1_765_000_000_000)))
    assert (signal.symbol, signal.side, signal.portfolio, signal.is_probe) == ("ETHUSDT", "SELL", "replay", False)
    assert signal.price == Decimal("2512.5")  # the mark: execution fills at its own last price with slippage
    assert position.to_dict() == {"symbol": "ETHUSDT", "qty": "0.04", "mark": "2512.5", "entry": "2490"}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _project(tmp_path_factory.mktemp("trading"))


CASES = [
    ("halt without a reason", ["trading", "halt", "--feed", "replay", "--yes"], 2, "usage"),
    ("unknown feed", ["trading", "halt", "--feed", "paper", "--reason", "x", "--yes"], 2, "usage"),
    ("unknown feed", ["trading", "status", "--feed", "paper"], 2, "usage"),
    ("reason too long", ["trading", "reduce", "--feed", "live", "--reason", "x" * 501, "--yes"], 2, "usage"),
    ("resume without --yes", ["trading", "resume", "--feed", "replay", "--reason", "checked"], 7, "needs_confirmation"),
    ("stack down", ["trading", "status"], 1, "database"),
    ("stack down", ["trading", "halt", "--feed", "replay", "--reason", "x"], 1, "database"),
]


@pytest.mark.parametrize(("what", "args", "code", "kind"), CASES, ids=[f"{c[1][1]}: {c[0]}" for c in CASES])
def test_bad_input_is_refused_with_the_error_shape(project, what, args, code, kind):
    r = cdb(*args, "--json", cwd=project)
    assert r.returncode == code, f"{what}: exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    doc = json.loads(r.stdout)
    assert problems("error", doc) == []
    assert doc["command"] == " ".join(args[:2])
    assert doc["error"]["kind"] == kind
    if kind == "needs_confirmation":
        assert doc["error"]["details"] == {"book": "replay", "to": "ACTIVE", "reason": "checked"}
