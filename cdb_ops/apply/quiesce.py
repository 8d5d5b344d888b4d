"""Taking the stack's database clients off Postgres while its tables are replaced (`restore`).

`pg_restore --clean --single-transaction` drops and re-creates every table, taking an exclusive lock on
each in the dump's order. A service whose transaction reads two tables (the screener's holdings read
positions, then orders) while that runs forms a lock cycle with it: Postgres kills one of the two with
"deadlock detected" — an ERROR line that fails every `validate` after it, or the restore itself. And a
service that survives keeps in memory what the restore replaced (a book's cash, its peak equity).

So every running service that depends on Postgres (directly or through another service) is stopped
first — gracefully, dependents before what they depend on — and started again afterwards in dependency
order, each waited for until it is ready: it reads the restored state from Postgres at start. They are
started again whatever happened in between, so a failed restore leaves the stack as it found it.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from cdb_ops.apply.readiness import HealthWait
from cdb_ops.apply.stopping import STOP_GRACE_SECONDS
from cdb_ops.engine.api import Engine
from cdb_ops.errors import HealthTimeout, StepFailed
from cdb_ops.load.desired import DesiredStack
from cdb_ops.load.playbook import start_order
from cdb_ops.load.settings import Settings
from cdb_ops.redact import Redactor


def clients_of(desired: DesiredStack, database: str) -> list[str]:
    """The services that use `database`: those depending on it, directly or through another service, in
    playbook order."""
    users: set[str] = set()
    for tier in start_order(desired.stack, list(desired.services)):  # a service after what it depends on
        users.update(n for n in tier if any(d == database or d in users for d in desired.services[n].spec.depends_on))
    return [n for n in desired.services if n in users]


@contextmanager
def clients_stopped(
    engine: Engine,
    desired: DesiredStack,
    settings: Settings,
    redact: Redactor,
    database: str,
) -> Iterator[list[str]]:
    """Stop the running clients of `database` for the block; yields their service names (playbook order)."""
    running = []
    for name in clients_of(desired, database):
        facts = engine.container(desired.services[name].container.name)
        if facts is not None and facts.state == "running":
            running.append(name)
    by_level = start_order(desired.stack, running)  # dependencies first
    with ThreadPoolExecutor(max_workers=8, thread_name_prefix="cdb-quiesce") as pool:
        asked: list[str] = []  # asked to stop (a stop that failed half-way may have stopped it anyway)
        try:
            for level in reversed(by_level):  # dependents first: nothing loses what it depends on mid-work
                containers = [desired.services[n].container.name for n in level]
                asked += level
                list(pool.map(lambda c: engine.stop(c, timeout=STOP_GRACE_SECONDS), containers))
            yield running
        finally:
            # starting one that runs is a no-op for the engine, so every one asked comes back
            _start_again(engine, desired, settings, redact, [lv for lv in by_level if set(lv) & set(asked)], pool)


def _start_again(
    engine: Engine,
    desired: DesiredStack,
    settings: Settings,
    redact: Redactor,
    by_level: list[list[str]],
    pool: ThreadPoolExecutor,
) -> None:
    """Start each level, then wait until all of it is ready, before the next (dependencies first)."""
    waiter = HealthWait(engine, settings, redact)
    for level in by_level:
        try:
            for name in level:
                engine.start(desired.services[name].container.name)
            list(pool.map(lambda n: waiter.wait(desired.services[n]), level))
        except (StepFailed, HealthTimeout) as exc:  # the same kind and exit code, said of the restore
            raise type(exc)(
                f"after the restore, {', '.join(level)} did not start again: {exc.message}",
                "run `cdb-ops rebuild` (it starts what is stopped and says why a service does not get ready)",
                details=exc.details,
            ) from exc
