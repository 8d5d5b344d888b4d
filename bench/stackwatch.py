"""What the bench scripts (soak.py, fastforward.py) read off a running copy of the stack: memory per
container from its cgroup, restarts and OOM kills, the consumer groups' lag and pending entries, the
Postgres tables' sizes, Redis memory and AOF, each volume's and each container log's bytes on disk.

Every reader takes the copy's system label, container prefix and port offset (the bench's own stack,
never the user's), and answers what it could read: a reader that fails gives an empty answer and the
caller prints '-', since a bench run should report what it measured rather than die on one sample.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import docker  # noqa: E402
import psycopg  # noqa: E402
import redis  # noqa: E402

from tests.helpers import cdb, pg_connect, redis_connect  # noqa: E402

CORE = ("postgres", "redis", "screener_ws", "signal", "risk", "execution")
# Every stream a service consumes in a group (cdb:fills has no reader group today; listed so a future one
# is seen): XINFO GROUPS on a missing stream is an error, which just leaves that stream out.
STREAMS = ("cdb:ticks", "cdb:signals", "cdb:orders", "cdb:fills")
MIB = 2**20


@dataclass(frozen=True)
class Stack:
    """One running copy of the stack: its label, its container prefix, its port offset, its .env, its folder."""

    system: str
    prefix: str
    offset: int
    env: dict[str, str]
    project: Path  # its folder: the one Postgres and Redis helpers read the .env there

    def short(self, name: str) -> str:
        return name.removeprefix(self.prefix)

    def redis(self) -> redis.Redis:
        return redis_connect(self.project, 6379 + self.offset, decode_responses=True, socket_timeout=10)

    def pg(self) -> psycopg.Connection[Any]:
        return pg_connect(self.project, 5432 + self.offset)


def containers(stack: Stack) -> dict[str, dict[str, Any]]:
    """name (without prefix) -> running, restart count, OOMKilled, exit code, memory limit, log path."""
    client = docker.from_env()
    out = {}
    for c in client.api.containers(all=True, filters={"label": f"cdb.system={stack.system}"}):
        with contextlib.suppress(docker.errors.NotFound):
            info = client.api.inspect_container(c["Id"])
            state = info["State"]
            out[stack.short(info["Name"].lstrip("/"))] = {
                "id": info["Id"],
                "running": state.get("Running", False),
                "restarts": info.get("RestartCount", 0),
                "oom_killed": state.get("OOMKilled", False),
                "exit_code": state.get("ExitCode", 0),
                "mem_limit": info["HostConfig"].get("Memory") or 0,
                "log_path": info.get("LogPath") or "",
                "log_config": info["HostConfig"].get("LogConfig") or {},
            }
    return out


def memory_mib(stack: Stack, found: dict[str, dict[str, Any]] | None = None) -> dict[str, float]:
    """Memory in use per running container (MiB), as `docker stats` counts it (page cache excluded)."""
    from cdb_ops.engine.docker import DockerEngine

    found = containers(stack) if found is None else found
    ids = {name: c["id"] for name, c in found.items() if c["running"]}
    stats = DockerEngine().stats_many(list(ids.values()), cpu=False)
    return {name: round(stats[cid].memory_bytes / MIB, 1) for name, cid in ids.items() if cid in stats}


def consumer_groups(stack: Stack) -> dict[str, dict[str, int | None]]:
    """'stream/group' -> lag (entries not yet read; None when Redis cannot tell), pending (read, not acked)
    and read (entries the group has read since it was made; Redis >= 7)."""
    out: dict[str, dict[str, int | None]] = {}
    with contextlib.suppress(redis.RedisError):
        r = stack.redis()
        for stream in STREAMS:
            try:
                for g in r.xinfo_groups(stream):
                    out[f"{stream}/{g['name']}"] = {
                        "lag": g.get("lag"),
                        "pending": g["pending"],
                        "read": g.get("entries-read"),
                    }
            except redis.ResponseError:
                pass  # no such stream (yet)
    return out


def drained(groups: dict[str, dict[str, int | None]]) -> bool:
    return bool(groups) and all(g["lag"] == 0 and g["pending"] == 0 for g in groups.values())


def redis_memory(stack: Stack) -> dict[str, int]:
    """used_memory, used_memory_peak and the AOF's size in bytes (INFO memory / INFO persistence)."""
    with contextlib.suppress(redis.RedisError):
        r = stack.redis()
        mem, pers = r.info("memory"), r.info("persistence")
        return {
            "used_memory": int(mem["used_memory"]),
            "used_memory_peak": int(mem["used_memory_peak"]),
            "aof_bytes": int(pers.get("aof_current_size", 0) or 0),
            "aof_rewrites": int(pers.get("aof_rewrites", 0) or 0),
        }
    return {}


