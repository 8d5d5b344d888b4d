"""Replay files and pacing, free of I/O: JSON lines of raw `!miniTicker@arr` frames and when to send them.

Every non-empty line is one frame, sent as recorded (a broken line too: it exercises the screener's
rejection path). A frame's time is the largest E of its items; pacing follows those times divided by
the speed (0 = as fast as possible). Lines without a readable E are sent right after the previous one.
Optionally E is shifted so the first frame of each loop carries "now" and loops stay monotonic.
Files are read as streams (source.py): nothing here holds more than one frame.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

_MARK = "\u0000cdb-replay-E\u0000"  # stands in for each E while a frame's template is made
_MARK_JSON = json.dumps(_MARK)


@dataclass(frozen=True)
class ReplayFrame:
    raw: str
    event_time: int | None  # max E of the items, None when the line is not a readable frame
    items: list[dict[str, Any]] | None  # the parsed array (for time shifting), None when unreadable

    @cached_property
    def template(self) -> tuple[tuple[str, ...], tuple[int, ...]] | None:
        """The frame's JSON cut around every shiftable E, and those Es: a shifted copy is then a join, not
        a json.dumps of every item (a looping replay shifts every frame it sends; flat out, re-serialising
        took a fifth of a core from the pipeline it feeds). None when the cut is not clean (an item's
        own text holds the marker), and `shifted` serialises as before."""
        if self.items is None:
            return None
        times = [int(item["E"]) for item in self.items if isinstance(item, dict) and isinstance(item.get("E"), int)]
        cut = _cut_compact(self.raw, times)
        if cut is not None:
            return cut, tuple(times)
        marked = [{**i, "E": _MARK} if isinstance(i, dict) and isinstance(i.get("E"), int) else i for i in self.items]
        parts = json.dumps(marked, separators=(",", ":")).split(_MARK_JSON)
        return (tuple(parts), tuple(times)) if len(parts) == len(times) + 1 else None


def _cut_compact(raw: str, times: list[int]) -> tuple[str, ...] | None:
    """The recorded line itself cut around its Es, when that is certain to be right: the line is compact
    (no `": `, as the exchange and every recorder here write it), so every `"E":<digits>` in it - at any
    depth - is found, and they are exactly the items' Es, in order. Streaming a file, every pass parses
    each frame again: cutting the text is ~40x cheaper than serialising a 300-pair frame. Anything else
    (spaces, an E nested in an item, a boolean E) is left to the serialising path."""
    if '": ' in raw:
        return None
    pieces = raw.split('"E":')
    if len(pieces) != len(times) + 1:
        return None
    parts = [pieces[0] + '"E":']
    for piece, value in zip(pieces[1:], times, strict=True):
        digits = str(value)
        if not piece.startswith(digits) or piece[len(digits) : len(digits) + 1] not in (",", "}"):
            return None
        parts.append(piece[len(digits) :] + '"E":')
    parts[-1] = parts[-1][: -len('"E":')]
    return tuple(parts)


def frame_event_time(data: Any) -> int | None:
    if not isinstance(data, list):
        return None
    times = [
        item["E"]
        for item in data
        if isinstance(item, dict) and isinstance(item.get("E"), int) and not isinstance(item.get("E"), bool)
    ]
    return max(times) if times else None


def parse_line(line: str) -> ReplayFrame | None:
    """One line of a replay file; None for blank lines."""
    raw = line.rstrip("\r\n")
    if not raw.strip():
        return None
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser goes
        return ReplayFrame(raw=raw, event_time=None, items=None)
    event_time = frame_event_time(data)
    items = data if event_time is not None else None
    return ReplayFrame(raw=raw, event_time=event_time, items=items)


def load_frames(lines: Iterable[str]) -> list[ReplayFrame]:
    return [frame for frame in (parse_line(line) for line in lines) if frame is not None]


def load_file(path: str) -> list[ReplayFrame]:
    """A small replay file's frames, all at once (tests, tools); the service streams (source.py). A corrupt
    byte (not UTF-8) spoils its own line, not the whole replay: it becomes U+FFFD and the line is sent as
    recorded, for the screener to reject."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        return load_frames(handle)


class Pacer:
    """When each frame of a stream is due, in seconds after playback start, one frame at a time.

    Offsets are absolute (from the first timed frame), so sleeping until each one never accumulates
    drift; they never go backwards (an out-of-order E is sent at once). A frame without a readable E
    is due with the one before it.
    """

    def __init__(self, speed: float) -> None:
        if speed < 0:
            raise ValueError("speed must be >= 0")
        self.speed = speed
        self.first: int | None = None
        self.current = 0.0

    def offset(self, event_time: int | None) -> float:
        if self.speed > 0 and event_time is not None:
            if self.first is None:
                self.first = event_time
            self.current = max(self.current, (event_time - self.first) / 1000.0 / self.speed)
        return self.current


def schedule(event_times: list[int | None], speed: float) -> list[float]:
    """Seconds after playback start at which each frame is due (Pacer over a whole list)."""
    pacer = Pacer(speed)
    return [pacer.offset(event_time) for event_time in event_times]


def shifted(frame: ReplayFrame, shift_ms: int) -> str:
    """The frame with every item's E moved by `shift_ms`, in the exchange's compact JSON form."""
    if frame.items is None or shift_ms == 0:
        return frame.raw
    template = frame.template
    if template is not None:
        parts, times = template
        out = [parts[0]]
        for event_time, part in zip(times, parts[1:], strict=True):
            out.append(str(event_time + shift_ms))
            out.append(part)
        return "".join(out)
    items = []
    for item in frame.items:
        if isinstance(item, dict) and isinstance(item.get("E"), int):
            item = {**item, "E": item["E"] + shift_ms}
        items.append(item)
    return json.dumps(items, separators=(",", ":"))


def loop_shift(first_event_time: int, now_ms: int, last_sent_event_time: int | None) -> int:
    """Shift that makes a loop start at `now_ms` and never go back behind what was already sent."""
    start = now_ms if last_sent_event_time is None else max(now_ms, last_sent_event_time + 1)
    return start - first_event_time


def hold_frame(last_items: dict[str, dict[str, Any]], event_time: int) -> str | None:
    """After a non-looping replay: every symbol's last state again at `event_time` (a flat market)."""
    if not last_items:
        return None
    items = [{**item, "E": event_time} for item in last_items.values()]
    return json.dumps(items, separators=(",", ":"))
