"""A run's upgrade around its swaps: drain the books before risk or execution is replaced, keep every
replaced container (stopped: it pins its image and holds its exact configuration) until the run ends,
and at the end either keep them as `<name>-previous` for `cdb-ops rollback` (success) or put them back
(a readiness wait or validate failed after a swap). Either way each drained book gets its state back."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cdb_ops.apply import drain
from cdb_ops.apply.context import PhaseContext
from cdb_ops.apply.readiness import HealthWait
from cdb_ops.engine.api import Engine
from cdb_ops.errors import CdbError, UsageError
from cdb_ops.fsutil import atomic_write
from cdb_ops.load.desired import DesiredService, DesiredStack
from cdb_ops.load.endpoints import host_address, postgres_conninfo
from cdb_ops.load.project import Project
from cdb_ops.load.settings import Settings
from cdb_ops.model.labels import LABEL_HASH, PREVIOUS_MARK
from cdb_ops.model.upgrade import DrainRecord, Upgrade

RECORD_FILE = "last-upgrade.json"
ROLLBACK_DRAIN_TIMEOUT = 30.0  # putting a failed upgrade back waits this long for in-flight orders, then goes on


def record_path(project: Project) -> Path:
    return project.state_dir / RECORD_FILE


def load_record(project: Project) -> dict[str, Any] | None:
    path = record_path(project)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError) as exc:
        raise UsageError(f"{path} cannot be read ({exc})", f"remove {path}; the previous containers stay") from None
    return data if isinstance(data, dict) else None


def drain_timeout(settings: Settings) -> float:
    raw = settings.get("CDB_DRAIN_TIMEOUT")
    return float(raw) if raw else drain.DEFAULT_TIMEOUT


def redis_client(desired: DesiredStack, settings: Settings) -> Any:
    import redis

    svc = next((v for v in desired.services.values() if v.spec.ready and v.spec.ready.probe == "redis"), None)
    if svc is None:
        return None
    host, port = host_address(svc, None)
    return redis.Redis(host=host, port=port, password=settings.get("REDIS_PASSWORD"), socket_timeout=5)


@dataclass
class Books:
    """One drain's connections: Postgres (the states, the NEW orders) and Redis (the consumer groups)."""

    conn: Any
    redis: Any
    groups: list[tuple[str, str]]

    def in_flight(self) -> drain.InFlight:
        if self.redis is None:
            return drain.InFlight({}, drain.new_orders(self.conn))  # no Redis: every NEW order may be held
        return drain.in_flight(self.conn, self.redis, self.groups)

    def close(self) -> None:
        self.conn.close()
        if self.redis is not None:
            self.redis.close()


def open_books(desired: DesiredStack, settings: Settings, roles: list[str]) -> Books:
    return Books(
        drain.connect(postgres_conninfo(desired, settings)),
        redis_client(desired, settings),
        drain.groups_of(roles),
    )


def begin_drain(ctx: PhaseContext, phase: str, services: list[str]) -> None:
    """The plan's drain, carried out once per run, right before the first of `services` is swapped."""
    if ctx.upgrade.drain is not None:
        return
    by = drain.drained_by(ctx.command)
    roles = [ctx.desired.services[n].spec.role for n in services]
    record = DrainRecord()
    started = time.monotonic()
    books = open_books(ctx.desired, ctx.settings, roles)
    try:
        record.books = drain.set_reducing(books.conn, drain.books_to_drain(books.conn, ctx.desired.feed), by)
        ctx.upgrade.drain = record  # from now on the run's end gives the books back, whatever happens
        record.at_start = books.in_flight()
        names = ", ".join(
            f"{b.book} ({b.before} -> REDUCING)" if b.changed else f"{b.book} ({b.before})" for b in record.books
        )
        ctx.progress.note(f"draining before {', '.join(services)} is swapped: {names}; {record.at_start.describe()}")

        def progress(now: drain.InFlight, waited: float) -> None:
            ctx.progress.note(f"draining: {now.describe()} after {waited:.0f} s")

        record.at_end = drain.wait_until_clear(books.in_flight, drain_timeout(ctx.settings), progress)
    finally:
        record.seconds = time.monotonic() - started
        books.close()
    waited = record.at_start.describe() if record.at_start else "nothing in flight"
    detail = (
        f"books {', '.join(b.book for b in record.books) or '(none: no trading states yet)'} REDUCING "
        f"({drain.DRAIN_REASON}, by {by}); at start: {waited}; nothing in flight after {record.seconds:.1f} s"
    )
    ctx.record(phase, "book", ",".join(b.book for b in record.books) or "-", "drain", detail, record.seconds)


def give_books_back(ctx: PhaseContext, phase: str) -> None:
    record = ctx.upgrade.drain
    if record is None or not any(b.changed and b.restored is None for b in record.books):
        return
    by = drain.drained_by(ctx.command)
    with ctx.timed() as took:
        conn = drain.connect(postgres_conninfo(ctx.desired, ctx.settings))
        try:
            drain.restore_books(conn, record.books, by)
        finally:
            conn.close()
    for b in record.books:
        ctx.record(phase, "book", b.book, "restore", f"state after the upgrade: {b.restored}", took())


def swap_back(engine: Engine, waiter: HealthWait, svc: DesiredService, kept: str) -> None:
    """Stop-first: the current container stops (and goes) before the kept one starts under its name, so
    two consumers of one role never run at once; then wait until it is ready."""
    name = svc.container.name
    if engine.container(name) is not None:
        engine.stop(name, timeout=10)
        engine.remove_container(name)
    engine.rename(kept, name)
    engine.start(name)
    waiter.wait(svc)


