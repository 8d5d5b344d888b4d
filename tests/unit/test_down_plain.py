"""The quick `down` (cli/down_plain.py) takes only what it can do exactly as the full command does, and
hands everything else over; its event reader joins the engine's chunked stream correctly."""

from __future__ import annotations

from pathlib import Path

from cdb_ops.cli.down_plain import _parse, quick_down
from cdb_ops.engine.socket_engine import _complete_chunks


def test_only_plain_down_arguments_take_the_quick_path() -> None:
    assert _parse([]) == (False, None)
    assert _parse(["--json", "--project-dir", "/p"]) == (True, Path("/p"))
    assert _parse(["--project-dir=/p"]) == (False, Path("/p"))
    for args in (["--volumes"], ["--yes"], ["--progress", "json"], ["--verbose"], ["--help"], ["--project-dir"], ["x"]):
        assert _parse(args) is None, args


def test_without_a_cached_outline_the_full_command_runs(project_dir: Path) -> None:
    assert quick_down(["--project-dir", str(project_dir)]) is None
    assert quick_down(["--volumes", "--yes"]) is None


def test_events_are_read_in_whole_chunks_however_the_stream_is_cut() -> None:
    events = [b'{"Action":"die","Actor":{"Attributes":{"name":"a","exitCode":"0"}}}\n', b'{"x":1}\n']
    stream = b"".join(f"{len(e):x}\r\n".encode() + e + b"\r\n" for e in events)
    for cut in range(len(stream) + 1):
        first, rest = _complete_chunks(stream[:cut])
        second, left = _complete_chunks(rest + stream[cut:])
        assert first + second == b"".join(events) and left == b"", cut
