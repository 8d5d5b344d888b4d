"""The stack's disk samples (`.cdb/disk-history.jsonl`, one JSON object a line, the newest last): written
by `validate` and `status --disk` (cdb_ops.checks.disk), read by every `status` (cdb_ops.views.status).
Bounded, so it never becomes a growth of its own."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cdb_ops.fsutil import atomic_write

HISTORY_FILE = "disk-history.jsonl"
MAX_SAMPLES = 400  # a sample is ~1 KB
RECENT_HOURS = 2
KEEP_DAYS = 8  # growth per day is measured over at most a week


def append_sample(state_dir: Path, sample: dict[str, Any]) -> None:
    """Add `sample` (its `taken_at` a UTC ISO 8601 string). Older samples are thinned so the file stays
    small however often validate runs (a cron job every minute): every sample of the last RECENT_HOURS,
    one per hour before that, none older than KEEP_DAYS, at most MAX_SAMPLES."""
    path = state_dir / HISTORY_FILE
    history = load_history(state_dir)
    newest = datetime.fromisoformat(sample["taken_at"])
    recent = (newest - timedelta(hours=RECENT_HOURS)).isoformat(timespec="seconds")
    oldest = (newest - timedelta(days=KEEP_DAYS)).isoformat(timespec="seconds")
    kept, hours = [], set()
    for h in history:
        if h.stamp < oldest:
            continue
        if h.stamp < recent:
            if h.stamp[:13] in hours:  # "2030-01-01T00": one per hour
                continue
            hours.add(h.stamp[:13])
        kept.append(h.line)
    # `taken_at` first: `status` finds the samples it needs by that prefix and parses only those
    first = {"taken_at": sample["taken_at"], **{k: v for k, v in sample.items() if k != "taken_at"}}
    lines = [*kept[-(MAX_SAMPLES - 1) :], json.dumps(first)]
    state_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(path, "\n".join(lines) + "\n", mode=0o644)


_PREFIX = '{"taken_at": "'


class Sample:
    """One line of the history: its time, read from the line's prefix (UTC ISO 8601 strings, so they sort
    as text), and the rest parsed only when asked: a plain `status` needs two of up to MAX_SAMPLES, and
    parsing all of them cost it 30 ms."""

    def __init__(self, stamp: str, line: str) -> None:
        self.stamp = stamp
        self.line = line

    @property
    def taken_at(self) -> datetime:
        when = datetime.fromisoformat(self.stamp)
        return when if when.tzinfo else when.replace(tzinfo=UTC)

    def data(self) -> dict[str, Any] | None:
        """The sample, or None for a torn line (a write cut short) or a foreign one: as if not there."""
        try:
            item = json.loads(self.line)
            self.taken_at  # noqa: B018 - a stamp that is no time makes the line foreign
        except ValueError:  # (json.JSONDecodeError is one)
            return None
        return item if isinstance(item, dict) else None


def load_history(state_dir: Path) -> list[Sample]:
    """Every line that starts like a sample, oldest first; `data()` tells a torn or foreign one."""
    try:
        text = (state_dir / HISTORY_FILE).read_text()
    except OSError:
        return []
    out = []
    for line in text.splitlines():
        end = line.find('"', len(_PREFIX))
        if line.startswith(_PREFIX) and end > 0:
            out.append(Sample(line[len(_PREFIX) : end], line))
    return out
