"""Shared library pieces free of I/O: events, derived ids, backoff, outage escalation, health verdicts."""

from __future__ import annotations

import io
import json
import logging
import random
from decimal import Decimal as D

import pytest
from cdb_common.backoff import Backoff, Outage
from cdb_common.events import EventError, Order, Tick, derived_id
from cdb_common.health import HealthReport, dependency_verdict
from cdb_common.jsonlog import JsonFormatter
from cdb_common.timeutil import minute_of, ms_to_datetime


def tick(**over: object) -> Tick:
    fields: dict[str, object] = dict(
        event_id="e1", symbol="BTCUSDT", price=D("43260.10"), open=D("42000"), high=D("43500"), low=D("41800"),
        base_volume=D("0"), quote_volume=D("530000000.5"), tick_time=1736553600123, received_at=1736553600200,
        produced_at=1736553600201,
    )  # fmt: skip
    fields.update(over)
    return Tick(**fields)  # type: ignore[arg-type]


def test_events_round_trip_with_exact_decimals() -> None:
    original = tick(base_volume=D("0E-12"))
    data = json.loads(original.to_fields()["data"])
    assert data["price"] == "43260.10" and data["base_volume"] == "0.000000000000"  # never "0E-12"
    assert Tick.from_fields(original.to_fields()) == original


def test_optional_fields_default_and_required_ones_are_enforced() -> None:
    data = json.loads(tick().to_json())
    del data["is_probe"]
    assert Tick.from_json(json.dumps(data)).is_probe is False
    del data["price"]
    with pytest.raises(EventError, match="price"):
        Tick.from_json(json.dumps(data))


@pytest.mark.parametrize("raw", ["nope", "[]", '{"event_id": 1}'])
def test_invalid_events_raise_event_error(raw: str) -> None:
    with pytest.raises(EventError):
        Order.from_json(raw)


def test_non_finite_money_is_refused() -> None:
    data = json.loads(tick().to_json()) | {"price": "NaN"}
    with pytest.raises(EventError):
        Tick.from_json(json.dumps(data))


def test_derived_ids_are_stable_per_parent_and_kind() -> None:
    assert derived_id("a", "signal") == derived_id("a", "signal")
    assert derived_id("a", "signal") != derived_id("a", "order") != derived_id("b", "order")


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    backoff = Backoff(base=1.0, cap=8.0, rng=random.Random(1))
    delays = [backoff.next_delay() for _ in range(6)]
    for delay, ceiling in zip(delays, [1, 2, 4, 8, 8, 8], strict=True):
        assert ceiling / 2 <= delay <= ceiling
    backoff.reset()
    assert backoff.next_delay() <= 1.0


def test_outage_warns_then_escalates_to_one_error_after_60_s() -> None:
    now = [0.0]
    stream = io.StringIO()
    log = logging.getLogger("outage-test")
    log.propagate = False
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("svc"))
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    outage = Outage("postgres", log, "database connection", clock=lambda: now[0])
    outage.up()
    for t in (1.0, 30.0, 61.5, 70.0):
        now[0] = t
        outage.down(OSError("refused"), 1.0)
    records = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [r["level"] for r in records] == ["WARNING", "WARNING", "ERROR", "WARNING"]
    assert "database connection" in records[2]["msg"]
    assert all("database connection" not in r["msg"] for r in records if r["level"] == "WARNING")
    assert outage.outage_seconds() == pytest.approx(69.0)
    outage.up()
    assert outage.connected and outage.outage_seconds() == 0


def test_dependency_verdict_degrades_within_grace_then_turns_unhealthy() -> None:
    assert dependency_verdict(True, 0, 30) == "ok"
    assert dependency_verdict(False, 30, 30) == "degraded"
    assert dependency_verdict(False, 30.1, 30) == "unhealthy"


def test_health_report_only_gets_worse() -> None:
    report = HealthReport()
    report.worsen("degraded")
    report.worsen("ok")
    assert report.status == "degraded"
    report.worsen("unhealthy")
    assert report.status == "unhealthy"


def test_time_helpers_are_exact() -> None:
    assert ms_to_datetime(1736553600123).isoformat() == "2025-01-11T00:00:00.123000+00:00"
    assert minute_of(1736553659999).isoformat() == "2025-01-11T00:00:00+00:00"


def test_tick_core_reads_what_every_tick_consumer_needs_exactly_and_refuses_what_tick_refuses() -> None:
    from cdb_common.events import TickCore, tick_core

    tick = Tick(
        event_id="e-1", symbol="ETHUSDT", price=D("2500.123456789012"), open=D("1"), high=D("1"), low=D("1"),
        base_volume=D("1"), quote_volume=D("100000.5"), tick_time=1, received_at=2, produced_at=3,
    )  # fmt: skip
    assert tick_core(tick.to_fields()) == TickCore("e-1", "ETHUSDT", D("2500.123456789012"), D("100000.5"), 1, 2,
                                                   False, True)  # fmt: skip
    held = Tick.from_json(tick.to_json().replace('"entry_allowed":true', '"entry_allowed":false'))
    assert tick_core(held.to_fields()).entry_allowed is False
    for broken in ({}, {"data": "{"}, {"data": '{"symbol": "X"}'},
                   {"data": tick.to_json().replace('"2500.123456789012"', '"NaN"')},
                   {"data": tick.to_json().replace('"tick_time":1', '"tick_time":"1"')}):  # fmt: skip
        with pytest.raises(EventError):
            tick_core(broken)


def test_tick_json_is_exactly_the_tick_event_json() -> None:
    from cdb_common.events import tick_json

    values = dict(
        event_id="e-2", symbol="HELDUSDT", price=D("1E-8"), open=D("0.5"), high=D("2"), low=D("0.00000001"),
        base_volume=D("10"), quote_volume=D("50000.00000001"), tick_time=5, received_at=6, produced_at=6,
    )  # fmt: skip
    assert tick_json(**values) == Tick(**values).to_json()  # type: ignore[arg-type]
    flagged = {**values, "is_probe": True, "source": "probe", "entry_allowed": False}
    assert tick_json(**flagged) == Tick(**flagged).to_json()  # type: ignore[arg-type]
    assert '"price":"0.00000001"' in tick_json(**values)  # positional, never 1E-8
    # strings JSON must escape take json.dumps' way, still byte for byte the event's JSON
    odd = {**values, "event_id": 'a"b\\c', "symbol": "ÄÖUSDT", "source": "line\nbreak", "portfolio": "bo\tok"}
    assert tick_json(**odd) == Tick(**odd).to_json()  # type: ignore[arg-type]
    assert json.loads(tick_json(**odd))["event_id"] == 'a"b\\c'
    with pytest.raises(TypeError):
        tick_json(**{**values, "tick_time": 5.5})  # type: ignore[arg-type]


def test_random_ids_are_distinct_version_4_uuids_in_their_usual_text_form() -> None:
    import uuid

    from cdb_common.events import random_ids

    ids = random_ids(2000)
    assert len(set(ids)) == 2000 and random_ids(0) == []
    for text in ids:
        parsed = uuid.UUID(text)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122 and str(parsed) == text
