"""Epoch-millisecond helpers (exact integer arithmetic: no float on the way to a timestamp column)."""

from __future__ import annotations

from datetime import UTC, datetime


def ms_to_datetime(ms: int) -> datetime:
    seconds, millis = divmod(ms, 1000)
    return datetime.fromtimestamp(seconds, UTC).replace(microsecond=millis * 1000)


def minute_of(ms: int) -> datetime:
    """Start of the UTC minute containing `ms` (the market_snapshots.minute key)."""
    return datetime.fromtimestamp(ms // 60_000 * 60, UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)
