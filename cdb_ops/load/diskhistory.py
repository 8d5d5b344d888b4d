"""The stack's disk samples (`.cdb/disk-history.jsonl`, one JSON object a line, the newest last): written
by `validate` and `status --disk` (cdb_ops.checks.disk), read by every `status` (cdb_ops.views.status).
Bounded, so it never becomes a growth of its own."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cdb_ops.fsutil import atomic_write

HISTORY_FILE = "disk-history.jsonl"
MAX_SAMPLES = 400  # a sample is ~1 KB; samples a few per day cover months


def append_sample(state_dir: Path, sample: dict[str, Any]) -> None:
    """Add `sample`, keeping the newest MAX_SAMPLES."""
    path = state_dir / HISTORY_FILE
    lines = path.read_text().splitlines() if path.exists() else []
    lines = [*lines[-(MAX_SAMPLES - 1) :], json.dumps(sample, sort_keys=True)]
    state_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(path, "\n".join(lines) + "\n", mode=0o644)


def load_history(state_dir: Path) -> list[dict[str, Any]]:
    """Every readable sample, oldest first (a torn or foreign line is skipped, never an error)."""
    try:
        text = (state_dir / HISTORY_FILE).read_text()
    except OSError:
        return []
    out = []
    for line in text.splitlines():
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(item, dict) and isinstance(item.get("taken_at"), str):
            out.append(item)
    return out
