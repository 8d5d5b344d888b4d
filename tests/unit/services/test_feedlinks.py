"""The screener's connection bookkeeping (screener/feedlinks.py): dedupe across connections, the
make-before-break handover, gaps in event time; and the replay's rules (market_replay/rules.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from cdb_common.config import ConfigError
from market_replay.rules import ConnectionRules, PingLedger, parse_control, server_shutdown_event
from screener.feedlinks import Dedupe, GapLog, LinkState, handover_ready, missed_ms, rotation_due, silent_for
from screener.frames import parse_frame

T0 = 1_736_553_600_000


def link(number: int, opened_at: float = 0.0) -> LinkState:
    return LinkState(number=number, opened_at=opened_at, last_message_at=opened_at)


def deliver(dedupe: Dedupe, state: LinkState, event_time: int, symbols: tuple[str, ...] = ("AUSDT", "BUSDT")) -> list:
    """One frame of `symbols` at `event_time` from `state`: the (symbol, E) that would be published."""
    kept = [(s, event_time) for s in symbols if dedupe.accept(state, s, event_time)]
    state.saw_frame(event_time, 0.0)
    return kept


def test_a_rotation_overlap_publishes_every_tick_once_and_misses_none() -> None:
    """Old connection frames 0..9 s, the new one joins at 6 s: published = each (symbol, E) of 0..12 once."""
    dedupe = Dedupe()
    old, new = link(1), link(2)
    dedupe.track(old)
    published = []
    for second in range(6):
        published += deliver(dedupe, old, T0 + second * 1000)
    dedupe.track(new)
    # the two streams interleave in any order: the new one may even run ahead of the old one
    for second in (6, 7):
        published += deliver(dedupe, new, T0 + second * 1000)
        assert not handover_ready(old, new)  # the old one has not caught up with the new one's first frame yet
    for second in (6, 7, 8):
        published += deliver(dedupe, old, T0 + second * 1000)
    assert handover_ready(old, new)
    dedupe.retire(old)
    for second in (8, 9, 10, 11, 12):
        published += deliver(dedupe, new, T0 + second * 1000)
    expected = [(s, T0 + second * 1000) for second in range(13) for s in ("AUSDT", "BUSDT")]
    assert sorted(published) == sorted(expected) and len(published) == len(set(published))
    assert dedupe.dropped == 2 * 2 + 2 * 1  # old's 6, 7 after new had them; new's 8 after old had it
    assert missed_ms(old, new.first_event_time or 0) == 0


def test_a_connection_never_dedupes_against_itself() -> None:
    """A replay looping without time rewrite sends the same E again on one connection: that is the feed,
    not a duplicate of another connection's tick."""
    dedupe = Dedupe()
    only = link(1)
    dedupe.track(only)
    assert deliver(dedupe, only, T0) and deliver(dedupe, only, T0 + 1000)
    assert deliver(dedupe, only, T0) == [("AUSDT", T0), ("BUSDT", T0)]
    assert dedupe.dropped == 0


def test_a_reconnect_after_a_drop_publishes_only_what_the_old_connection_did_not() -> None:
    dedupe = Dedupe()
    old, new = link(1), link(2)
    dedupe.track(old)
    for second in range(5):
        deliver(dedupe, old, T0 + second * 1000)
    dedupe.retire(old)
    dedupe.track(new)
    # a server that starts a new connection with its last state again (3, 4 s) and goes on
    published = []
    for second in range(3, 8):
        published += deliver(dedupe, new, T0 + second * 1000, ("AUSDT",))
    assert published == [("AUSDT", T0 + 5000), ("AUSDT", T0 + 6000), ("AUSDT", T0 + 7000)]


def test_retired_connections_are_forgotten_after_a_few() -> None:
    dedupe = Dedupe()
    links = [link(n) for n in range(1, 6)]
    for number, state in enumerate(links):
        dedupe.track(state)
        deliver(dedupe, state, T0 + number * 1000, ("AUSDT",))
        dedupe.retire(state)
    assert [state.number for state in dedupe.retired] == [3, 4, 5]  # bounded memory
    assert not dedupe.live


