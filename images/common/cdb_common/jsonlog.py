"""JSON-line logging to stdout: one object per line with ts, level, service, msg and any extras.

ERROR is reserved for real faults (`cdb-ops validate` fails on ERROR lines); transient outages that a
reconnect loop handles are logged as WARNING.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from decimal import Decimal
from typing import IO, Any

# Attributes every LogRecord has; anything else was passed through `extra=` and is emitted as a field.
_STANDARD_ATTRS = frozenset(
    vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None)).keys() | {"message", "asctime", "taskName"}
)


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


class JsonFormatter(logging.Formatter):
    """Render a record as one JSON line; extras become top-level fields."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "service": self.service,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and key not in payload:
                payload[key] = value
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=_default, separators=(",", ":"))


def setup_logging(service: str, level: str = "INFO", stream: IO[str] | None = None) -> logging.Logger:
    """Route the root logger to `stream` (stdout) as JSON lines at `level` (the LOG_LEVEL setting)."""
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # aiohttp's access log would print a line per /health probe; keep it quiet unless debugging.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # websockets logs every failed handshake at ERROR-ish levels on its own; our loops report instead.
    logging.getLogger("websockets").setLevel(logging.CRITICAL)
    return logging.getLogger(service)