def table_sizes(stack: Stack) -> dict[str, dict[str, int]]:
    """Every table in `public`: pg_total_relation_size (heap, indexes, TOAST) and its live row estimate."""
    with contextlib.suppress(psycopg.Error), stack.pg() as conn:
        rows = conn.execute(
            """SELECT c.relname, pg_total_relation_size(c.oid), greatest(s.n_live_tup, 0)
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                 LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
                WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')"""
        ).fetchall()
        return {name: {"bytes": int(size), "rows": int(live or 0)} for name, size, live in rows}
    return {}


def row_counts(stack: Stack, tables: tuple[str, ...]) -> dict[str, int]:
    """Exact counts of a few tables (count(*): only for small ones, or at the end)."""
    out = {}
    with contextlib.suppress(psycopg.Error), stack.pg() as conn:
        for t in tables:
            out[t] = int(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0])  # type: ignore[index]
    return out


def volume_bytes(stack: Stack) -> dict[str, int]:
    """Each of the stack's volumes on disk. Read from the volume's folder when this host holds it (the
    engine is local; a walk costs milliseconds), else from the engine's `system df` (seconds)."""
    client = docker.from_env()
    out = {}
    volumes = client.volumes.list(filters={"label": f"cdb.system={stack.system}"})
    missing = []
    for v in volumes:
        folder = Path(v.attrs.get("Mountpoint") or "")
        size = _du(folder) if folder.is_dir() else None
        if size is None:
            missing.append(v.name)
        else:
            out[v.name] = size
    if missing:
        for v in client.df().get("Volumes") or []:
            if v["Name"] in missing:
                out[v["Name"]] = int((v.get("UsageData") or {}).get("Size", -1))
    return out


def _du(folder: Path) -> int | None:
    total = 0
    try:
        for root, _dirs, files in os.walk(folder):
            for f in files:
                with contextlib.suppress(FileNotFoundError):  # Postgres removes WAL segments as we walk
                    total += os.lstat(os.path.join(root, f)).st_blocks * 512
    except PermissionError:
        return None
    return total


def log_bytes(found: dict[str, dict[str, Any]]) -> dict[str, int]:
    """Each container's log on disk (the json-file/local driver's file and its rotated siblings)."""
    out = {}
    for name, c in found.items():
        path = Path(c["log_path"]) if c["log_path"] else None
        if path is None or not path.parent.is_dir():
            continue
        with contextlib.suppress(OSError):
            out[name] = sum(p.stat().st_size for p in path.parent.iterdir() if p.name.startswith(path.name))
            # the `local` driver keeps its files in container/<id>/local-logs/
            local = path.parent / "local-logs"
            if local.is_dir():
                out[name] += sum(p.stat().st_size for p in local.iterdir())
    return out


def log_cap_bytes(log_config: dict[str, Any]) -> int | None:
    """The most a container's log can hold under its log options (None when uncapped)."""
    opts = log_config.get("Config") or {}
    driver = log_config.get("Type", "json-file")
    size = opts.get("max-size") or ("20m" if driver == "local" else None)
    if not size:
        return None
    files = int(opts.get("max-file") or (5 if driver == "local" else 1))
    units = {"k": 2**10, "m": 2**20, "g": 2**30}
    raw = str(size).strip().lower()
    factor = units.get(raw[-1], 1)
    return int(float(raw.rstrip("kmgb") if factor > 1 else raw) * factor) * files


def validate(root: Path, probe: bool = True) -> dict[str, Any]:
    """`cdb-ops validate --json` (with the end-to-end probe unless told otherwise): passed, seconds, the
    checks that did not pass."""
    import json

    started = time.monotonic()
    r = cdb("validate", "--json", *(() if probe else ("--no-probe",)), project=root)
    took = round(time.monotonic() - started, 1)
    try:
        checks = json.loads(r.stdout).get("checks", [])
    except ValueError:
        return {"passed": False, "seconds": took, "not_passed": {"output": (r.stdout + r.stderr)[-500:]}}
    bad = {c["name"]: f"{c['status']}: {c.get('detail') or c.get('message') or ''}"[:300] for c in checks
           if c.get("status") not in ("pass", "skip")}  # fmt: skip
    return {"passed": r.returncode == 0, "seconds": took, "not_passed": bad}


def stream_lengths(stack: Stack) -> dict[str, int]:
    """XLEN of each stream: they fill up to their MAXLEN (cdb:ticks 200,000), then stay (trimmed)."""
    out = {}
    with contextlib.suppress(redis.RedisError):
        r = stack.redis()
        for stream in STREAMS:
            out[stream] = int(r.xlen(stream))
    return out


def newest_tick_time(stack: Stack) -> int | None:
    """E (epoch ms) of the newest market tick in cdb:ticks (probe ticks left out): how far the event clock
    of the feed has come, whatever the replay reports about itself."""
    import json

    with contextlib.suppress(redis.RedisError, ValueError, KeyError):
        for _id, fields in stack.redis().xrevrange("cdb:ticks", count=50):
            data = json.loads(fields["data"])
            if not data.get("is_probe"):
                return int(data["tick_time"])
    return None