def test_the_gap_is_the_event_time_missed_beyond_the_usual_spacing() -> None:
    old = link(1)
    for second in range(4):
        old.saw_frame(T0 + second * 1000, 0.0)
    assert old.spacing_ms == 1000 and old.last_event_time == T0 + 3000
    assert missed_ms(old, T0 + 4000) == 0  # the next frame: nothing missed
    assert missed_ms(old, T0 + 9000) == 5000  # frames 4..8 s missed
    assert missed_ms(old, T0 + 2000) == 0  # an overlap
    assert missed_ms(None, T0) == 0
    log = GapLog(keep=2)
    at = datetime(2026, 1, 1, tzinfo=UTC)
    log.record("silence", old, T0 + 9000, at)
    log.record("rotation", old, T0 + 4000, at)
    log.record("closed", old, T0 + 5500, at)
    facts = log.as_dict()
    assert facts["count"] == 3 and facts["seconds_total"] == 6.5
    assert [g["cause"] for g in facts["recent"]] == ["rotation", "closed"]  # type: ignore[index]
    assert facts["recent"][1] == {  # type: ignore[index]
        "cause": "closed",
        "seconds": 1.5,
        "at": "2026-01-01T00:00:00.000+00:00",
        "from_event_time": T0 + 3000,
        "to_event_time": T0 + 5500,
    }


def test_rotation_is_due_at_its_age_and_silence_is_measured_from_the_last_message() -> None:
    state = link(1, opened_at=100.0)
    assert not rotation_due(state, 100.0 + 85_799, 85_800) and rotation_due(state, 100.0 + 85_800, 85_800)
    state.saw_frame(T0, 150.0)
    assert silent_for(state, 152.5) == 2.5


def test_handover_waits_for_the_new_connections_first_frame() -> None:
    old, new = link(1), link(2)
    old.saw_frame(T0 + 5000, 0.0)
    assert not handover_ready(old, new)
    new.saw_frame(T0 + 6000, 0.0)
    assert not handover_ready(old, new)
    old.saw_frame(T0 + 6000, 0.0)
    assert handover_ready(old, new)


# -- the fake exchange's rules ------------------------------------------------------------------------


def test_only_a_pong_echoing_a_ping_answers_it_and_the_deadline_runs_from_the_oldest() -> None:
    ledger = PingLedger()
    ledger.sent(b"1000", 0.0)
    ledger.sent(b"21000", 20.0)
    assert not ledger.pong(b"nonsense") and ledger.unanswered() == 2
    assert ledger.overdue(60.5, 60.0) and not ledger.overdue(59.5, 60.0)
    assert ledger.pong(b"21000")  # answers it and the older one
    assert ledger.unanswered() == 0 and not ledger.overdue(1000.0, 60.0)


def test_rules_come_from_the_environment_with_the_exchange_defaults() -> None:
    assert ConnectionRules.from_env({}) == ConnectionRules(20.0, 60.0, 86400.0, 10.0)
    short = ConnectionRules.from_env({"REPLAY_MAX_CONNECTION_SECONDS": "8", "REPLAY_PING_SECONDS": "0.5"})
    assert short.max_connection_seconds == 8.0 and short.ping_seconds == 0.5
    for bad in ("soon", "-1", "0", "nan", "inf"):
        with pytest.raises(ConfigError, match="REPLAY_PONG_TIMEOUT_SECONDS"):
            ConnectionRules.from_env({"REPLAY_PONG_TIMEOUT_SECONDS": bad})


def test_control_requests_are_checked() -> None:
    assert parse_control({"action": "silence", "seconds": 12}) == ("silence", 12.0)
    assert parse_control({"action": "close"}) == ("close", 0.0)
    for body, message in (
        ([], "JSON object"),
        ({"action": "explode"}, "action must be one of"),
        ({"action": "silence"}, r"silence needs seconds"),
        ({"action": "silence", "seconds": True}, "must be a number"),
        ({"action": "silence", "seconds": 99999}, r"silence needs seconds"),
    ):
        with pytest.raises(ValueError, match=message):
            parse_control(body)


def test_the_shutdown_event_is_what_the_screener_understands() -> None:
    result = parse_frame(server_shutdown_event(T0), Decimal(0))
    assert result.shutdown and result.rejected is None
