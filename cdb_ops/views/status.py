"""`status`: one row per stack container, with stats gathered concurrently so the command stays fast."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from cdb_ops.engine.api import ContainerReads
from cdb_ops.load.diskhistory import Sample
from cdb_ops.load.outline import OutlineService, StackOutline
from cdb_ops.model.facts import ContainerFacts, ContainerStats
from cdb_ops.model.labels import LABEL_IMAGE, LABEL_PRIORITY, LABEL_ROLE, LABEL_SERVICE
from cdb_ops.model.status import StatusRow, footer_lines

if TYPE_CHECKING:
    from cdb_ops.load.desired import DesiredStack
    from cdb_ops.load.settings import Settings


def outline_of(desired: DesiredStack, settings: Settings) -> StackOutline:
    """What the quick `status` and `down` need of the resolved stack (cached by `cdb_ops.load.outline`
    between runs)."""
    from cdb_ops.errors import CdbError
    from cdb_ops.load.endpoints import postgres_conninfo, postgres_service

    services = tuple(
        OutlineService(name, svc.container.name, svc.spec.role, svc.spec.priority)
        for name, svc in desired.services.items()
    )
    try:
        info = postgres_conninfo(desired, settings)
        postgres: tuple[str, int] | None = (str(info["host"]), int(info["port"]))
    except (CdbError, KeyError):  # a stack without Postgres: status shows no trading states
        postgres = None
    try:
        pg = desired.services.get(postgres_service(desired))
        postgres_volume = (pg.name, pg.data_volume) if pg is not None and pg.data_volume else None
    except CdbError:
        postgres_volume = None
    return StackOutline(
        desired.system_label,
        services,
        tuple(settings.secret_keys),
        postgres,
        desired.network,
        tuple((name, tuple(svc.depends_on)) for name, svc in desired.stack.services.items()),
        postgres_volume,
        tuple(desired.profiles),
        desired.feed,
    )


def books_conninfo(outline: StackOutline, values: dict[str, str]) -> dict[str, Any] | None:
    """How `status` logs in to read the books' states: the outline's address, `.env`'s role (None: unknown)."""
    keys = ("POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB")
    if outline.postgres is None or not all(values.get(k) for k in keys):
        return None
    host, port = outline.postgres
    return {
        "host": host,
        "port": port,
        "user": values["POSTGRES_USER"],
        "password": values["POSTGRES_PASSWORD"],
        "dbname": values["POSTGRES_DB"],
        "application_name": "cdb_ops",
    }


def trading_summary(conninfo: dict[str, Any] | None) -> dict[str, Any]:
    """`status`'s `trading` object: each book's state (db/trading_state.py), or why it is not known."""
    if conninfo is None:
        return {"books": None, "problem": "no Postgres address or role in .env"}
    from cdb_ops.db.trading_state import read_books

    books, problem = read_books(conninfo)
    return {"books": None if books is None else [b.to_dict() for b in books], "problem": problem}


def trading_in_background(conninfo: dict[str, Any] | None) -> Callable[[], dict[str, Any]]:
    """Start reading the books' states on a thread and return what waits for the answer: the statement
    (connect, authenticate, one query; libpq releases the GIL) overlaps the engine calls of `status`."""
    import threading

    box: dict[str, dict[str, Any]] = {}

    def read() -> None:
        box["trading"] = trading_summary(conninfo)

    thread = threading.Thread(target=read, name="trading-states", daemon=True)
    thread.start()

    def result() -> dict[str, Any]:
        thread.join()
        return box.get("trading") or {"books": None, "problem": "the read of the trading states failed"}

    return result


def trading_lines(trading: dict[str, Any] | None) -> list[list[tuple[str, str]]]:
    """The status footer's lines on the books' states, as (text, style) parts (both renderers paint them)."""
    if trading is None:
        return []
    if trading.get("books") is None:
        return [[(f"trading state: unknown — {trading.get('problem')}", "dim")]]
    lines = []
    for b in trading["books"]:
        state = b["state"]
        if b["stored_state"] != "ACTIVE":
            why = f" (by {b['changed_by']} since {b['changed_at']}: {b['reason']})"
        elif b["breaker_tripped"]:
            why = f" (daily drawdown breaker, until {b['breaker_until']})"
        else:
            why = ""
        style = {"ACTIVE": "green", "REDUCING": "yellow", "HALTED": "red"}.get(state, "")
        lines.append([(f"book {b['book']}: ", ""), (state, style), (f"{why} — `cdb-ops trading status`", "")])
    return lines


def gather(engine: ContainerReads, outline: StackOutline) -> list[StatusRow]:
    containers = {c.name: c for c in engine.containers(label=outline.system_label)}
    now = datetime.now(UTC)
    by_id = engine.stats_many([c.id for c in containers.values() if c.running])
    stats = {name: by_id.get(c.id) for name, c in containers.items()}
    rows: list[StatusRow] = []
    seen: set[str] = set()
    for svc in outline.services:
        c = containers.get(svc.container)
        seen.add(svc.container)
        rows.append(_row(svc.name, svc.container, c, stats.get(svc.container), now, svc.role, svc.priority))
    for cname, c in sorted(containers.items()):
        if cname not in seen:
            rows.append(
                _row(
                    c.labels.get(LABEL_SERVICE, "?"),
                    cname,
                    c,
                    stats.get(cname),
                    now,
                    c.labels.get(LABEL_ROLE, "?"),
                    c.labels.get(LABEL_PRIORITY, "?"),
                )
            )
    return rows


