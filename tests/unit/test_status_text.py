"""The plain status table (report/status_text.py, the quick `status` path's printer) is byte for byte what
rich prints through `Renderer.status` — on a pipe and on a colour terminal — or it declines (None)."""

from __future__ import annotations

import io
import random
from typing import Any

import pytest
from rich.console import Console

from cdb_ops.model.status import StatusRow
from cdb_ops.report.render import Renderer
from cdb_ops.report.status_text import status_text

PORTS = ["127.0.0.1:48432->5432/tcp", "127.0.0.1:8000->8000/tcp", "0.0.0.0:9090->9090/udp"]
LAST_RUNS = [
    None,
    {"command": "rebuild", "result": "ok", "finished_at": "2026-12-07T09:03:18+00:00", "changed": 3, "feed": "replay"},
    {"command": "run", "result": "ok", "finished_at": "2026-12-07T09:03:18+00:00", "feed": "live"},
    {"command": "down", "result": "ok", "started_at": "2026-12-07T09:03:18+00:00", "changed": 0},
    {
        "command": "rebuild",
        "result": "failed",
        "finished_at": "2026-12-07T09:03:18+00:00",
        "error": {"message": "build of signal failed: exit 100 [red]not markup[/red]\nsecond line"},
    },
]


def _book(book: str, state: str, stored: str, tripped: bool = False) -> dict:  # type: ignore[type-arg]
    return {
        "book": book, "state": state, "stored_state": stored, "reason": "odd fills" if stored != "ACTIVE" else None,
        "changed_by": "ops@host (cdb-ops)" if stored != "ACTIVE" else None,
        "changed_at": "2026-12-07T09:03:18+00:00" if stored != "ACTIVE" else None, "cancelled_orders": 0,
        "breaker_tripped": tripped, "breaker_until": "2026-12-08T00:00:00+00:00" if tripped else None,
        "may_open_positions": state == "ACTIVE",
    }  # fmt: skip


# status' `trading` object: not read, unknown, and both books in each state
TRADINGS = [
    None,
    {"books": None, "problem": "Postgres at 127.0.0.1:5432 did not answer: connection refused"},
    {"books": [_book("live", "ACTIVE", "ACTIVE"), _book("replay", "HALTED", "HALTED")], "problem": None},
    {"books": [_book("live", "REDUCING", "ACTIVE", True), _book("replay", "REDUCING", "REDUCING")], "problem": None},
]


def rows(rnd: random.Random, n: int) -> list[StatusRow]:
    out = []
    for i in range(n):
        state = rnd.choice(["running", "running", "exited", "missing", "restarting"])
        out.append(
            StatusRow(
                service=rnd.choice(["postgres", "redis", "signal", "market_replay", "s"]) + str(i),
                container=f"cdbp_{'x' * rnd.randint(1, 12)}",
                state=state,
                health=rnd.choice(["healthy", "unhealthy", "starting", None]),
                uptime_seconds=rnd.choice([None, 5.0, 61.0, 3700.0, 90000.0]),
                restarts=rnd.choice([0, 0, 3]),
                ports=rnd.sample(PORTS, rnd.randint(0, 3)),
                memory_bytes=rnd.choice([None, 512, 44 * 2**20, 3 * 2**30]),
                cpu_percent=rnd.choice([None, 0.0, 12.345, 250.0]),
                image=rnd.choice(["cdb_ops/redis:7", "cdbp_signal:latest", ""]),
                role="core",
                priority="high",
            )
        )
    return out


def by_rich(
    r: list[StatusRow],
    last: dict[str, Any] | None,
    width: int,
    color: bool,
    trading: dict[str, Any] | None = None,
    **footer: Any,  # disk, backups, notifications
) -> str:
    buf = io.StringIO()
    console = Console(
        file=buf,
        highlight=False,
        soft_wrap=False,
        width=width,
        force_terminal=color,
        color_system="truecolor" if color else None,
    )
    Renderer(False, console=console).status(r, last, trading=trading, **footer)
    return buf.getvalue()


@pytest.mark.parametrize("color", [False, True])
@pytest.mark.parametrize("seed", range(12))
def test_the_plain_table_is_what_rich_prints(seed: int, color: bool):
    rnd = random.Random(seed)
    r = rows(rnd, rnd.randint(0, 9))
    compared = 0
    for last in LAST_RUNS:
        for width in (160, 120, 60):
            trading = TRADINGS[(seed + width) % len(TRADINGS)]
            mine = status_text(r, last, width, color, trading=trading)
            if mine is None:
                continue  # declined: rich prints it
            assert mine == by_rich(r, last, width, color, trading), (seed, last, width, trading)
            compared += 1
    assert compared  # (the widest table of these still fits 160 columns)


def test_it_declines_what_it_cannot_lay_out_as_rich_does():
    r = [StatusRow("postgres", "cdbp_postgres", "running", "healthy", 61.0, 0, PORTS[:1], 2**20, 1.0, "img", "c", "h")]
    assert status_text(r, None, 160, False) is not None
    assert status_text(r, None, 40, False) is None  # rich would fold the columns
    wide = [*r, StatusRow("數據", "c", "running", None, None, 0, [], None, None, "", "core", "high")]
    assert status_text(wide, None, 160, False) is None  # double-width characters
    long_error = {"command": "rebuild", "result": "failed", "error": {"message": "x" * 300}}
    assert status_text(r, long_error, 160, False) is None  # rich would wrap the footer


def test_a_full_default_stack_footer_fits_a_pipe_and_is_printed_without_rich():
    """Eleven services' volumes, the largest tables and a notifier with no destination: every footer line is
    packed to fit, so a 160-column pipe gets the plain table — the same bytes rich prints."""
    r = [StatusRow("postgres", "cdbp_postgres", "running", "healthy", 61.0, 0, PORTS[:1], 2**20, 1.0, "img", "c", "h")]
    volumes = [f"cdbp_{n}_data" for n in ("postgres", "postgres_tmp", "redis", "risk_logs", "prometheus", "alerts")]
    disk = {
        "age_seconds": 400.0,
        "volumes": [{"name": v, "bytes": 48 * 2**20, "growth_bytes_per_day": 233_000.0} for v in volumes],
        "logs": {"bytes": 14_600, "growth_bytes_per_day": 26_600.0},
        "data_filesystem": {"used_percent": 27.0, "available_bytes": 79 * 2**30},
        "tables": [{"name": f"table_{i}", "bytes": 81_920, "growth_bytes_per_day": 0.0} for i in range(3)],
        "growth_over_hours": 2.0,
    }
    notifications = {"running": True, "destinations": 0, "sent": 0}
    for color in (False, True):
        mine = status_text(r, LAST_RUNS[1], 160, color, disk=disk, notifications=notifications)
        assert mine is not None
        assert all(len(line) <= 160 for line in mine.splitlines()) or color
        assert mine == by_rich(r, LAST_RUNS[1], 160, color, disk=disk, notifications=notifications)
