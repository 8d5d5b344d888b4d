"""What a run's upgrade did — the drain, the swaps, what was kept or rolled back — as plain data: the run's
result carries it (`upgrade` in `rebuild --json`, the hook a journal records), and .cdb/last-upgrade.json
keeps the last successful one for `cdb-ops rollback`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class InFlight:
    """What is still on its way through risk and execution at one moment."""

    pending: dict[str, int]  # "stream/group" -> entries delivered to the group, not yet acknowledged
    new_orders: int  # orders neither filled nor rejected, cancelled or expired, that a consumer may still hold
    # NEW orders no consumer holds: execution has read and answered every order entry, so these rows came
    # from somewhere else (a restored dump taken mid-flight, a publish Redis refused) and only their
    # ORDER_TTL_SECONDS expiry ends them; a swap cannot lose them, so a drain does not wait for them
    stranded_orders: int = 0

    @property
    def clear(self) -> bool:
        return self.new_orders == 0 and not any(self.pending.values())

    def describe(self) -> str:
        parts = [f"{n} pending on {where}" for where, n in self.pending.items() if n]
        if self.new_orders:
            parts.append(f"{self.new_orders} order(s) NEW")
        text = ", ".join(parts) or "nothing in flight"
        if self.stranded_orders:
            text += f" ({self.stranded_orders} NEW order(s) no consumer holds: they expire after ORDER_TTL_SECONDS)"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "pending": dict(self.pending),
            "new_orders": self.new_orders,
            "stranded_orders": self.stranded_orders,
        }


@dataclass
class BookDrain:
    """One book a drain put into REDUCING (or found HALTED/REDUCING and left alone)."""

    book: str
    before: str  # the stored state before the drain
    changed: bool  # whether the drain wrote REDUCING (only then is there something to give back)
    restored: str | None = None  # what the book was given back, or why not

    def to_dict(self) -> dict[str, Any]:
        return {"book": self.book, "before": self.before, "set_reducing": self.changed, "restored": self.restored}


@dataclass
class DrainRecord:
    books: list[BookDrain] = field(default_factory=list)
    at_start: InFlight | None = None
    at_end: InFlight | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "books": [b.to_dict() for b in self.books],
            "in_flight_at_start": self.at_start.to_dict() if self.at_start else None,
            "in_flight_at_swap": self.at_end.to_dict() if self.at_end else None,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class Swap:
    """One container replaced by a run: the old one is kept (stopped) under `kept` until the run ends, then
    as `<name>-previous` until the next upgrade."""

    service: str
    container: str
    kept: str
    old_image: str
    old_config: str
    new_image: str = ""
    new_config: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "container": self.container,
            "kept_as": self.kept,
            "previous_image_id": self.old_image,
            "previous_config_hash": self.old_config,
            "new_image_id": self.new_image,
            "new_config_hash": self.new_config,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Swap:
        return cls(
            d["service"],
            d["container"],
            d["kept_as"],
            d["previous_image_id"],
            d["previous_config_hash"],
            d.get("new_image_id", ""),
            d.get("new_config_hash", ""),
        )


@dataclass
class Upgrade:
    """A run's upgrade so far. `rolled_back` names the services put back after a failure."""

    drain: DrainRecord | None = None
    swaps: list[Swap] = field(default_factory=list)
    rolled_back: list[str] = field(default_factory=list)
    rollback_problems: list[str] = field(default_factory=list)
    migrations: list[str] = field(default_factory=list)  # applied by this run
    backup: str | None = None  # the verified backup taken before them

    @property
    def empty(self) -> bool:
        return self.drain is None and not self.swaps and not self.migrations

    def to_dict(self) -> dict[str, Any]:
        return {
            "drain": self.drain.to_dict() if self.drain else None,
            "swaps": [s.to_dict() for s in self.swaps],
            "rolled_back": list(self.rolled_back),
            "rollback_problems": list(self.rollback_problems),
            "migrations": list(self.migrations),
            "backup_before_migrations": self.backup,
        }
