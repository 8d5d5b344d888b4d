"""Issue 25 item 5 on the real stack (replay feed): the journal says what was live when.

One story, in order: a fill under the first rebuild's containers; an order in flight (execution paused)
cancelled by a halt; `status` and `trades --rejected` show the halt; resume; a rebuild with a changed risk
limit (MAX_POSITION_SIZE) swaps the trading services; a second fill. Then the journal lists both rebuilds
and both state changes with who, when, why and the live image ids and config hashes; `trades --versions`
names, for each fill, the risk manager and execution that made it (different before and after the change);
`report` marks the state changes and the upgrade, on the terminal, in --json and in the HTML.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.helpers import STACKS, StackFixture, cdb, cdb_json, pg_connect, publish_signal, wait_until

pytestmark = pytest.mark.e2e

STACK = STACKS["journal"]
FIXTURE = StackFixture(STACK, env={"REPLAY_SPEED": "1", "MAX_POSITION_SIZE": "10.0"}, rebuild_args=("--feed", "replay"))
BOOK = ["--feed", "replay"]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield from FIXTURE.around(tmp_path_factory.mktemp("journal"))


def _query(project: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with pg_connect(project, STACK.pg_port) as conn:
        return conn.execute(sql, params).fetchall()


def _buy(project: Path, symbol: str) -> str:
    """A BUY of the replay book at 10 (a symbol the replay never plays, so the decision is ours alone)."""
    return publish_signal(project, STACK, symbol, "BUY", "10")


def _order(project: Path, signal_id: str, status: str | None = None) -> tuple[Any, ...]:
    """(order status, trade id or None) once risk made the order (and, with `status`, once it has it)."""

    def found() -> list[tuple[Any, ...]]:
        rows = _query(
            project,
            "SELECT o.status, t.trade_id FROM orders o LEFT JOIN trades t USING (order_id) WHERE o.signal_id = %s",
            (signal_id,),
        )
        return [r for r in rows if status is None or r[0] == status]

    return wait_until(f"the order of {signal_id} ({status or 'any'})", found, timeout=40)[0]


def _live(doc: dict[str, Any], service: str) -> tuple[str, str]:
    return doc["live"][service]["image_id"], doc["live"][service]["config_hash"]


def test_the_journal_knows_what_was_live_when(project: Path) -> None:
    engine = docker.from_env()
    first = _buy(project, "JRNAUSDT")
    assert _order(project, first, "FILLED")[1] is not None  # filled under the first rebuild's containers
    risk_before = engine.containers.get(STACK.prefix + "risk").labels["cdb.config-hash"]

    # an order in flight when the book is halted: execution is paused, risk has made the order
    execution = engine.containers.get(STACK.prefix + "execution")
    execution.pause()
    try:
        in_flight = _buy(project, "JRNBUSDT")
        assert _order(project, in_flight)[0] == "NEW"
        halted = cdb_json("trading", "halt", *BOOK, "--reason", "journal: odd fills", "--yes", project=project)
        assert halted["changed"]["cancelled_orders"] == 1
    finally:
        execution.unpause()
    assert _order(project, in_flight, "CANCELLED")[1] is None  # never filled after the unpause either

    # status shows the book's state, in JSON and as text
    status = cdb_json("status", project=project)
    replay = next(b for b in status["trading"]["books"] if b["book"] == "replay")
    assert (replay["state"], replay["reason"]) == ("HALTED", "journal: odd fills")
    assert replay["changed_by"].endswith("(cdb-ops)") and replay["changed_at"]
    text = cdb("status", project=project)
    assert text.returncode == 0 and "book replay: HALTED (by " in text.stdout, text.stdout
    assert "journal: odd fills" in text.stdout

    # trades --rejected lists the halt-cancelled order with its reason
    rejected = cdb_json("trades", *BOOK, "--rejected", project=project)["rejected"]
    cancelled = [r for r in rejected if r["stage"] == "cancelled"]
    assert [r["symbol"] for r in cancelled] == ["JRNBUSDT"], rejected
    assert "halted by" in cancelled[0]["reason"] and "journal: odd fills" in cancelled[0]["reason"]

    cdb_json("trading", "resume", *BOOK, "--reason", "journal: checked", "--yes", project=project)

    # a changed risk limit: the rebuild swaps the trading services (their config hash changes)
    env_file = project / ".env"
    env_file.write_text(env_file.read_text().replace("MAX_POSITION_SIZE=10.0", "MAX_POSITION_SIZE=9.0"))
    rebuilt = cdb_json("rebuild", *BOOK, project=project)
    assert rebuilt["result"] == "ok" and rebuilt["journaled"] is True, rebuilt
    risk_after = engine.containers.get(STACK.prefix + "risk").labels["cdb.config-hash"]
    assert risk_after != risk_before

    second = _buy(project, "JRNCUSDT")
    assert _order(project, second, "FILLED")[1] is not None

    # the journal: both rebuilds and the trader's two state changes, with who, when, why and what was live —
    # and, between them, the drain the second rebuild did before it swapped risk and execution (issue 25)
    entries = cdb_json("journal", "--since", "1h", project=project)["entries"]
    kinds = [(e["kind"], e["details"].get("state")) for e in entries]
    assert kinds == [
        ("rebuild", None),
        ("state", "HALTED"),
        ("state", "ACTIVE"),
        ("state", "REDUCING"),
        ("state", "ACTIVE"),
        ("rebuild", None),
    ], kinds
    build1, halt, resume, drained, given_back, build2 = entries
    assert drained["who"].startswith("cdb-ops rebuild") and "upgrade" in drained["why"], drained
    assert given_back["who"].startswith("cdb-ops rebuild"), given_back
    assert all(e["who"] and e["at"] and e["why"] for e in entries)
    assert halt["book"] == "replay" and halt["why"] == "journal: odd fills" and halt["details"]["cancelled_orders"] == 1
    assert resume["why"] == "journal: checked"
    assert _live(build1, "risk")[1] == risk_before and _live(build2, "risk")[1] == risk_after
    assert _live(halt, "risk") == _live(build1, "risk")  # the state rows carry what was live then
    assert {"risk", "execution"} <= set(build2["details"]["changed"])
    assert build1["live"]["execution"]["image_id"].startswith("sha256:")
    assert build2["details"]["result"] == "ok"

    # trades --versions: the risk manager and execution behind each fill
    fills = {f["symbol"]: f for f in cdb_json("trades", *BOOK, "--versions", project=project)["fills"]}
    before, after = fills["JRNAUSDT"]["versions"], fills["JRNCUSDT"]["versions"]
    assert before["risk"]["config_hash"] == risk_before and after["risk"]["config_hash"] == risk_after
    assert before["execution"]["config_hash"] == build1["live"]["execution"]["config_hash"]
    assert after["execution"]["config_hash"] == build2["live"]["execution"]["config_hash"]
    assert before["execution"]["container_id"] != after["execution"]["container_id"]
    table = cdb("trades", *BOOK, "--versions", project=project)
    assert f"config {risk_before[:8]}" in table.stdout and f"config {risk_after[:8]}" in table.stdout

    # report: the state changes and the upgrade are marked (terminal, JSON, HTML)
    html = project / "report.html"
    report = cdb_json("report", *BOOK, "--days", "1", "--html", str(html), project=project)
    labels = [m["label"] for m in report["markers"]]
    assert labels[:4] == ["replay HALTED", "replay ACTIVE", "replay REDUCING", "replay ACTIVE"], labels
    assert labels[-1].startswith("rebuild: "), labels
    page = html.read_text()
    assert '<ol id="markers">' in page and "replay HALTED" in page and "journal: odd fills" in page
    terminal = cdb("report", *BOOK, "--days", "1", project=project)
    assert "[1]" in terminal.stdout and "replay HALTED" in terminal.stdout and "rebuild: " in terminal.stdout
    assert Decimal(report["equity"]["end"]) > 0


def test_a_restore_is_journalled_and_keeps_the_history_since_the_dump(project: Path) -> None:
    dump = cdb_json("backup", project=project)["path"]
    cdb_json("trading", "halt", *BOOK, "--reason", "journal: after the dump", "--yes", project=project)

    restored = cdb_json("restore", dump, "--yes", project=project)
    assert restored["journaled"] is True, restored
    assert restored["journal_rows_carried_over"] >= 1  # the halt after the dump stays in the record

    entries = cdb_json("journal", "--since", "1h", project=project)["entries"]
    restore = entries[-1]
    assert restore["kind"] == "restore" and restore["details"]["file"] == Path(dump).name
    assert restore["details"]["book_states"]["replay"] == "ACTIVE"  # the dump's state came back
    assert restore["live"]["risk"]["image_id"].startswith("sha256:") and restore["who"].endswith("(cdb-ops)")
    assert [e["why"] for e in entries if e["kind"] == "state"][-1] == "journal: after the dump"
    books = cdb_json("trading", "status", *BOOK, project=project)["books"]
    assert books[0]["state"] == "ACTIVE"
