"""The replay streams its file (market_replay/source.py): a file of hundreds of MB, plain or gzip, plays in
memory the size of a frame, with every frame, in order, and the old behaviours kept (broken lines sent
as recorded, blank lines skipped, corrupt bytes spoiling only their own line, overlong lines skipped)."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from market_replay.replayfile import Pacer, load_frames, schedule
from market_replay.scenario import START_MS, market_frames
from market_replay.source import ReplaySourceError, file_source, is_gzip, lines_source, read_lines

BIG_BYTES = 256 * 1024 * 1024  # well over the service's 128 MiB limit
PEAK_BOUND_MIB = 16  # a 300-pair frame parsed is ~1 MB of objects; the reader's buffer is 1 MiB


def _write_big(path: Path, target: int) -> tuple[int, int]:
    """A file of `target` bytes of 300-pair frames, one second apart: 60 generated frames written again and
    again with their E moved on (a str.replace, so the file takes a second, not a minute). Returns
    (frames, bytes)."""
    base = list(market_frames(pairs=300, seconds=60))
    frames = written = 0
    with open(path, "w", encoding="utf-8") as out:
        while written < target:
            round_ms = frames // 60 * 60_000
            for index, line in enumerate(base):
                event_time = START_MS + index * 1000
                text = line.replace(f'"E":{event_time},', f'"E":{event_time + round_ms},') + "\n"
                out.write(text)
                written += len(text)
                frames += 1
    return frames, written


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    path = tmp_path_factory.mktemp("replay") / "big.jsonl"
    frames, _ = _write_big(path, BIG_BYTES)
    return path, frames


_PLAY = """
import json, sys
from market_replay.replayfile import Pacer, loop_shift, shifted
from market_replay.source import file_source

def peak_kib():  # VmHWM: this interpreter's own high-water mark (ru_maxrss keeps the forking parent's)
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
count = 0
if sys.argv[1] != "--baseline":
    source = file_source(sys.argv[1])
    pacer = Pacer(10.0)
    shift = loop_shift(source.first_event_time or 0, 1_900_000_000_000, None)
    last = 0
    for frame in source.frames():
        pacer.offset(frame.event_time)
        text = shifted(frame, shift)
        assert frame.event_time > last and text.count('"E":') == 300, "frames in order, each once, shifted"
        last = frame.event_time
        count += 1
    assert source.last_pass.error is None and source.last_pass.frames == count
