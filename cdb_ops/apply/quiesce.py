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

from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from graphlib import TopologicalSorter

from cdb_ops.apply.readiness import HealthWait
from cdb_ops.apply.stopping import STOP_GRACE_SECONDS
from cdb_ops.engine.api import Engine
from cdb_ops.errors import HealthTimeout, StepFailed
from cdb_ops.load.desired import DesiredStack
from cdb_ops.load.settings import Settings
from cdb_ops.redact import Redactor


def clients_of(desired: DesiredStack, database: str) -> list[str]:
    """The services that use `database`: those depending on it, directly or through another service, in
    playbook order."""
    deps = {n: set(s.spec.depends_on) for n, s in desired.services.items()}

    def uses(name: str, seen: frozenset[str] = frozenset()) -> bool:
        return any(d == database or (d in deps and d not in seen and uses(d, seen | {name})) for d in deps[name])

    return [n for n in desired.services if n != database and uses(n)]


def levels(names: list[str], depends_on: Mapping[str, set[str]]) -> list[list[str]]:
    """`names` in dependency levels: each level depends only on earlier ones (dependencies first)."""
    sorter = TopologicalSorter({n: depends_on.get(n, set()) & set(names) for n in names})
    sorter.prepare()
    out: list[list[str]] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready())
        out.append(ready)
        sorter.done(*ready)
    return out


@contextmanager
def clients_stopped(
    engine: Engine,
    desired: DesiredStack,
    settings: Settings,
    redact: Redactor,
    database: str,
    note: Callable[[str], None] = lambda _: None,
) -> Iterator[list[str]]:
    """Stop the running clients of `database` for the block; yields their service names (playbook order)."""
    running = []
    for name in clients_of(desired, database):
        facts = engine.container(desired.services[name].container.name)
        if facts is not None and facts.state == "running":
            running.append(name)
    by_level = levels(running, {n: set(desired.services[n].spec.depends_on) for n in running})
    with ThreadPoolExecutor(max_workers=8, thread_name_prefix="cdb-quiesce") as pool:
        asked: list[str] = []  # asked to stop (a stop that failed half-way may have stopped it anyway)
        try:
            for level in reversed(by_level):  # dependents first: nothing loses what it depends on mid-work
                containers = [desired.services[n].container.name for n in level]
                asked += level
                list(pool.map(lambda c: engine.stop(c, timeout=STOP_GRACE_SECONDS), containers))
                note(f"stopped {', '.join(containers)} for the restore")
            yield running
        finally:
            # starting one that runs is a no-op for the engine, so every one asked comes back
            _start_again(engine, desired, settings, redact, [lv for lv in by_level if set(lv) & set(asked)], pool)
            if asked:
                note(f"started again: {', '.join(n for lv in by_level for n in lv if n in asked)}")


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
