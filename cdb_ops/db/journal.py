"""The journal (table `journal`, migration 009): what was live when, and who changed what and why.

cdb-ops writes the rows of its own runs — `rebuild`/`run` (at the end of every run that starts or checks
services), `rollback`, `restore` — each with the set of live containers read from the engine: per service
the container, its image id, its config hash (the label convergence keys on) and when it started. The
database writes the rest itself, in the same transaction as the change (triggers of migration 009): every
trading-state change (`book_states`) and every trip of the daily breaker (`daily_pnl`), each carrying the
newest live set the journal knows.

For a component that records its own event (the drained upgrade's rollback does):

    from cdb_ops.db import journal
    journal.record_event(engine, desired, settings, "rollback", "probe failed after swapping risk", details)

Which version made a fill follows from the live sets: a container serves from its start until the next
container of its service starts, so the version behind an event at time T is the journalled container of
that service with the latest start at or before T (`version_at`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from cdb_ops.model.facts import ContainerFacts
from cdb_ops.model.labels import LABEL_HASH, LABEL_IMAGE, LABEL_SERVICE, LABEL_TASK, REPLACED_MARK

if TYPE_CHECKING:
    from cdb_ops.load.desired import DesiredStack
    from cdb_ops.load.settings import Settings
    from cdb_ops.redact import Redactor


class ContainerReads(Protocol):
    """What the journal reads of the engine (engine.api.ContainerReads has it; db/ does not import engine/)."""

    def containers(self, label: str | None = None, detail: bool = True) -> list[ContainerFacts]: ...


KINDS = ("state", "breaker", "rebuild", "rollback", "restore")
# the kinds whose rows cdb-ops writes with a live set it read itself (the others copy the newest one)
OWN_KINDS = ("rebuild", "rollback", "restore")

INSERT = """
INSERT INTO journal (kind, book, who, why, live, live_seen_at, details)
VALUES (%s, %s, %s, %s, %s::jsonb, %s, %s::jsonb) RETURNING id
"""
SELECT_LATEST_LIVE = "SELECT live FROM journal WHERE live IS NOT NULL ORDER BY id DESC LIMIT 1"
SELECT_ENTRIES = """
SELECT id, at, kind, book, who, why, live, live_seen_at, details FROM journal
WHERE at >= %(after)s AND (%(kinds)s::text[] IS NULL OR kind = ANY(%(kinds)s))
  AND (%(book)s::text IS NULL OR book IS NULL OR book = %(book)s)
