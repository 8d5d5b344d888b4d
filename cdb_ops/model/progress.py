"""The progress events a run emits (phases, steps, build lines, notes); `report/` renders them."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def phase(self, name: str, kind: str) -> None: ...
    def step(
        self, phase: str, resource: str, name: str, action: str, detail: str = "", seconds: float | None = None
    ) -> None: ...
    def line(self, source: str, text: str) -> None: ...
    def note(self, text: str) -> None: ...
