"""A bad-input corpus (issue 6, item 4), without Docker.

* Playbooks and `.env` as a user can break them, through the real CLI (`python -m cdb_ops plan` in a
  temporary project, no engine): each is refused with exit code 3, the file (and line, where the file
  has lines), a fix, and nothing changed on disk. What test_playbook.py / test_settings.py / test_cli.py
  already cover (unknown keys with a suggestion, two-service cycles, duplicate ports, duplicate keys,
  the memo's passwords, ...) is not repeated here. Inputs that must be *accepted* (CRLF line endings
  from a Windows editor, a UTF-8 BOM in a playbook) pass the config stage and reach the engine (exit 4).
* Replay files with broken lines: the loader skips blank lines and keeps every other line as recorded
  (it is sent on, for the screener to count and reject); a corrupt byte or a line nested too deep for
  the JSON parser does not stop the replay from loading.
* Frames the screener must count and skip besides those in services/test_frames.py: too deeply nested,
  binary, numbers no column can hold; and a price move the signal engine must not turn into a crash.

Known cdb-ops bugs are marked xfail(strict=True): the test turns red once the bug is fixed, so the
marker is removed then.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from decimal import Decimal as D
from pathlib import Path

import pytest

from cdb_ops.load.settings import load_settings
from tests.unit.conftest import ENV

REPO = Path(__file__).resolve().parents[2]
IMAGES = REPO / "images"
for _folder in ("common", "screener", "signal_engine", "market_replay"):
    if str(IMAGES / _folder) not in sys.path:
        sys.path.insert(0, str(IMAGES / _folder))

from market_replay.replayfile import load_file, load_frames, parse_line  # noqa: E402
from screener.frames import MAX_EVENT_TIME, MAX_FRAME_BYTES, parse_frame  # noqa: E402
from signal_engine.momentum import MomentumConfig, MomentumEngine  # noqa: E402

STACK_TEXT = (REPO / "playbooks" / "stack.yaml").read_text()
NO_ENGINE = 4  # the config was accepted and the engine was asked next (there is none in these tests)


# -- a project and the CLI ---------------------------------------------------------------------------


def _project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    shutil.copytree(REPO / "playbooks", root / "playbooks")
    (root / "images").symlink_to(IMAGES)
    (root / "replays").symlink_to(REPO / "replays")
    shutil.copy(REPO / ".env.example", root / ".env.example")
    (root / ".env").write_text(ENV)
    return root


def _tree(root: Path) -> dict[str, str]:
    """Every file under the project (not following the symlinked folders) with its content's hash."""
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            out[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
        elif path.is_dir() and not path.is_symlink():
            out[str(path.relative_to(root)) + "/"] = ""
    return out


def _plan(root: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DOCKER_HOST": "unix:///nonexistent/docker.sock", "CDB_PROJECT_DIR": str(root)}
    return subprocess.run(
        [sys.executable, "-m", "cdb_ops", "plan"],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def _line(text: str, needle: str, last: bool = False) -> int:
    """1-based number of the first (or last) line of `text` containing `needle`."""
    found = [n for n, line in enumerate(text.splitlines(), start=1) if needle in line]
    assert found, f"{needle!r} not in the text"
    return found[-1] if last else found[0]


def _refused(root: Path, where: str, *expect: str, timeout: float = 60) -> str:
    """`plan` exits 3 naming `where` (file or file:line), with a fix and each of `expect`; nothing changed."""
    before = _tree(root)
    r = _plan(root, timeout)
    assert r.returncode == 3, f"exit {r.returncode}\n{r.stderr[-3000:]}"
    assert "Traceback" not in r.stderr
    assert f"{root}/{where}" in r.stderr, r.stderr
    assert "fix:" in r.stderr, r.stderr
    for text in expect:
        assert text in r.stderr, r.stderr
    assert _tree(root) == before, "a refused command changed the project"
    assert not (root / ".cdb").exists()
    return r.stderr


def _write_stack(root: Path, text: str | bytes) -> Path:
    path = root / "playbooks" / "stack.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def _edit(old: str, new: str, count: int = 1) -> str:
    assert old in STACK_TEXT, old
    return STACK_TEXT.replace(old, new, count)


# -- playbooks ---------------------------------------------------------------------------------------

SIGNAL_PORTS = '    ports: ["8001:8001"]'
SIGNAL_DEPENDS = '    ports: ["8001:8001"]\n    depends_on: {postgres: healthy, redis: healthy}'


def _cycle_of_three() -> str:
    text = STACK_TEXT
    for port, dep in (("8001", "execution: started"), ("8002", "signal: healthy"), ("8003", "risk: healthy")):
        old = f'    ports: ["{port}:{port}"]\n    depends_on: {{postgres: healthy, redis: healthy}}'
        assert old in text
        text = text.replace(
            old, f'    ports: ["{port}:{port}"]\n    depends_on: {{postgres: healthy, redis: healthy, {dep}}}'
        )
    return text


# (id, new stack.yaml text, the line to be named (a needle in the new text, or a number), expected text)
STACK_CASES = [
    ("tab-indent", _edit("    role: database", "\trole: database"), "\trole: database", "tabs"),
    ("empty-file", "", 1, "must be a YAML mapping"),
    ("only-comments", "# nothing here\n\n# yet\n", 1, "must be a YAML mapping"),
    ("list-not-mapping", "- version: 1\n- system: x\n", 1, "must be a YAML mapping"),
    ("scalar", "claire de binare\n", 1, "must be a YAML mapping"),
    ("version-2", _edit("version: 1", "version: 2"), "version: 2", "version: Input should be 1"),
    ("version-missing", _edit("version: 1\n", ""), "system: claire", "missing required key 'version'"),
    ("service-without-image", _edit("    image: cdb_signal:latest\n", ""), "  signal:", "'services.signal.image'"),
    ("port-out-of-range", _edit(SIGNAL_PORTS, '    ports: ["70000:8001"]'), "70000", "less than or equal to 65535"),
    ("port-zero", _edit(SIGNAL_PORTS, '    ports: ["0:8001"]'), '"0:8001"', "greater than or equal to 1"),
    ("port-not-a-list", _edit(SIGNAL_PORTS, '    ports: "8001:8001"'), '    ports: "8001', "services.signal.ports"),
    ("bad-duration", _edit("      interval: 5s\n", "      interval: 5 minutes\n"), "5 minutes", "a duration like"),
    ("negative-duration", _edit("      interval: 5s\n", "      interval: -5s\n"), "-5s", "a duration like"),
    ("duration-unit", _edit("      timeout: 3s\n", "      timeout: 3 fortnights\n"), "fortnights", "a duration"),
    (
        "nested-unknown-key",
        _edit("      interval: 5s\n", "      intervall: 5s\n"),
        "intervall",
        "did you mean 'interval'?",
    ),
    ("env-value-is-a-list", _edit("      HTTP_PORT: 8001", "      HTTP_PORT: [8001]"), "[8001]", "HTTP_PORT"),
    (
        "depends-on-a-list",
        _edit(SIGNAL_DEPENDS, '    ports: ["8001:8001"]\n    depends_on: [postgres, redis]'),
        "depends_on: [postgres",
        "services.signal.depends_on",
    ),
    (
        "bad-depends-condition",
        _edit(SIGNAL_DEPENDS, '    ports: ["8001:8001"]\n    depends_on: {postgres: ready, redis: healthy}'),
        "postgres: ready",
        "'started' or 'healthy'",
    ),
    ("priority-number", _edit("    priority: critical", "    priority: 1"), "priority: 1", "'critical'"),
    (
        "restart-policy",
        _edit("    mem_limit: 160m", "    mem_limit: 160m\n    restart: sometimes"),
        "sometimes",
        "restart",
    ),
    ("mem-limit", _edit("    mem_limit: 160m", "    mem_limit: 160 MB"), "160 MB", "mem_limit"),
    ("system-name", _edit("system: claire_de_binare", "system: Claire de Binare"), "system: Claire", "system"),
    (
        "self-dependency",
        _edit(SIGNAL_DEPENDS, '    ports: ["8001:8001"]\n    depends_on: {postgres: healthy, signal: started}'),
        "signal: started",
        "depends on itself",
    ),
    ("cycle-of-three", _cycle_of_three(), "execution: started", "dependency cycle: "),
    (
        "duplicate-container-name",
        _edit("    container: cdb_signal", "    container: cdb_risk"),
        lambda text: _line(text, "    container: cdb_risk", last=True),  # the second of the two is named
        "container name 'cdb_risk' is also used",
    ),
    ("unknown-feed", _edit("default_feed: live", "default_feed: paper"), "default_feed", "not declared under feeds"),
]


@pytest.mark.parametrize(("text", "line", "expect"), [c[1:] for c in STACK_CASES], ids=[c[0] for c in STACK_CASES])
def test_broken_stack_playbook_is_refused_with_file_line_and_fix(tmp_path, text, line, expect):
    root = _project(tmp_path)
    _write_stack(root, text)
    n = line if isinstance(line, int) else line(text) if callable(line) else _line(text, line)
    err = _refused(root, f"playbooks/stack.yaml:{n}:", expect)
    if expect == "tabs":
        assert "found character '\\t'" in err


def test_binary_garbage_playbook_is_refused(tmp_path):
    root = _project(tmp_path)
    _write_stack(root, bytes(range(256)) * 8)
    _refused(root, "playbooks/stack.yaml:", "not UTF-8 text", "save the file as UTF-8")


def test_huge_playbook_names_the_line_of_its_problem(tmp_path):
    """~2.5 MB (50,000 lines) with one bad value near the end: refused within seconds, at the right line."""
    root = _project(tmp_path)
    filler = "".join(f"      X_FILLER_{i}: '{'v' * 30}'\n" for i in range(50_000))
    text = _edit("      HTTP_PORT: 8001\n", "      HTTP_PORT: 8001\n" + filler).replace(
        '    ports: ["8001:8001"]', '    ports: ["8001:abc"]'
    )
    _write_stack(root, text)
    start = time.monotonic()
    _refused(root, f"playbooks/stack.yaml:{_line(text, '8001:abc')}:", "host:container")
    assert time.monotonic() - start < 20


@pytest.mark.parametrize("char", ["\x00", "\x01", "\x1b"])
def test_control_character_in_playbook_is_a_config_error(tmp_path, char):
    root = _project(tmp_path)
    _write_stack(root, _edit("    role: database", f"    role: data{char}base"))
    _refused(root, "playbooks/stack.yaml:", "character")


def test_deeply_nested_playbook_is_a_config_error(tmp_path):
    root = _project(tmp_path)
    _write_stack(root, STACK_TEXT + "x-deep: " + "[" * 5000 + "]" * 5000 + "\n")
    _refused(root, "playbooks/stack.yaml")


def test_alias_bomb_is_loaded_or_refused_quickly(tmp_path):
    """A billion-laughs playbook (9 levels of 9 aliases under an x- key, which validation ignores):
    whether cdb-ops accepts it (the aliases are shared, not copied) or refuses it, it must say so fast."""
    root = _project(tmp_path)
    bomb = ['x-a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    bomb += [f"x-a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    _write_stack(root, STACK_TEXT + "\n".join(bomb) + "\n")
    try:
        r = _plan(root, timeout=5)
    except subprocess.TimeoutExpired:
        pytest.fail("still loading the playbook after 5 s")
    assert r.returncode in (3, NO_ENGINE), r.stderr[-2000:]


def test_broken_phase_playbook_is_refused(tmp_path):
    root = _project(tmp_path)
    book = root / "playbooks" / "rebuild.yaml"
    book.write_text("version: 1\nname: rebuild\nphases: []\n")
    _refused(root, "playbooks/rebuild.yaml:3:", "at least 1 item")
    book.write_text("version: 1\nname: rebuild\nstack: nope.yaml\nphases:\n  - {name: a, kind: network}\n")
    _refused(root, "playbooks/nope.yaml", "file not found")
    book.unlink()
    _refused(root, "playbooks/rebuild.yaml", "file not found")


@pytest.mark.parametrize("name", ["playbooks/rebuild.yaml", ".env"])
def test_a_folder_where_a_file_belongs_is_a_config_error(tmp_path, name):
    root = _project(tmp_path)
    (root / name).unlink()
    (root / name).mkdir()
    _refused(root, name)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(b"\xef\xbb\xbf" + STACK_TEXT.encode(), id="utf8-bom"),
        pytest.param(STACK_TEXT.replace("\n", "\r\n").encode(), id="crlf"),
    ],
)
def test_windows_saved_playbook_is_accepted(tmp_path, text):
    root = _project(tmp_path)
    _write_stack(root, text)
    r = _plan(root)
    assert r.returncode == NO_ENGINE, r.stderr[-2000:]


# -- .env --------------------------------------------------------------------------------------------


def _env_with(line: str) -> str:
    key = line.split("=", 1)[0]
    return "".join(f"{ln}\n" for ln in ENV.splitlines() if not ln.startswith(key + "=")) + line + "\n"


ENV_CASES = [
    ("MIN_VOLUME=-1", "MIN_VOLUME: -1 is too small (must be at least 0)"),
    ("MIN_VOLUME=", "MIN_VOLUME is missing"),
    ("SIGNAL_THRESHOLD=0", "SIGNAL_THRESHOLD: 0 is too small (must be above 0)"),
    ("SIGNAL_THRESHOLD=101", "SIGNAL_THRESHOLD: 101 is too large (at most 100)"),
    ("SIGNAL_THRESHOLD=1e999", "SIGNAL_THRESHOLD: 1e999 is too large"),
    ("INITIAL_CAPITAL=0", "INITIAL_CAPITAL: 0 is too small (must be above 0)"),
    ("INITIAL_CAPITAL=-Infinity", "INITIAL_CAPITAL: '-Infinity' is not a finite number"),
    ("MAX_POSITION_SIZE=100.0001", "MAX_POSITION_SIZE: 100.0001 is too large (at most 100)"),
    ("MAX_TOTAL_EXPOSURE=50%", "MAX_TOTAL_EXPOSURE: '50%' is not a number"),
    ("MAX_DAILY_DRAWDOWN=5,0", "MAX_DAILY_DRAWDOWN: '5,0' is not a number"),
    ("LOG_LEVEL=trace", "LOG_LEVEL: 'trace' is not one of"),
    ('LOG_LEVEL="INFO', 'LOG_LEVEL: the " opened on this line is not closed on it'),
    ("REDIS_PASSWORD=has a space in it 0123456789", "REDIS_PASSWORD: contains quotes, spaces"),
    # a broken line's text is never shown (it may be part of a password): its line number says where
    ("1ABC=x", "invalid key\n"),
]


@pytest.mark.parametrize(("line", "expect"), ENV_CASES, ids=[c[0] for c in ENV_CASES])
def test_bad_env_value_is_refused_with_file_line_and_fix(tmp_path, line, expect):
    root = _project(tmp_path)
    text = _env_with(line)
    (root / ".env").write_text(text)
    where = ".env" if expect.endswith("is missing") else f".env:{_line(text, line)}:"
    err = _refused(root, where, expect)
    if "PASSWORD" in line:
        assert line.split("=", 1)[1] not in err  # a secret is never echoed, not even a wrong one


def test_missing_and_empty_env_list_every_key(tmp_path):
    root = _project(tmp_path)
    (root / ".env").unlink()
    _refused(root, ".env: file not found", "cdb-ops init")
    (root / ".env").write_text("")
    err = _refused(root, ".env: ", "problem(s)")
    for key in ("POSTGRES_DB", "POSTGRES_PASSWORD", "REDIS_PASSWORD", "MAX_DAILY_DRAWDOWN", "MIN_VOLUME"):
        assert f"{key} is missing" in err


def test_crlf_env_from_a_windows_editor_is_accepted(tmp_path):
    root = _project(tmp_path)
    text = ENV.replace("LOG_LEVEL=INFO", 'LOG_LEVEL="DEBUG"').replace("\n", "\r\n")
    (root / ".env").write_bytes(text.encode())
    settings = load_settings(root / ".env")
    assert all("\r" not in v for v in settings.values.values())  # no \r in a password or a limit
    assert settings.get("LOG_LEVEL") == "DEBUG" and settings.decimal("MIN_VOLUME") == 100000
    assert _plan(root).returncode == NO_ENGINE


def test_env_with_a_bom_is_accepted(tmp_path):
    root = _project(tmp_path)
    (root / ".env").write_bytes(b"\xef\xbb\xbf" + ENV.encode())
    r = _plan(root)
    assert r.returncode == NO_ENGINE, r.stderr[-2000:]


def test_env_that_is_not_utf8_is_a_config_error(tmp_path):
    root = _project(tmp_path)
    (root / ".env").write_bytes(ENV.encode() + b"MIN_VOLUME_NOTE=\xe9t\xe9\n")  # Latin-1 'été'
    _refused(root, ".env", "UTF-8")


# -- replay files with broken frames -----------------------------------------------------------------

GOOD_LINE = '[{"e":"24hrMiniTicker","E":1000,"s":"AUSDT","c":"1","o":"1","h":"1","l":"1","v":"1","q":"200000"}]'
BROKEN_LINES = {
    "truncated": GOOD_LINE[:40],
    "not json": "hello, exchange",
    "wrong shape (object)": '{"result":null,"id":1}',
    "wrong shape (number)": "42",
    "wrong shape (no tickers)": '[1,"x",null]',
    "nested too deep": "[" * 100_000 + "]" * 100_000,
    "huge": '["' + "x" * (3 * 1024 * 1024) + '"]',
}


def test_replay_loader_skips_blank_lines_and_keeps_broken_ones_as_recorded():
    lines = [GOOD_LINE + "\n", "\n", "   \t \n", "\r\n"]
    for raw in BROKEN_LINES.values():
        lines += [raw + "\r\n", GOOD_LINE + "\n"]
    frames = load_frames(lines)
    assert len(frames) == 1 + 2 * len(BROKEN_LINES)  # the three blank lines are skipped
    assert [f.raw for f in frames[1::2]] == list(BROKEN_LINES.values())  # sent as recorded, without \r\n
    assert all(f.event_time is None and f.items is None for f in frames[1::2])  # sent at once, never shifted
    assert all(f.event_time == 1000 for f in frames[0::2])


def test_replay_file_with_a_corrupt_byte_still_loads(tmp_path):
    """A corrupt byte used to stop the replay service at start (UnicodeDecodeError): now it spoils only
    its own line, which the screener rejects as invalid_json."""
    path = tmp_path / "broken.jsonl"
    path.write_bytes(GOOD_LINE.encode() + b"\n\xff\xfe\x00garbage\x80\n" + GOOD_LINE.encode() + b"\n")
    frames = load_file(str(path))
    assert [f.event_time for f in frames] == [1000, None, 1000]
    assert "\ufffd" in frames[1].raw
    assert parse_frame(frames[1].raw, D(100000)).rejected == "invalid_json"


def test_every_broken_replay_line_is_counted_and_skipped_by_the_screener():
    """What the replay sends, the screener's parser rejects by reason, and nothing else gets lost."""
    reasons = {name: parse_frame(raw, D(100000)).rejected for name, raw in BROKEN_LINES.items()}
    assert reasons == {
        "truncated": "invalid_json",
        "not json": "invalid_json",
        "wrong shape (object)": "wrong_shape",
        "wrong shape (number)": "wrong_shape",
        "wrong shape (no tickers)": "wrong_shape",
        "nested too deep": "invalid_json",
        "huge": "oversized",
    }
    assert [t.symbol for t in parse_frame(GOOD_LINE, D(100000)).tickers] == ["AUSDT"]


def test_parse_line_survives_json_nested_too_deep():
    frame = parse_line("{" * 50_000 + "}" * 50_000)
    assert frame is not None and frame.event_time is None


# -- frames the screener must count and skip (beyond services/test_frames.py) ------------------------


def _item(**over: object) -> dict[str, object]:
    base: dict[str, object] = {
        "e": "24hrMiniTicker", "E": 1736553600123, "s": "XUSDT", "c": "10", "o": "10", "h": "10", "l": "10",
        "v": "1000", "q": "1000000",
    }  # fmt: skip
    base.update(over)
    return base


def test_binary_and_deeply_nested_frames():
    good = json.dumps([_item()])
    assert [t.symbol for t in parse_frame(good.encode(), D(100000)).tickers] == ["XUSDT"]  # a binary message
    assert parse_frame(b"\x00\x01\x02\xff", D(100000)).rejected == "invalid_json"
    assert parse_frame("[" * 200_000, D(100000)).rejected == "invalid_json"
    assert parse_frame(b"x" * (MAX_FRAME_BYTES + 1), D(100000)).rejected == "oversized"


@pytest.mark.parametrize(
    "over",
    [
        pytest.param({"c": "1e40", "h": "1e40"}, id="price-beyond-numeric-30-12"),
        pytest.param({"c": "1e-13", "o": "1e-13", "h": "1e-13", "l": "1e-13"}, id="price-rounds-to-zero"),
        pytest.param({"c": "1e17", "o": "1e-11", "h": "1e17", "l": "1e-11"}, id="change-beyond-numeric-18-8"),
        pytest.param({"q": "1e30"}, id="volume-beyond-numeric-38-12"),
        pytest.param({"E": MAX_EVENT_TIME + 1}, id="event-time-past-year-9999"),
        pytest.param({"E": 10**20}, id="event-time-absurd"),
    ],
)
def test_numbers_no_column_can_hold_are_bad_items_not_a_crash_later(over):
    """These used to pass the parser; the screener's snapshot flush then raised (numeric overflow,
    decimal.InvalidOperation, a year out of range) and the process exited, every 5 s, for as long as
    the feed sent them. Now they are counted as bad items and skipped, the rest of the frame kept."""
    result = parse_frame(json.dumps([_item(s="AUSDT"), _item(s="BUSDT", **over)]), D(100000))
    assert [t.symbol for t in result.tickers] == ["AUSDT"] and result.bad_items == 1


def test_numbers_at_the_edge_of_the_columns_are_kept():
    top = "999999999999999999.999999999999"  # the largest NUMERIC(30, 12)
    edge = _item(c=top, o=top, h=top, l=top, E=MAX_EVENT_TIME)
    small = _item(s="YUSDT", c="0.000000000001", o="0.000000000001", h="0.000000000001", l="0.000000000001")
    result = parse_frame(json.dumps([edge, small]), D(100000))
    assert result.bad_items == 0 and len(result.tickers) == 2


def test_a_move_no_column_holds_is_no_signal_and_no_crash():
    """Two ticks, each within the columns, 10^29 apart: the momentum rule used to raise
    decimal.InvalidOperation while rounding the change (the signal engine exited); now no signal."""
    engine = MomentumEngine(MomentumConfig(D("3.0"), D("100000")))
    assert engine.on_tick("JUMPUSDT", D("0.000000000001"), D("1000000"), 1_000) is None
    assert engine.on_tick("JUMPUSDT", D("100000000000000000"), D("1000000"), 2_000) is None
    engine.on_tick("OKUSDT", D("100"), D("1000000"), 1_000)
    signal = engine.on_tick("OKUSDT", D("105"), D("1000000"), 2_000)  # the rule itself is untouched
    assert signal is not None and signal.side == "BUY" and signal.change_pct == D("5")