def roll_back(ctx: PhaseContext, phase: str, failure: CdbError) -> str:
    """Put every container this run replaced back (previous image, previous configuration: the very
    container), the books their states; returns the sentence the run's error gains."""
    ctx.progress.phase(f"rollback (after {phase} failed)", "rollback")
    if ctx.upgrade.drain is not None:  # the new consumers may have exits of their own in flight
        _settle(ctx, [ctx.desired.services[s.service].spec.role for s in ctx.upgrade.swaps])
    for swap in reversed(ctx.upgrade.swaps):
        svc = ctx.desired.services[swap.service]
        with ctx.timed() as took:
            try:
                swap_back(ctx.engine, ctx.waiter, svc, swap.kept)
            except CdbError as exc:
                ctx.upgrade.rollback_problems.append(f"{swap.service}: {exc.message.splitlines()[0]}")
                continue
        ctx.set_aside.pop(swap.service, None)
        ctx.upgrade.rolled_back.append(swap.service)
        ctx.record(
            phase,
            "container",
            swap.container,
            "rollback",
            f"the previous container again: image {swap.old_image[:19]}, config {swap.old_config[:12]} "
            f"(the new one failed: {failure.kind})",
            took(),
            swap.service,
        )
    try:
        give_books_back(ctx, phase)
    except CdbError as exc:
        ctx.upgrade.rollback_problems.append(f"books: {exc.message}")
    return rollback_sentence(ctx.upgrade)


def _settle(ctx: PhaseContext, roles: list[str]) -> None:
    """A bounded wait for in-flight orders before a failed upgrade is put back. It never blocks the way
    back: what is still pending then is claimed by the previous consumer after the swap (XAUTOCLAIM)."""
    try:
        books = open_books(ctx.desired, ctx.settings, roles)
    except CdbError as exc:
        ctx.progress.note(f"rolling back without waiting for in-flight orders: {exc.message}")
        return
    try:
        drain.wait_until_clear(books.in_flight, ROLLBACK_DRAIN_TIMEOUT, lambda now, t: None)
    except CdbError as exc:
        ctx.progress.note(f"rolling back with orders in flight (claimed after the swap): {exc.message}")
    finally:
        books.close()


def rollback_sentence(upgrade: Upgrade) -> str:
    parts = []
    if upgrade.rolled_back:
        swaps = {s.service: s for s in upgrade.swaps}
        parts.append(
            "rolled back: "
            + ", ".join(
                f"{n} (previous image {swaps[n].old_image[:19]}, config {swaps[n].old_config[:12]})"
                for n in upgrade.rolled_back
            )
        )
    if upgrade.drain is not None:
        parts.append("books " + ", ".join(f"{b.book}: {b.restored}" for b in upgrade.drain.books))
    if upgrade.rollback_problems:
        parts.append("NOT rolled back: " + "; ".join(upgrade.rollback_problems))
    parts.append(schema_note(upgrade.migrations, upgrade.backup))
    return "; ".join(p for p in parts if p)


def schema_note(migrations: list[str], backup: str | None) -> str:
    """What undoes a migrated schema: only the verified backup taken before the migrations (a swap back
    does not touch the database)."""
    if not migrations:
        return ""
    where = f"restore the backup taken before them: `cdb-ops restore {backup} --yes`" if backup else "no backup"
    return f"the schema keeps migration(s) {', '.join(migrations)} (containers do not undo a schema; {where})"


def keep_previous(ctx: PhaseContext, phase: str) -> None:
    """After a successful run: each replaced container stays, stopped, as `<name>-previous` (an older one
    goes), and .cdb/last-upgrade.json says what `cdb-ops rollback` would put back."""
    if not ctx.upgrade.swaps and not ctx.upgrade.migrations:
        return
    for swap in ctx.upgrade.swaps:
        facts = ctx.engine.container(swap.container)
        swap.new_image = facts.image_id if facts else ""
        swap.new_config = facts.labels.get(LABEL_HASH, "") if facts else ""
        keep = f"{swap.container}{PREVIOUS_MARK}"
        if ctx.engine.container(keep) is not None:
            ctx.engine.remove_container(keep)
        ctx.engine.rename(swap.kept, keep)
        ctx.set_aside.pop(swap.service, None)
        swap.kept = keep
        ctx.record(
            phase,
            "container",
            keep,
            "keep",
            f"stopped, for `cdb-ops rollback`: image {swap.old_image[:19]}, config {swap.old_config[:12]}",
            service=swap.service,
        )
    swapped = {s.container for s in ctx.upgrade.swaps}
    # an older upgrade's previous containers go: the record that named them is replaced now
    for c in ctx.engine.containers(label=ctx.desired.system_label, detail=False):
        if c.name.endswith(PREVIOUS_MARK) and c.name[: -len(PREVIOUS_MARK)] not in swapped:
            ctx.engine.remove_container(c.name)
    atomic_write(
        record_path(ctx.project),
        json.dumps({"run_id": ctx.run_id, "at": time.time(), **ctx.upgrade.to_dict()}, indent=2, sort_keys=True),
    )


def finish(ctx: PhaseContext, phase: str, failure: CdbError | None) -> str:
    """The run's end: keep or put back. Returns what the error message gains ("" on success)."""
    if failure is None:
        keep_previous(ctx, phase)
        give_books_back(ctx, phase)
        return ""
    if ctx.upgrade.swaps:
        return roll_back(ctx, phase, failure)
    try:
        give_books_back(ctx, phase)
    except CdbError as exc:
        return f"the books could not be given back their states: {exc.message}"
    note = schema_note(ctx.upgrade.migrations, ctx.upgrade.backup)
    if ctx.upgrade.drain is not None:
        note = "; ".join(
            p for p in ("books " + ", ".join(f"{b.book}: {b.restored}" for b in ctx.upgrade.drain.books), note) if p
        )
    return note