print(json.dumps({"frames": count, "peak_kib": peak_kib()}))
"""


def _play(path: Path | str) -> dict[str, int]:
    """Play `path` the way the service's playback does (pace, shift, send) in a fresh interpreter, and
    return its frame count and peak RSS (this test process's own peak says nothing about the replay)."""
    services = Path(__file__).resolve().parents[3] / "images"
    env = {**os.environ, "PYTHONPATH": f"{services / 'market_replay'}{os.pathsep}{services / 'common'}"}
    done = subprocess.run(
        [sys.executable, "-c", _PLAY, str(path)], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def _assert_constant_memory(path: Path, frames: int) -> None:
    idle = _play("--baseline")["peak_kib"]  # the interpreter and the modules, nothing played
    played = _play(path)
    assert played["frames"] == frames
    grown_mib = (played["peak_kib"] - idle) / 1024
    size_mib = path.stat().st_size / 2**20
    assert grown_mib < PEAK_BOUND_MIB, f"peak RSS grew {grown_mib:.1f} MiB playing {size_mib:.0f} MiB ({frames} frames)"
    print(f"\n{path.name}: {size_mib:.0f} MiB, {frames} frames, peak RSS {played['peak_kib'] / 1024:.1f} MiB "
          f"({grown_mib:+.1f} MiB over an idle interpreter)")  # fmt: skip


def test_a_file_twice_the_memory_limit_streams_in_the_memory_of_a_frame(big_file: tuple[Path, int]) -> None:
    path, frames = big_file
    assert path.stat().st_size >= BIG_BYTES
    _assert_constant_memory(path, frames)


def test_a_gzip_file_streams_the_same_frames_in_the_same_memory(big_file: tuple[Path, int], tmp_path: Path) -> None:
    path, frames = big_file
    packed = tmp_path / "big.jsonl.gz"
    with open(path, "rb") as src, gzip.open(packed, "wb", compresslevel=1) as dst:
        shutil.copyfileobj(src, dst, 4 * 1024 * 1024)
    assert is_gzip(str(packed))
    _assert_constant_memory(packed, frames)


def test_gzip_is_known_by_its_magic_bytes_without_the_suffix(tmp_path: Path) -> None:
    lines = ['[{"E":1000,"s":"AUSDT"}]', "not json", '[{"E":2000,"s":"AUSDT"}]']
    renamed = tmp_path / "recording.jsonl"
    renamed.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    source = file_source(str(renamed))
    assert source.compressed and source.first_event_time == 1000
    assert [f.raw for f in source.frames()] == lines
    assert [f.raw for f in source.frames()] == lines  # a second pass opens the file again


def test_streaming_keeps_what_loading_did(tmp_path: Path) -> None:
    """Blank lines skipped, broken lines and corrupt bytes kept as recorded: exactly load_frames' frames."""
    body = b'[{"E":1000,"s":"A"}]\n\n  \r\n\xff\xfe garbage\x80\n{"E":3}\n[{"E":2000,"s":"B"}]\r\n'
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(body)
    streamed = list(file_source(str(path)).frames())
    loaded = load_frames(body.decode("utf-8", errors="replace").splitlines(keepends=True))
    assert [(f.raw, f.event_time) for f in streamed] == [(f.raw, f.event_time) for f in loaded]
    assert "\ufffd" in streamed[1].raw and streamed[3].event_time == 2000


def test_a_line_longer_than_any_frame_is_skipped_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "long.jsonl"
    path.write_text('[{"E":1,"s":"A"}]\n["' + "x" * 5000 + '"]\n[{"E":2,"s":"A"}]\n')
    stats_holder = file_source(str(path))
    with open(path, encoding="utf-8") as handle:
        from market_replay.source import PassStats

        stats = PassStats()
        kept = list(read_lines(handle, stats, max_chars=1000))
    assert [line.strip() for line in kept] == ['[{"E":1,"s":"A"}]', '[{"E":2,"s":"A"}]']
    assert stats.lines == 3 and stats.too_long == 1
    assert len(list(stats_holder.frames())) == 3  # under the real limit (16 Mi characters) it plays


def test_a_truncated_gzip_ends_the_pass_with_a_message_naming_the_line(tmp_path: Path) -> None:
    lines = "".join(f'[{{"E":{1000 * i},"s":"AUSDT","pad":"{i:0>200}"}}]\n' for i in range(1, 2001))
    packed = gzip.compress(lines.encode())
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(packed[: len(packed) // 2])
    source = file_source(str(path))  # its start is fine
    frames = list(source.frames())
    assert source.last_pass is not None and source.last_pass.error is not None
    assert 0 < len(frames) < 2000 and f"line {len(frames) + 1}" in source.last_pass.error
    assert "gzip" in source.last_pass.error


def test_an_unreadable_gzip_start_is_refused_with_the_file_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl.gz"
    path.write_bytes(b"\x1f\x8bnot really gzip at all")
    with pytest.raises(ReplaySourceError, match=r"bad\.jsonl\.gz: line 1: gzip stream unreadable"):
        file_source(str(path))


def test_a_scenario_source_plays_its_lines_each_pass() -> None:
    source = lines_source("scenario:x", ['[{"E":5,"s":"A"}]', "", "broken"])
    assert source.has_frames and source.first_event_time == 5
    assert [f.raw for f in source.frames()] == ['[{"E":5,"s":"A"}]', "broken"]
    assert source.last_pass is not None and source.last_pass.frames == 2


def test_the_pacer_is_the_schedule_one_frame_at_a_time() -> None:
    times = [None, 1000, 3000, 2000, None, 7000]
    pacer = Pacer(2.0)
    assert [pacer.offset(t) for t in times] == schedule(times, 2.0) == pytest.approx([0, 0, 1, 1, 1, 3])
