"""The exchange's connection rules (SPEC §8, Binance spot streams), free of I/O.

The server pings every 20 s and drops a client whose pong, echoing the ping's payload, has not arrived
within 60 s; a connection lives at most 24 h; `serverShutdown` announces maintenance (reconnect now).
The replay enforces them with these settings, so a test can make the 24 h limit a few seconds:
REPLAY_PING_SECONDS, REPLAY_PONG_TIMEOUT_SECONDS, REPLAY_MAX_CONNECTION_SECONDS and
REPLAY_SHUTDOWN_CLOSE_SECONDS (how long a connection told `serverShutdown` keeps streaming before the
server closes it).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass

from cdb_common.config import ConfigError

CONTROL_ACTIONS = ("shutdown", "silence", "close")


def env_seconds(env: Mapping[str, str], name: str, default: float, *, minimum: float = 0.1) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)  # a duration, not money
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number of seconds") from None
    if not math.isfinite(value) or value < minimum:
        raise ConfigError(f"{name}={raw} must be a number of seconds >= {minimum:g}")
    return value


@dataclass(frozen=True)
class ConnectionRules:
    ping_seconds: float = 20.0
    pong_timeout_seconds: float = 60.0
    max_connection_seconds: float = 24 * 3600.0
    shutdown_close_seconds: float = 10.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ConnectionRules:
        return cls(
            ping_seconds=env_seconds(env, "REPLAY_PING_SECONDS", cls.ping_seconds),
            pong_timeout_seconds=env_seconds(env, "REPLAY_PONG_TIMEOUT_SECONDS", cls.pong_timeout_seconds),
            max_connection_seconds=env_seconds(env, "REPLAY_MAX_CONNECTION_SECONDS", cls.max_connection_seconds),
            shutdown_close_seconds=env_seconds(env, "REPLAY_SHUTDOWN_CLOSE_SECONDS", cls.shutdown_close_seconds),
        )

    def as_dict(self) -> dict[str, float]:
        return {
            "ping_seconds": self.ping_seconds,
            "pong_timeout_seconds": self.pong_timeout_seconds,
            "max_connection_seconds": self.max_connection_seconds,
            "shutdown_close_seconds": self.shutdown_close_seconds,
        }


class PingLedger:
    """The pings a connection has not answered yet. A pong answers the ping whose payload it echoes and
    every older one (a client may coalesce pongs, RFC 6455 §5.5.3); a pong echoing nothing we sent
    answers nothing. Overdue: the oldest unanswered ping is older than the pong timeout."""

    def __init__(self) -> None:
        self._sent: dict[bytes, float] = {}  # payload -> sent at, oldest first

    def sent(self, payload: bytes, at: float) -> None:
        self._sent[payload] = at

    def pong(self, payload: bytes) -> bool:
        if payload not in self._sent:
            return False
        for key in list(self._sent):
            del self._sent[key]
            if key == payload:
                break
        return True

    def unanswered(self) -> int:
        return len(self._sent)

    def overdue(self, now: float, timeout: float) -> bool:
        oldest = next(iter(self._sent.values()), None)
        return oldest is not None and now - oldest > timeout


def server_shutdown_event(event_time: int) -> str:
    """The exchange's maintenance notice, as it sends it on a stream."""
    return json.dumps({"e": "serverShutdown", "E": event_time}, separators=(",", ":"))


def parse_control(body: object) -> tuple[str, float]:
    """POST /control's body: {"action": "shutdown"|"silence"|"close", "seconds": N (silence only)}.
    Returns (action, seconds); raises ValueError with a message for the caller."""
    if not isinstance(body, dict):
        raise ValueError('body must be a JSON object: {"action": "shutdown"|"silence"|"close", "seconds": N}')
    action = body.get("action")
    if action not in CONTROL_ACTIONS:
        raise ValueError(f"action must be one of {', '.join(CONTROL_ACTIONS)}, not {action!r}")
    seconds = body.get("seconds", 0)
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not math.isfinite(seconds):
        raise ValueError("seconds must be a number")
    if action == "silence" and not 0 < seconds <= 3600:
        raise ValueError("silence needs seconds in (0, 3600]")
    return action, float(seconds)