def _row(
    service: str,
    container: str,
    c: ContainerFacts | None,
    st: ContainerStats | None,
    now: datetime,
    role: str,
    priority: str,
) -> StatusRow:
    if c is None:
        return StatusRow(service, container, "missing", None, None, 0, [], None, None, "", role, priority)
    uptime = (now - c.started_at).total_seconds() if c.running and c.started_at else None
    ports = [f"{p.bind}:{p.host}->{p.container}/{p.protocol}" for p in c.ports]
    return _with_exit(
        c,
        StatusRow(
            service,
            container,
            c.state,
            c.health,
            uptime,
            c.restart_count,
            ports,
            st.memory_bytes if st else None,
            st.cpu_percent if st else None,
            c.labels.get(LABEL_IMAGE, c.image_ref),
            role,
            priority,
        ),
    )


def _with_exit(c: ContainerFacts, row: StatusRow) -> StatusRow:
    """The row with how the container's last run ended (OOMKilled, exit code) and its memory limit — all from
    the inspect `status` already made — plus the kernel's OOM kills in the current run from its cgroup (a
    file read on a local engine: a worker killed while the main process lives is flagged nowhere else)."""
    from dataclasses import replace

    from cdb_ops.engine.cgroups import oom_kills

    return replace(
        row,
        memory_limit=c.memory_limit or None,
        last_exit=c.last_exit,
        oom_kills=oom_kills(c.id) if c.running else None,
    )


# -- disk use: the latest sample of `.cdb/disk-history.jsonl` and the growth per day ---------------------

# growth is measured against the oldest sample at most this old, and only over at least GROWTH_MIN_HOURS
GROWTH_WINDOW_DAYS = 7
GROWTH_MIN_HOURS = 1.0


def disk_summary(history: list[Sample], now: datetime | None = None) -> dict[str, Any] | None:
    """What `status` shows of the disk: the newest sample with its age, and per volume, table and for the
    logs the growth per day against an older sample (None until two samples lie an hour apart)."""
    while history and history[-1].data() is None:  # a torn last line: the one before it is the latest
        history = history[:-1]
    if not history:
        return None
    latest = history[-1].data() or {}
    now = now or datetime.now(UTC)
    taken = history[-1].taken_at
    # the oldest sample in the window, found by comparing the stamps as text (all UTC, one format)
    lo = (taken - timedelta(days=GROWTH_WINDOW_DAYS)).isoformat(timespec="seconds")
    hi = (taken - timedelta(hours=GROWTH_MIN_HOURS)).isoformat(timespec="seconds")
    base = next((h for h in history[:-1] if lo <= h.stamp <= hi), None)
    then = base.data() if base else None
    days = (taken - base.taken_at).total_seconds() / 86400 if base and then is not None else None
    then = then or {}

    def growth(now_bytes: int | None, then_bytes: Any) -> float | None:
        if days is None or now_bytes is None or not isinstance(then_bytes, int):
            return None
        return round((now_bytes - then_bytes) / days, 1)

    logs = dict(latest.get("logs") or {})
    known_logs = [v for v in logs.values() if isinstance(v, int)]
    logs_total = sum(known_logs) if known_logs else None
    then_logs = [v for v in (then.get("logs") or {}).values() if isinstance(v, int)]
    return {
        "sampled_at": taken.isoformat(),
        "age_seconds": round(max(0.0, (now - taken).total_seconds()), 1),
        "growth_over_hours": round(days * 24, 1) if days is not None else None,
        "volumes": [
            {"name": n, "bytes": b, "growth_bytes_per_day": growth(b, (then.get("volumes") or {}).get(n))}
            for n, b in (latest.get("volumes") or {}).items()
        ],
        "logs": {
            "bytes": logs_total,
            "growth_bytes_per_day": growth(logs_total, sum(then_logs) if then_logs else None),
            "containers": logs,
        },
        "tables": [
            {"name": n, "bytes": b, "growth_bytes_per_day": growth(b, (then.get("tables") or {}).get(n))}
            for n, b in (latest.get("tables") or {}).items()
        ],
        "data_filesystem": latest.get("data_fs"),
        "problems": list(latest.get("problems") or []),
    }


def disk_lines(disk: dict[str, Any] | None) -> list[str]:
    """The status footer's disk lines (plain text; the renderer styles them)."""
    if disk is None:
        return ["disk: no sample yet — `cdb-ops status --disk` (or validate / rebuild) takes one"]
    age = _age(disk["age_seconds"])
    vols = [f"{v['name']} {_size(v['bytes'])}{_per_day(v['growth_bytes_per_day'])}" for v in disk["volumes"]]
    logs = disk["logs"]
    out = footer_lines(f"disk (sampled {age} ago): volumes", vols or ["-"])
    out.append(f"  logs {_size(logs['bytes'])}{_per_day(logs['growth_bytes_per_day'])}")
    fs = disk.get("data_filesystem")
    if fs:
        out.append(f"  data filesystem {fs['used_percent']:.0f} % full ({_size(fs['available_bytes'])} free)")
    biggest = sorted(disk["tables"], key=lambda t: -(t["bytes"] or 0))[:3]
    if biggest:
        out += footer_lines(
            "  largest tables",
            [f"{t['name']} {_size(t['bytes'])}{_per_day(t['growth_bytes_per_day'])}" for t in biggest],
        )
    if disk["growth_over_hours"] is None:
        out.append("  growth per day: needs two samples at least an hour apart (`cdb-ops status --disk`)")
    return out


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    for unit, step in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= step:
            return f"{n / step:.1f} {unit}"
    return f"{n} B"


def _per_day(g: float | None) -> str:
    return "" if g is None else f" ({'+' if g >= 0 else '-'}{_size(int(abs(g)))}/day)"


def _age(seconds: float) -> str:
    for unit, step in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= step:
            return f"{seconds / step:.0f} {unit}"
    return f"{seconds:.0f} s"
