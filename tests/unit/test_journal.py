"""The journal's pure parts (issue 25 item 5): what counts as live, which services a run swapped, which
version made a fill, what the report marks — and the status footer's trading states, the libpq reader's
connection string and its failure on a closed port (real libpq, no Docker)."""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from cdb_ops.db.journal import Entry, live_changes, live_set, version_at, versions_of
from cdb_ops.db.libpq_read import LibpqUnavailable, QueryFailed, conninfo_string, first_value
from cdb_ops.db.trading_state import states_from_json
from cdb_ops.model.facts import ContainerFacts
from cdb_ops.model.labels import LABEL_HASH, LABEL_SERVICE, LABEL_SYSTEM, LABEL_TASK
from cdb_ops.report.html import render_html
from cdb_ops.report.status_text import status_text
from cdb_ops.report.trading import equity_chart
from cdb_ops.views.performance import Marker, Report, Tally, max_drawdown
from cdb_ops.views.status import trading_lines
from cdb_ops.views.trades import FillRow, with_versions
from tests.unit.test_status_text import TRADINGS

T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def _container(name: str, service: str | None, *, running: bool = True, extra: dict[str, str] | None = None,
               image: str = "sha256:aaa", cfg: str = "cfg1", started: datetime = T0) -> ContainerFacts:  # fmt: skip
    labels = {LABEL_SYSTEM: "x", LABEL_HASH: cfg} | ({LABEL_SERVICE: service} if service else {}) | (extra or {})
    return ContainerFacts(
        id="c0ffee" + name.ljust(58, "0"), name=name, image_id=image, image_ref=f"{name}:latest", labels=labels,
        state="running" if running else "exited", health=None, started_at=started, restart_count=0, exit_code=0,
        networks=(), ports=(), volumes=(),
    )  # fmt: skip


class Engine:
    def __init__(self, containers: list[ContainerFacts]) -> None:
        self._containers = containers

    def containers(self, label: str | None = None, detail: bool = True) -> list[ContainerFacts]:
        return self._containers


def test_the_live_set_is_the_running_containers_of_each_service():
    engine = Engine([
        _container("x_risk", "risk", image="sha256:r1", cfg="h1"),
        _container("x_execution", "execution"),
        _container("x_risk-replaced-1", "risk", image="sha256:old"),  # set aside during a swap
        _container("x_signal", "signal", running=False),  # stopped: not live
        _container("x_archive", None, extra={LABEL_TASK: "archive"}),  # throwaway task container
    ])  # fmt: skip
    live = live_set(engine, "cdb.system=x")
    assert list(live) == ["execution", "risk"]
    assert live["risk"] == {
        "container": "x_risk", "container_id": "c0ffeex_risk", "image_id": "sha256:r1", "image": "x_risk:latest",
        "config_hash": "h1", "started_at": T0.isoformat(),
    }  # fmt: skip


def test_a_run_swapped_the_services_whose_image_or_config_changed():
    before = {"risk": {"image_id": "a", "config_hash": "1"}, "execution": {"image_id": "b", "config_hash": "2"}}
    assert live_changes(before, before) == []
    after = before | {"risk": {"image_id": "a", "config_hash": "9"}, "signal": {"image_id": "s", "config_hash": "3"}}
    assert live_changes(before, after) == ["risk", "signal"]
    assert live_changes(after, {"risk": after["risk"]}) == ["execution", "signal"]  # gone counts as changed
    assert live_changes(None, after) == []  # the first row has nothing to compare with


def _live(cid: str, image: str, cfg: str, started: datetime) -> dict[str, dict[str, str]]:
    return {"risk": {"container_id": cid, "image_id": image, "config_hash": cfg, "started_at": started.isoformat()}}


def test_the_version_behind_an_event_is_the_container_that_served_then():
    old_start, new_start, back = T0, T0 + timedelta(hours=1), T0 + timedelta(hours=2)
    sets = [
        _live("old", "sha256:1", "cfgA", old_start),  # rebuild 1
        _live("old", "sha256:1", "cfgA", old_start),  # a no-op rebuild repeats it
        _live("new", "sha256:1", "cfgB", new_start),  # rebuild 2 swapped risk (a changed setting)
        _live("old", "sha256:1", "cfgA", back),  # a rollback started the old container again
        {"execution": {"container_id": "e"}},  # no risk in this set, no start time: ignored
    ]
    versions = versions_of(sets, "risk")
    assert [(v.container_id, v.config_hash) for v in versions] == [("old", "cfgA"), ("new", "cfgB"), ("old", "cfgA")]
    assert version_at(versions, T0 - timedelta(seconds=1)) is None  # before the journal knew risk
    assert version_at(versions, T0 + timedelta(minutes=30)).config_hash == "cfgA"  # type: ignore[union-attr]
    assert version_at(versions, new_start).config_hash == "cfgB"  # type: ignore[union-attr]
    assert version_at(versions, back + timedelta(seconds=1)).container_id == "old"  # type: ignore[union-attr]
    assert version_at(versions, back + timedelta(seconds=1)).short == "image 1 · config cfgA"  # type: ignore[union-attr]


