"""One row of `cdb-ops status`: a container as the trader sees it. A module of its own so the quick status
path imports one small class, not every command result (each dataclass costs its import time)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cdb_ops.model.facts import LastExit, human_mib


@dataclass(frozen=True)
class StatusRow:
    service: str
    container: str
    state: str  # running | exited | ... | missing
    health: str | None
    uptime_seconds: float | None
    restarts: int
    ports: list[str]
    memory_bytes: int | None
    cpu_percent: float | None
    image: str
    role: str
    priority: str
    memory_limit: int | None = None  # HostConfig.Memory; None: none set (or the container is missing)
    last_exit: LastExit | None = None  # how the last run ended, when one did (OOMKilled, exit code)
    oom_kills: int | None = None  # processes the OOM killer ended in the current run (cgroup); None: unread

    @property
    def exit_note(self) -> str:
        """A short line under the state: 'OOMKilled · exit 137 · limit 128 MiB', '' when nothing ended."""
        notes: list[str] = []
        gone = self.last_exit
        if gone is not None and gone.killed:
            notes.append("OOMKilled" if gone.oom_killed else "SIGKILL")
            if gone.exit_code is not None:
                notes.append(f"exit {gone.exit_code}")
        elif gone is not None and gone.exit_code and self.state != "running":
            notes.append(f"exit {gone.exit_code}")
        if self.oom_kills:
            notes.append(f"{self.oom_kills} process(es) OOM-killed in this run")
        if self.memory_limit and ((gone is not None and gone.killed) or self.oom_kills):
            notes.append(f"limit {human_mib(self.memory_limit)}")
        return " · ".join(notes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "container": self.container,
            "state": self.state,
            "health": self.health,
            "uptime_seconds": None if self.uptime_seconds is None else round(self.uptime_seconds, 1),
            "restarts": self.restarts,
            "ports": self.ports,
            "memory_bytes": self.memory_bytes,
            "cpu_percent": None if self.cpu_percent is None else round(self.cpu_percent, 2),
            "image": self.image,
            "role": self.role,
            "priority": self.priority,
            "memory_limit_bytes": self.memory_limit,
            "last_exit": self.last_exit.to_dict() if self.last_exit else None,
            "oom_kills": self.oom_kills,
        }


FOOTER_WIDTH = 120  # a footer line never runs longer: rich would wrap it mid-phrase in a 160-column pipe


def footer_lines(head: str, items: list[str], sep: str = ", ", indent: str = "    ") -> list[str]:
    """`head` followed by `items` joined with `sep`, packed into lines of at most FOOTER_WIDTH characters
    (an item is never split); lines after the first are indented under the head."""
    out, line = [], head
    for i, item in enumerate(items):
        piece = item + (sep.rstrip() if i < len(items) - 1 else "")  # the separator's space is the join's
        if line != head and len(line) + 1 + len(piece) > FOOTER_WIDTH:  # (the head never stands alone)
            out.append(line)
            line = indent + piece
        else:
            line = f"{line} {piece}"
    out.append(line)
    return out