ORDER BY at, id
"""
# every live set ever journalled: few rows (one per run or change), read whole to date each fill
SELECT_LIVE_SETS = "SELECT live FROM journal WHERE live IS NOT NULL ORDER BY id"


@dataclass(frozen=True)
class Entry:
    id: int
    at: datetime
    kind: str
    book: str | None
    who: str
    why: str
    live: dict[str, Any] | None
    live_seen_at: datetime | None
    details: dict[str, Any]

    @property
    def changed_services(self) -> list[str]:
        """The services whose image or configuration this run put live (empty: nothing swapped)."""
        return list(self.details.get("changed") or [])

    @property
    def is_marker(self) -> bool:
        """Worth a mark on the equity curve: a state change, a breaker trip, a rollback or restore, and a
        rebuild that swapped a service (a no-op rebuild changes nothing the curve could show)."""
        return self.kind != "rebuild" or bool(self.changed_services)

    @property
    def title(self) -> str:
        """A short label: `replay HALTED`, `breaker replay`, `rebuild: risk, execution`, `rollback`."""
        if self.kind == "state":
            return f"{self.book} {self.details.get('state', '?')}"
        if self.kind == "breaker":
            return f"{self.book} REDUCING (breaker)"
        if self.kind == "rebuild":
            return "rebuild: " + (", ".join(self.changed_services) or "no change")
        return self.kind

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "kind": self.kind,
            "book": self.book,
            "who": self.who,
            "why": self.why,
            "live": self.live,
            "live_seen_at": self.live_seen_at.isoformat() if self.live_seen_at else None,
            "details": self.details,
        }


def live_set(engine: ContainerReads, system_label: str) -> dict[str, dict[str, Any]]:
    """The stack's running containers by service: container, id, image id, image, config hash, started.
    Containers set aside during a swap and throwaway task containers are not live."""
    out: dict[str, dict[str, Any]] = {}
    for c in engine.containers(label=system_label):
        service = c.labels.get(LABEL_SERVICE)
        if not c.running or not service or REPLACED_MARK in c.name or LABEL_TASK in c.labels:
            continue
        out[service] = {
            "container": c.name,
            "container_id": c.id[:12],
            "image_id": c.image_id,
            "image": c.labels.get(LABEL_IMAGE, c.image_ref),
            "config_hash": c.labels.get(LABEL_HASH),
            "started_at": c.started_at.isoformat() if c.started_at else None,
        }
    return dict(sorted(out.items()))


def live_changes(before: dict[str, Any] | None, after: dict[str, Any] | None) -> list[str]:
    """The services whose version (image id or config hash) differs between two live sets, or that came
    or went; empty when `before` is unknown (the first row has nothing to compare with)."""
    if before is None or after is None:
        return []

    def version(entry: dict[str, Any] | None) -> tuple[Any, Any] | None:
        return None if entry is None else (entry.get("image_id"), entry.get("config_hash"))

    return sorted(s for s in set(before) | set(after) if version(before.get(s)) != version(after.get(s)))


def has_journal(conn: Any) -> bool:
    from psycopg.rows import tuple_row

    row = conn.cursor(row_factory=tuple_row).execute("SELECT to_regclass('public.journal')").fetchone()
    return bool(row and row[0] is not None)


def record(
    conn: Any,
    kind: str,
    who: str,
    why: str,
    *,
    live: dict[str, Any] | None = None,
    live_seen_at: datetime | None = None,
    book: str | None = None,
    details: dict[str, Any] | None = None,
) -> int:
    """Append one row; its id. With `live`, details["changed"] names the services whose version differs
    from the newest live set before it (what this run swapped)."""
    from psycopg.rows import tuple_row

    if kind not in KINDS:
        raise ValueError(f"unknown journal kind {kind!r}")
    details = dict(details or {})
    cur = conn.cursor(row_factory=tuple_row)
    if live is not None:
        previous = cur.execute(SELECT_LATEST_LIVE).fetchone()
        details.setdefault("changed", live_changes(previous[0] if previous else None, live))
    row = cur.execute(
        INSERT,
        (
            kind,
            book,
            who[:200],
            (why or kind)[:1000],
            None if live is None else json.dumps(live),
            live_seen_at,
            json.dumps(details, default=str),
        ),
    ).fetchone()
    return int(row[0])


def record_event(
    engine: ContainerReads | None,
    desired: DesiredStack,
    settings: Settings,
    kind: str,
    why: str,
    details: dict[str, Any] | None = None,
    *,
    redact: Redactor | None = None,
    who: str | None = None,
) -> str | None:
    """Journal one of cdb-ops' own events (rebuild, rollback, restore) with the live set read from `engine`
    now, best effort like ops_runs: None when recorded, else why not (the run's own result stands).
    Secrets never reach the row: `why` and `details` pass through `redact`."""
    import psycopg

    from cdb_ops.db.trading_state import who as whoami
    from cdb_ops.errors import CdbError
    from cdb_ops.load.endpoints import postgres_conninfo

    live: dict[str, Any] | None = None
    seen_at = None
    problem = None
    if engine is not None:
        from datetime import UTC

        try:
            live, seen_at = live_set(engine, desired.system_label), datetime.now(UTC)
        except CdbError as exc:
            problem = f"live containers unknown: {exc.message}"
    details = dict(details or {})
    if problem:
        details["live_unknown"] = problem
    if redact is not None:
        why = redact(why)
        details = json.loads(redact(json.dumps(details, default=str)))
    try:
        conninfo = postgres_conninfo(desired, settings)
        with psycopg.connect(**conninfo, connect_timeout=3, autocommit=True) as conn:
            if not has_journal(conn):
                return "the journal does not exist yet (migration 009_journal is not applied)"
            record(conn, kind, who or whoami(), why, live=live, live_seen_at=seen_at, details=details)
    except CdbError as exc:
        return exc.message
    except psycopg.Error as exc:
        text = str(exc).strip()
        return text.splitlines()[-1] if text else type(exc).__name__
    return None


def entries(conn: Any, after: datetime, kinds: list[str] | None = None, book: str | None = None) -> list[Entry]:
    """The journal's rows from `after` on, oldest first; `book`: that book's rows and the stack-wide ones
    (rebuilds, rollbacks, restores)."""
    from psycopg.rows import tuple_row

    rows = (
        conn.cursor(row_factory=tuple_row)
        .execute(SELECT_ENTRIES, {"after": after, "kinds": kinds, "book": book})
        .fetchall()
    )
    return [Entry(int(i), at, k, b, w, y, live, seen, det or {}) for i, at, k, b, w, y, live, seen, det in rows]


# -- which version made a fill ------------------------------------------------------------------------


@dataclass(frozen=True)
class Version:
    service: str
    container_id: str
    image_id: str | None
    config_hash: str | None
    started_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "container_id": self.container_id,
            "image_id": self.image_id,
            "config_hash": self.config_hash,
            "started_at": self.started_at.isoformat(),
        }

    @property
    def short(self) -> str:
        """`image 1a2b3c4d5e6f · config 0a1b2c3d` for a table."""
        image = (self.image_id or "?").removeprefix("sha256:")[:12]
        return f"image {image} · config {(self.config_hash or '?')[:8]}"


def versions_of(live_sets: list[dict[str, Any]], service: str) -> list[Version]:
    """Each journalled container start of `service`, oldest first (one per start: a set repeats it)."""
    seen: dict[tuple[str, str], Version] = {}
    for live in live_sets:
        entry = (live or {}).get(service)
        if not entry or not entry.get("started_at"):
            continue
        key = (str(entry.get("container_id")), str(entry["started_at"]))
        if key not in seen:
            seen[key] = Version(
                service,
                str(entry.get("container_id")),
                entry.get("image_id"),
                entry.get("config_hash"),
                datetime.fromisoformat(str(entry["started_at"])),
            )
    return sorted(seen.values(), key=lambda v: v.started_at)


def version_at(versions: list[Version], at: datetime) -> Version | None:
    """The container that served at `at`: the latest start at or before it (None: before the journal)."""
    found = None
    for v in versions:
        if v.started_at <= at:
            found = v
        else:
            break
    return found


def load_versions(conn: Any, services: tuple[str, ...]) -> dict[str, list[Version]]:
    from psycopg.rows import tuple_row

    sets = [r[0] for r in conn.cursor(row_factory=tuple_row).execute(SELECT_LIVE_SETS).fetchall()]
    return {s: versions_of(sets, s) for s in services}


# -- a restore puts the dump's journal back: the rows written since the dump are carried over ------------

SELECT_ALL = "SELECT at, kind, book, who, why, live, live_seen_at, details FROM journal ORDER BY id"
INSERT_CARRIED = """
INSERT INTO journal (at, kind, book, who, why, live, live_seen_at, details)
VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s, %s::jsonb)
"""


def read_all(conninfo: dict[str, Any]) -> list[tuple[Any, ...]] | None:
    """Every row, before a restore replaces them (None: no journal, or the database cannot be read)."""
    import psycopg
    from psycopg.rows import tuple_row

    try:
        with psycopg.connect(**conninfo, connect_timeout=3, autocommit=True) as conn:
            if not has_journal(conn):
                return None
            return list(conn.cursor(row_factory=tuple_row).execute(SELECT_ALL).fetchall())
    except psycopg.Error:
        return None


def carry_over(conn: Any, rows: list[tuple[Any, ...]]) -> int:
    """Append the rows newer than the restored journal's newest (the history since the dump: a restore
    brings the account back, not the record of what happened to it); how many."""
    from psycopg.rows import tuple_row

    newest = conn.cursor(row_factory=tuple_row).execute("SELECT max(at) FROM journal").fetchone()[0]
    later = [r for r in rows if newest is None or r[0] > newest]
    for at, kind, book, who_, why, live, seen, details in later:
        conn.execute(
            INSERT_CARRIED, (at, kind, book, who_, why, None if live is None else json.dumps(live), seen,
                             json.dumps(details or {}))
        )  # fmt: skip
    return len(later)


def record_restore(
    engine: ContainerReads | None,
    desired: DesiredStack,
    settings: Settings,
    before: list[tuple[Any, ...]] | None,
    why: str,
    details: dict[str, Any],
    redact: Redactor,
) -> tuple[int, str | None]:
    """After a restore: carry the journal's newer rows over, then journal the restore itself with the
    books' states as the dump brought them back. (rows carried, None or why it was not recorded)."""
    import psycopg

    from cdb_ops.db.trading_state import has_states, read_state
    from cdb_ops.load.endpoints import postgres_conninfo

    carried = 0
    try:
        with psycopg.connect(**postgres_conninfo(desired, settings), connect_timeout=3, autocommit=True) as conn:
            if not has_journal(conn):
                return 0, "the restored database has no journal (it predates migration 009): `cdb-ops schema migrate`"
            if before:
                with conn.transaction():
                    carried = carry_over(conn, before)
            if has_states(conn):
                details = details | {
                    "book_states": {b: read_state(conn, b).summary for b in ("live", "replay")},
                }
    except psycopg.Error as exc:
        text = str(exc).strip()
        return carried, text.splitlines()[-1] if text else type(exc).__name__
    why_not = record_event(engine, desired, settings, "restore", why, details | {"carried_over": carried},
                           redact=redact)  # fmt: skip
    return carried, why_not
