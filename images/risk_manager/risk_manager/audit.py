"""Append-only JSON-lines audit file of every risk decision (on the cdb_risk_logs volume).

Each line is written with one write() on an O_APPEND descriptor and fsync'ed before the service moves
on, so a crash can cut at most the line being written, never rewrite an earlier one.
"""

from __future__ import annotations

import json
import os
from decimal import Decimal
from typing import Any


def _default(value: Any) -> Any:
    return (
        format(value, "f")
        if isinstance(value, Decimal)
        else value.isoformat()
        if hasattr(value, "isoformat")
        else str(value)
    )


class AuditLog:
    def __init__(self, path: str) -> None:
        self.path = path
        self.lines_written = 0
        self.last_error: str | None = None

    def append(self, record: dict[str, Any]) -> None:
        """Append one JSON line durably; raises OSError when the volume cannot take it."""
        line = (json.dumps(record, default=_default, separators=(",", ":"), sort_keys=True) + "\n").encode()
        directory = os.path.dirname(self.path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        self.lines_written += 1
