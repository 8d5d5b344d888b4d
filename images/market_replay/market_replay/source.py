"""Where a playback's frames come from, read as a stream: a replay file (plain or gzip) or a generated
scenario, one frame at a time.

A recorded day of the live feed is gigabytes; the service's memory limit is 128 MiB. So nothing holds a
file: every pass opens it again and reads it line by line, and memory is one line (at most
MAX_LINE_CHARS) plus the reader's buffers, whatever the file's size. A file is gzip-compressed when its
name ends in `.gz` or it starts with gzip's magic bytes (a renamed file still plays).
"""

from __future__ import annotations

import gzip
import io
import os
import zlib
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from typing import IO

from .replayfile import ReplayFrame, load_frames, parse_line

GZIP_MAGIC = b"\x1f\x8b"
# A frame of the whole market is ~300 KB; a line longer than this is no frame the exchange sends and would
# take the service towards its memory limit: it is skipped (counted, logged), the rest of the file plays.
MAX_LINE_CHARS = 16 * 1024 * 1024
READ_BUFFER = 1024 * 1024  # bytes read from disk at a time (gzip decompresses in step with it)


class ReplaySourceError(Exception):
    """A replay file that cannot be played: the message names the file and what to do."""


def is_gzip(path: str) -> bool:
    if path.endswith(".gz"):
        return True
    with open(path, "rb") as handle:
        return handle.read(2) == GZIP_MAGIC


def open_text(path: str) -> IO[str]:
    """The file as text; a corrupt byte (not UTF-8) becomes U+FFFD and spoils only its own line, which is
    then sent as recorded for the screener to reject."""
    raw: IO[bytes] = open(path, "rb", buffering=READ_BUFFER)  # noqa: SIM115 - closed with the wrapper
    if is_gzip(path):
        raw = gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[assignment]
    return io.TextIOWrapper(raw, encoding="utf-8", errors="replace")  # type: ignore[arg-type]


@dataclass
class PassStats:
    """What one pass over a source met: every line, the frames among them, the lines skipped."""

    lines: int = 0
    frames: int = 0
    too_long: int = 0
    error: str | None = None  # a gzip stream cut short or corrupt: the pass ended there


def read_lines(handle: IO[str], stats: PassStats, max_chars: int = MAX_LINE_CHARS) -> Iterator[str]:
    """The handle's lines, one at a time; a line over `max_chars` is read past in pieces and skipped."""
    while True:
        line = handle.readline(max_chars + 1)
        if not line:
            return
        stats.lines += 1
        if len(line) > max_chars and not line.endswith("\n"):
            stats.too_long += 1
            while line and not line.endswith("\n"):  # the rest of the long line, never held at once
                line = handle.readline(max_chars)
            continue
        yield line


@dataclass
class ReplaySource:
    """A replay that can be played any number of times, each pass a fresh stream."""

    name: str  # the path, or "scenario:<name>"
    open_pass: Callable[[PassStats], Iterator[ReplayFrame]]
    size_bytes: int | None = None
    compressed: bool = False
    first_event_time: int | None = None  # E of the first timed frame (set by `inspect`)
    has_frames: bool = False
    last_pass: PassStats | None = field(default=None)

    def frames(self) -> Generator[ReplayFrame, None, None]:
        """One pass: every frame in order; the pass's counts land in `last_pass` when it ends."""
        stats = PassStats()
        try:
            yield from self.open_pass(stats)
        finally:
            self.last_pass = stats

    def inspect(self) -> None:
        """Read up to the first timed frame: the file is readable, has a frame, and where its time starts
        (a file without any timed frame is read to its end, once)."""
        stats = PassStats()
        for frame in self.open_pass(stats):
            self.has_frames = True
            if frame.event_time is not None:
                self.first_event_time = frame.event_time
                break
        if stats.error:
            raise ReplaySourceError(f"{self.name}: {stats.error}")


def file_source(path: str) -> ReplaySource:
    """A replay file, checked: readable, and (for gzip) a gzip stream at least at its start."""
    try:
        size = os.path.getsize(path)
        compressed = is_gzip(path)
    except OSError as exc:
        raise ReplaySourceError(f"{path}: cannot read the replay file ({exc.strerror}); check REPLAY_FILE") from None

    def open_pass(stats: PassStats) -> Iterator[ReplayFrame]:
        try:
            with open_text(path) as handle:
                for line in read_lines(handle, stats):
                    frame = parse_line(line)
                    if frame is not None:
                        stats.frames += 1
                        yield frame
        except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
            stats.error = (
                f"line {stats.lines + 1}: {'gzip stream' if compressed else 'file'} unreadable "
                f"({type(exc).__name__}: {exc}); re-compress it with `gzip -t` clean, or play the plain .jsonl"
            )

    source = ReplaySource(name=path, open_pass=open_pass, size_bytes=size, compressed=compressed)
    source.inspect()
    return source


def lines_source(name: str, lines: list[str]) -> ReplaySource:
    """A generated scenario (a few hundred frames): held as parsed frames, each pass iterates them."""
    frames = load_frames(lines)

    def open_pass(stats: PassStats) -> Iterator[ReplayFrame]:
        stats.lines = len(lines)
        for frame in frames:
            stats.frames += 1
            yield frame

    source = ReplaySource(name=name, open_pass=open_pass)
    source.inspect()
    return source