def test_each_fill_gets_the_risk_live_at_its_decision_and_the_execution_live_at_its_fill():
    risk = versions_of([_live("r1", "sha256:r", "c1", T0), _live("r2", "sha256:r", "c2", T0 + timedelta(minutes=10))],
                       "risk")  # fmt: skip
    fill = FillRow(T0 + timedelta(minutes=10, seconds=1), "ETHUSDT", "BUY", Decimal(1), Decimal(2), Decimal(0),
                   Decimal(2), Decimal(0), "t1", {}, {}, decided_at=T0 + timedelta(minutes=9))  # fmt: skip
    (out,) = with_versions([fill], {"risk": risk})
    assert out.versions is not None
    assert out.versions["risk"].container_id == "r1"  # type: ignore[union-attr]  # decided before the swap
    assert out.versions["execution"] is None  # the journal never saw execution
    doc = out.to_dict()
    assert doc["versions"]["risk"]["config_hash"] == "c1" and doc["versions"]["execution"] is None
    assert "versions" not in fill.to_dict()  # only with --versions


def _entry(kind: str, details: dict, book: str | None = None) -> Entry:  # type: ignore[type-arg]
    return Entry(1, T0, kind, book, "ops@host (cdb-ops)", "why", None, None, details)


def test_the_report_marks_state_changes_and_upgrades_but_not_no_op_rebuilds():
    assert _entry("state", {"state": "HALTED"}, "replay").title == "replay HALTED"
    assert _entry("breaker", {}, "live").title == "live REDUCING (breaker)"
    upgrade = _entry("rebuild", {"changed": ["execution", "risk"]})
    assert upgrade.is_marker and upgrade.title == "rebuild: execution, risk"
    assert not _entry("rebuild", {"changed": []}).is_marker
    assert _entry("rollback", {}).is_marker and _entry("restore", {}).is_marker


def _report(markers: list[Marker]) -> Report:
    curve = [(T0 + timedelta(minutes=i), Decimal(1000 + (i % 7))) for i in range(60)]
    return Report("replay", "--feed", 1, T0, T0 + timedelta(hours=1), Decimal(1000), {}, {}, Tally(), curve,
                  max_drawdown(curve), markers)  # fmt: skip


def test_markers_are_on_the_html_curve_and_the_terminal_chart():
    markers = [
        Marker(T0 + timedelta(minutes=20), "state", "replay HALTED", "ops@host", "odd <fills>"),
        Marker(T0 + timedelta(minutes=40), "rebuild", "rebuild: risk", "ops@host", "rebuild: ok"),
    ]
    html = render_html(_report(markers))
    assert html.count('<g class="marker ') == 2
    assert 'class="marker marker-state"' in html and 'class="marker marker-rebuild"' in html
    assert "odd &lt;fills&gt;" in html and "odd <fills>" not in html  # escaped
    assert '<ol id="markers">' in html and html.count("<li ") == 2
    assert "no state change or upgrade" in render_html(_report([]))
    chart = equity_chart(_report(markers).curve, 100, False, markers)
    plain = equity_chart(_report(markers).curve, 100, False, [])
    assert chart != plain and "1" in chart and "2" in chart
    assert _report(markers).to_dict()["markers"][0] == {
        "at": markers[0].at.isoformat(), "kind": "state", "label": "replay HALTED", "who": "ops@host",
        "why": "odd <fills>",
    }  # fmt: skip


def test_status_shows_each_books_state_and_why():
    lines = ["".join(t for t, _ in parts) for parts in trading_lines(TRADINGS[2])]
    assert lines[0] == "book live: ACTIVE — `cdb-ops trading status`"
    assert lines[1].startswith("book replay: HALTED (by ops@host (cdb-ops) since 2026-12-07T09:03:18+00:00: odd fills)")
    reducing = ["".join(t for t, _ in parts) for parts in trading_lines(TRADINGS[3])]
    assert "REDUCING (daily drawdown breaker, until 2026-12-08T00:00:00+00:00)" in reducing[0]
    assert "unknown — Postgres at 127.0.0.1:5432 did not answer" in trading_lines(TRADINGS[1])[0][0][0]
    assert trading_lines(None) == []
    text = status_text([], None, 160, False, trading=TRADINGS[2])
    assert text is not None and "book replay: HALTED" in text


def test_the_books_statement_answer_becomes_book_states():
    day = "2026-12-08T00:00:00+00:00"
    halted = {"state": "HALTED", "reason": "r", "changed_by": "me", "changed_at": "t", "cancelled_orders": 2}
    text = json.dumps([
        {"book": "live", "stored": None, "tripped": True, "next_day": day},
        {"book": "replay", "stored": halted, "tripped": False, "next_day": day},
    ])  # fmt: skip
    live, replay = states_from_json(text)
    assert (live.state, live.stored, live.to_dict()["breaker_until"]) == (
        "REDUCING",
        "ACTIVE",
        "2026-12-08T00:00:00+00:00",
    )
    assert (replay.state, replay.cancelled_orders, replay.may_open) == ("HALTED", 2, False)


def test_the_conninfo_string_quotes_what_libpq_would_misread():
    assert conninfo_string({"host": "127.0.0.1", "port": 5432, "password": "a b'c\\d", "sslmode": None}) == (
        b"host='127.0.0.1' port='5432' password='a b\\'c\\\\d'"
    )


def test_a_closed_port_is_a_clear_failure_not_a_hang(tmp_path: Path):
    with socket.socket() as s:  # a port nobody listens on: bind, never listen
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        try:
            with pytest.raises(QueryFailed, match="Connection refused|failed"):
                first_value({"host": "127.0.0.1", "port": port, "user": "u", "dbname": "d"}, "SELECT 1")
        except LibpqUnavailable:
            pytest.skip("no libpq on this machine (status then reads through psycopg)")
