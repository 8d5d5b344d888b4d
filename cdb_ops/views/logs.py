"""`logs`: the stack's logs merged by time, one colour per service; `--errors` keeps error lines."""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cdb_ops.checks.logscan import error_lines
from cdb_ops.engine.api import EngineFacts
from cdb_ops.engine.mapping import parse_docker_time
from cdb_ops.errors import UsageError
from cdb_ops.load.desired import DesiredStack

COLOURS = ["cyan", "magenta", "green", "yellow", "blue", "bright_red", "bright_cyan", "bright_magenta", "white"]


@dataclass(frozen=True)
class LogLine:
    service: str
    ts: datetime | None
    text: str

    def to_dict(self) -> dict[str, Any]:
        return {"service": self.service, "ts": self.ts.isoformat() if self.ts else None, "line": self.text}


def parse(service: str, raw: str) -> LogLine:
    """Docker's `--timestamps` prefix ('2026-11-24T09:44:59.763123456Z line') split off."""
    stamp, _, text = raw.partition(" ")
    ts = parse_docker_time(stamp) if stamp[:4].isdigit() and "T" in stamp else None
    return LogLine(service, ts, text if ts else raw)


def is_error(line: str) -> bool:
    errors, db = error_lines(line)
    return bool(errors or db)


def select(desired: DesiredStack, names: list[str]) -> dict[str, str]:
    """Service name -> container name; SERVICE may be the service key or the container name."""
    by_container = {s.container.name: n for n, s in desired.services.items()}
    chosen: dict[str, str] = {}
    for name in names or list(desired.services):
        key = name if name in desired.services else by_container.get(name)
        if key is None:
            raise UsageError(f"unknown service {name!r}", f"use one of: {', '.join(desired.services)}")
        chosen[key] = desired.services[key].container.name
    return chosen


def merged(
    engine: EngineFacts, containers: dict[str, str], since: datetime | None, tail: int, errors_only: bool
) -> list[LogLine]:
    lines: list[LogLine] = []
    for service, container in containers.items():
        raw = engine.logs(container, tail=tail, since=since, timestamps=True)
        lines += [parse(service, r) for r in raw.splitlines() if r.strip()]
    if errors_only:
        lines = [ln for ln in lines if is_error(ln.text)]
    return sorted(lines, key=lambda ln: (ln.ts is None, ln.ts or datetime.min))


def follow(
    engine: EngineFacts, containers: dict[str, str], since: datetime | None, errors_only: bool
) -> Iterator[LogLine]:
    """Lines from every container as they arrive (one reader thread each, merged through a queue)."""
    q: queue.Queue[LogLine] = queue.Queue()

    def reader(service: str, container: str) -> None:
        for raw in engine.follow_logs(container, since=since):
            q.put(parse(service, raw))

    for service, container in containers.items():
        threading.Thread(target=reader, args=(service, container), daemon=True).start()
    while True:
        line = q.get()
        if not errors_only or is_error(line.text):
            yield line


def as_json_line(line: LogLine) -> str:
    return json.dumps(line.to_dict())
