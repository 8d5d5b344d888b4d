"""The quick `down`'s printers (report/run_text.py) print what rich prints — the run table through
`Renderer.run` on stdout, each progress line through `ConsoleProgress` on stderr — byte for byte, on a pipe
and on a colour terminal, or decline so rich prints it."""

from __future__ import annotations

import io
import random
from datetime import UTC, datetime, timedelta

import pytest
from rich.console import Console

from cdb_ops.model.results import RunResult, StepResult
from cdb_ops.redact import Redactor
from cdb_ops.report import run_text as run_text_module
from cdb_ops.report.plain import styled_line
from cdb_ops.report.progress import ConsoleProgress
from cdb_ops.report.render import Renderer
from cdb_ops.report.run_text import PlainProgress, run_text

START = datetime(2026, 12, 7, 22, 0, tzinfo=UTC)
ACTIONS = ["remove", "ok", "create", "keep", "orphan", "conflict", "rollback", "frobnicate"]


def _console(width: int, color: bool) -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    console = Console(
        file=buf,
        highlight=False,
        emoji=False,
        soft_wrap=False,
        width=width,
        force_terminal=color,
        color_system="truecolor" if color else None,
    )
    return console, buf


def _result(rnd: random.Random, n: int, outcome: str) -> RunResult:
    steps = [
        StepResult(
            "down",
            rnd.choice(["container", "network", "stack"]),
            f"cdbp_{'x' * rnd.randint(1, 20)}",
            rnd.choice(ACTIONS),
            rnd.choice(
                [
                    "",
                    "down",
                    "down; stopped cleanly (exit 0)",
                    "left over from an interrupted recreate; was not running",
                ]
            ),
            rnd.choice([0.0, 0.04, 0.5, 1.04, 12.3]),
            rnd.choice(["signal", None]),
        )
        for _ in range(n)
    ]
    return RunResult(
        command="down",
        playbook="down",
        run_id="r",
        started_at=START,
        profiles=["core"],
        feed="replay",
        phases=["down"],
        finished_at=START + timedelta(seconds=rnd.choice([0.4, 1.46, 13.0])),
        result=outcome,
        steps=steps,
    )


@pytest.mark.parametrize("color", [False, True])
@pytest.mark.parametrize("seed", range(10))
def test_the_run_table_is_what_rich_prints(seed: int, color: bool) -> None:
    rnd = random.Random(seed)
    compared = 0
    for outcome in ("ok", "failed", "interrupted"):
        result = _result(rnd, rnd.randint(0, 12), outcome)
        for width in (160, 100, 50):
            mine = run_text(result, width, color)
            if mine is None:
                continue
            console, buf = _console(width, color)
            Renderer(False, console=console).run(result)
            assert mine == buf.getvalue(), (seed, outcome, width)
            compared += 1
    assert compared


def test_the_run_table_declines_what_rich_lays_out_otherwise() -> None:
    result = _result(random.Random(1), 3, "ok")
    assert run_text(result, 160, False) is not None
    assert run_text(result, 30, False) is None  # rich folds the columns
    marked = _result(random.Random(1), 1, "ok")
    marked.steps[0].detail = "exit [red]1[/red]"  # Renderer.run passes details as markup
    assert run_text(marked, 160, False) is None
    wide = _result(random.Random(1), 1, "ok")
    wide.steps[0].name = "數據"
    assert run_text(wide, 160, False) is None


@pytest.mark.parametrize("color", [False, True])
@pytest.mark.parametrize("width", [80, 200, 40])
def test_each_progress_line_is_what_rich_prints(color: bool, width: int, monkeypatch: pytest.MonkeyPatch) -> None:
    redact = Redactor(["s3cret"])
    console, buf = _console(width, color)
    rich_progress = ConsoleProgress(redact, console=console)
    plain_err = io.StringIO()
    monkeypatch.setattr(run_text_module, "console_shape", lambda stream, pipe: (width, color))
    monkeypatch.setattr(run_text_module.sys, "stderr", plain_err)
    plain_progress = PlainProgress(redact)
    # what rich would wrap or read as markup is printed through rich: here, its console
    monkeypatch.setattr(plain_progress, "_rich", rich_progress)
    calls = [
        ("phase", ("down", "cleanup")),
        ("step", ("down", "container", "cdbp_signal", "remove", "down; stopped cleanly (exit 0)", 0.73)),
        ("step", ("down", "container", "cdbp_redis", "remove", "", 0.01)),
        ("step", ("down", "network", "cdbp_network", "remove", "down", None)),
        ("step", ("down", "stack", "x", "ok", "nothing to clean up", 0.0)),
        ("step", ("down", "container", "cdbp_x", "frobnicate", "with s3cret inside [and brackets]", 2.0)),
        ("step", ("down", "container", "cdbp_" + "y" * 90, "remove", "down; killed (exit 137)", 10.4)),
        ("step", ("down", "container", "[red]x[/red]", "remove", "", None)),
        ("note", ("network cdbp_network still has members a, b; kept",)),
        ("note", ("the password s3cret " + "z" * 100,)),
    ]
    for name, args in calls:
        getattr(plain_progress, name)(*args)
    mixed = plain_err.getvalue() + buf.getvalue()  # (order aside: the lines each printer took)
    expected_console, expected = _console(width, color)
    reference = ConsoleProgress(redact, console=expected_console)
    for name, args in calls:
        getattr(reference, name)(*args)
    assert sorted(mixed.splitlines()) == sorted(expected.getvalue().splitlines())
    assert "s3cret" not in mixed
    assert plain_err.getvalue()  # the plain printer printed its share


def test_a_styled_line_that_would_wrap_is_declined() -> None:
    assert styled_line([("x" * 10, "dim")], 10, True) == "\x1b[2mxxxxxxxxxx\x1b[0m"
    assert styled_line([("x" * 11, "")], 10, False) is None
