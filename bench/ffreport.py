"""Samples, summary and printed table of bench/fastforward.py (the measuring half; the driving half is
fastforward.py). Growth is (end - rest) / days of event time played; the 30-day projection applies each
table's retention from the project's .env (`<TABLE STEM>_RETENTION_DAYS`, e.g. MARKET_SNAPSHOT_RETENTION_DAYS
for market_snapshots) or, where none is set, the retention the bench assumes (ASSUMED_RETENTION_DAYS),
and says which it used.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Any

import stackwatch

ASSUMED_RETENTION_DAYS = {"market_snapshots": 30, "portfolio_snapshots": 30, "ops_runs": 30}
PROJECT_DAYS = 30
TARGETS = {
    "wall_minutes_per_day": 30.0,
    "memory_flat_pct": 10.0,
    "footprint_30d_gib": 2.0,
}
TICKS_MAXLEN = 200_000  # cdb_common.streams.DEFAULT_MAXLEN["cdb:ticks"]
GIB = 2**30
MIB = 2**20

TRADING = """
SELECT 'signals ' || side, count(*) FROM signals WHERE NOT is_probe GROUP BY side
UNION ALL SELECT 'decisions ' || decision || ' ' || reason, count(*) FROM risk_events WHERE NOT is_probe
          GROUP BY decision, reason
UNION ALL SELECT 'orders ' || status, count(*) FROM orders WHERE NOT is_probe GROUP BY status
UNION ALL SELECT 'trades ' || side, count(*) FROM trades WHERE NOT is_probe GROUP BY side
UNION ALL SELECT 'daily_pnl ' || portfolio || ' ' || day, count(*) FROM daily_pnl GROUP BY portfolio, day
UNION ALL SELECT 'market_snapshots rows', count(*) FROM market_snapshots
"""


class SampleLog:
    """Light samples during the load (memory, restarts, lag, progress) and full snapshots at rest and end."""

    def __init__(self, stack: stackwatch.Stack) -> None:
        self.stack = stack
        self.samples: list[dict[str, Any]] = []

    def sample(self, started: float, progress: float) -> dict[str, Any]:
        found = stackwatch.containers(self.stack)
        s = {
            "wall_s": round(time.time() - started, 1),
            "progress": round(progress, 4),
            "memory_mib": stackwatch.memory_mib(self.stack, found),
            "restarts": {n: c["restarts"] for n, c in found.items()},
            "oom_killed": sorted(n for n, c in found.items() if c["oom_killed"]),
            "groups": stackwatch.consumer_groups(self.stack),
            "redis": stackwatch.redis_memory(self.stack),
            "streams": stackwatch.stream_lengths(self.stack),
            "loadavg_1m": round(os.getloadavg()[0], 2),  # the machine is shared: a busy host slows the day
        }
        self.samples.append(s)
        return s

    def line(self, s: dict[str, Any]) -> str:
        core = sum(v for k, v in s["memory_mib"].items() if k in stackwatch.CORE)
        rate = "-"
        if len(self.samples) >= 2:  # ticks/s through the signal engine since the sample before
            a, b = self.samples[-2], self.samples[-1]
            key = "cdb:ticks/signal_engine"
            ra, rb = (x["groups"].get(key, {}).get("read") for x in (a, b))
            if ra is not None and rb is not None and b["wall_s"] > a["wall_s"]:
                rate = f"{(rb - ra) / (b['wall_s'] - a['wall_s']):,.0f}"
        lag = ", ".join(f"{k.split(':')[1]}={v['lag']}/{v['pending']}" for k, v in s["groups"].items())
        return (
            f"[{s['wall_s'] / 60:5.1f} min] {s['progress'] * 100:5.1f} % sent, {rate} ticks/s through signal  "
            f"core {core:.0f} MiB  "
            f"replay {s['memory_mib'].get('market_replay', '-')} MiB  restarts {sum(s['restarts'].values())}  "
            f"lag/pending {lag}"
        )

    def snapshot(self, label: str) -> dict[str, Any]:
        found = stackwatch.containers(self.stack)
        trading: dict[str, int] = {}
        try:
            with self.stack.pg() as conn:
                trading = {k: int(v) for k, v in conn.execute(TRADING).fetchall()}
        except Exception as exc:  # noqa: BLE001 - reported, the rest of the snapshot still counts
            trading = {"error: " + str(exc)[:200]: 0}
        clock: dict[str, Any] = {}
        with contextlib.suppress(Exception), self.stack.pg() as conn:
            first, last = conn.execute(
                "SELECT min(minute), max(minute) FROM market_snapshots WHERE NOT is_probe"
            ).fetchone()
            clock = {
                "first_minute": str(first),
                "last_minute": str(last),
                "wall_now": time.strftime("%Y-%m-%d %H:%M:%S+00"),
            }
        row_bytes: dict[str, float] = {}
        with contextlib.suppress(Exception), self.stack.pg() as conn:
            avg = conn.execute("SELECT avg(pg_column_size(p.*)) FROM portfolio_snapshots p").fetchone()[0]
            row_bytes = {"portfolio_snapshots": float(avg)} if avg is not None else {}
        return {
            "label": label,
            "event_clock": clock,
            "row_bytes": row_bytes,
            "at": time.time(),
            "containers": {n: {k: v for k, v in c.items() if k != "id"} for n, c in found.items()},
            "memory_mib": stackwatch.memory_mib(self.stack, found),
            "groups": stackwatch.consumer_groups(self.stack),
            "redis": stackwatch.redis_memory(self.stack),
            "tables": stackwatch.table_sizes(self.stack),
            "volumes": stackwatch.volume_bytes(self.stack),
            "logs": stackwatch.log_bytes(found),
            "trading": trading,
        }


def warm_up(samples: list[dict[str, Any]]) -> tuple[dict[str, Any] | None, str]:
    """The sample memory is compared from: the first once cdb:ticks is full (XLEN at 95 % of its MAXLEN:
    from then on Redis trims as much as it adds) and at least 10 % of the market was played; when the
    stream never filled (a short run), the one at 10 %, and the verdict says the run was too short."""
    full = next((s for s in samples if s.get("streams", {}).get("cdb:ticks", 0) >= 0.95 * TICKS_MAXLEN
                 and s["progress"] >= 0.1), None)  # fmt: skip
    if full is not None:
        return full, f"from {full['wall_s'] / 60:.1f} min (cdb:ticks full, {full['progress'] * 100:.0f} % played)"
    first = next((s for s in samples if s["progress"] >= 0.1), samples[0] if samples else None)
    return first, "cdb:ticks never filled to its MAXLEN: too short a run for a steady state (from 10 % played)"


def _after_warm_up(final: dict[str, Any], warm: dict[str, Any] | None, key: str, days_total: float) -> float:
    if warm is None or warm["progress"] >= 1:
        return 0.0
    days = max(days_total * (1 - warm["progress"]), 1e-9)
    return (final["redis"].get(key, 0) - warm["redis"].get(key, 0)) / days


def _growth(before: dict[str, int], after: dict[str, int], days: float) -> dict[str, float]:
    return {k: (after.get(k, 0) - before.get(k, 0)) / days for k in sorted(set(before) | set(after))}


def retention(env: dict[str, str], tables: list[str]) -> dict[str, tuple[float, str]]:
    """table -> (days kept, 'set in .env as KEY' | 'assumed'); tables without one are kept forever."""
    out = {t: (float(d), "assumed (no .env key)") for t, d in ASSUMED_RETENTION_DAYS.items()}
    for key, value in env.items():
        if key.endswith("_RETENTION_DAYS"):
            stem = key.removesuffix("_RETENTION_DAYS").lower()
            for t in tables:
                if t.startswith(stem):
                    with contextlib.suppress(ValueError):
                        out[t] = (float(value), f".env {key}")
    return {t: v for t, v in out.items() if t in tables}


def summarize(
    *,
    args: dict[str, Any],
    rest: dict[str, Any],
    final: dict[str, Any],
    log: SampleLog,
    wall_seconds: float,
    finished: bool,
    validations: dict[str, Any],
    env: dict[str, str],
    feed_dropped: dict[str, Any] | None = None,
) -> dict[str, Any]:
    progress = 1.0 if finished else max((s["progress"] for s in log.samples), default=0.0)
    days = max(args["hours"] / 24 * progress, 1e-9)
    samples = log.samples
    warm, warm_rule = warm_up(samples)
    names = sorted(set(final["memory_mib"]) | set(rest["memory_mib"]))
    memory = {
        n: {
            "rest": rest["memory_mib"].get(n),
            "start": (warm or {}).get("memory_mib", {}).get(n),
            "end": final["memory_mib"].get(n),
            "peak": max([s["memory_mib"].get(n, 0) for s in samples] + [final["memory_mib"].get(n, 0)]),
            "limit": round(final["containers"].get(n, {}).get("mem_limit", 0) / MIB) or None,
        }
        for n in names
    }

    def core(key: str) -> float:
        return round(sum((memory[n][key] or 0) for n in names if n in stackwatch.CORE), 1)

    flat_pct = (core("end") - core("start")) / core("start") * 100 if core("start") else None
    restarts = {n: c["restarts"] - rest["containers"].get(n, {}).get("restarts", 0)
                for n, c in final["containers"].items()}  # fmt: skip
    oom = sorted({n for s in samples for n in s["oom_killed"]} | {n for n, c in final["containers"].items()
                                                                   if c["oom_killed"]})  # fmt: skip
    tables_b = {k: v["bytes"] for k, v in rest["tables"].items()}
    tables_e = {k: v["bytes"] for k, v in final["tables"].items()}
    growth = {
        "tables": _growth(tables_b, tables_e, days),
        "volumes": _growth(rest["volumes"], final["volumes"], days),
        "logs": _growth(rest["logs"], final["logs"], days),
        # Redis from the warm-up on: before it the streams were filling up to their MAXLEN
        "redis_memory": _after_warm_up(final, warm, "used_memory", args["hours"] / 24),
        "aof": _after_warm_up(final, warm, "aof_bytes", args["hours"] / 24),
    }
    projection = project(rest, final, growth, env)
    wall_per_day = wall_seconds / 60 / days
    key = "cdb:ticks/signal_engine"
    read = [x["groups"].get(key, {}).get("read") for x in (rest, final)]
    through = (read[1] - read[0]) / wall_seconds if None not in read and wall_seconds > 0 else None
    groups_end = final["groups"]
    targets = {
        "a day of event time in <= 30 min": finished and wall_per_day <= TARGETS["wall_minutes_per_day"],
        "0 restarts, no OOM kill": sum(restarts.values()) == 0 and not oom,
        "memory flat (core end within 10 % of start after warm-up)": flat_pct is not None
        and abs(flat_pct) <= TARGETS["memory_flat_pct"],
        "every lag drained at the end": all((g["lag"] or 0) <= args["symbols"] and g["lag"] is not None
                                            and g["pending"] <= args["symbols"] for g in groups_end.values()),
        "validate passes during the load": bool(validations.get("during", {}).get("passed")),
        "validate passes after the load": bool(validations.get("after", {}).get("passed")),
        "30-day footprint <= 2 GiB": projection["total_bytes"] <= TARGETS["footprint_30d_gib"] * GIB,
        "the feed stayed connected (no replay started over)": feed_dropped is None,
        "the pipeline traded (BUY and SELL fills)": final["trading"].get("trades BUY", 0) > 0
        and final["trading"].get("trades SELL", 0) > 0,
    }  # fmt: skip
    return {
        "args": args,
        "finished": finished,
        "feed_dropped": feed_dropped,
        "event_days_played": round(days, 4),
        "wall_seconds": round(wall_seconds, 1),
        "wall_minutes_per_day": round(wall_per_day, 2),
        "ticks_per_s_through_signal": None if through is None else round(through),
        "extrapolated": args["hours"] < 24 or not finished,
        "memory_mib": memory,
        "core_mib": {k: core(k) for k in ("rest", "start", "end", "peak")},
        "warm_up": warm_rule,
        "host": {
            "cpus": os.cpu_count(),
            "loadavg_1m_mean": round(sum(x["loadavg_1m"] for x in samples) / len(samples), 2) if samples else None,
        },
        "core_end_vs_start_pct": None if flat_pct is None else round(flat_pct, 1),
        "restarts": restarts,
        "oom_killed": oom,
        "groups_end": groups_end,
        "max_lag": max((g["lag"] or 0) for s in samples for g in s["groups"].values()) if samples else None,
        "lag_unknown_seen": any(g["lag"] is None for s in samples for g in s["groups"].values()),
        "growth_per_day_bytes": growth,
        "projection_30d": projection,
        "trading": final["trading"],
        "validate": validations,
        "targets": targets,
        "rest": rest,
        "end": final,
        "samples": samples,
    }


def live_rate(final: dict[str, Any], table: str, env: dict[str, str]) -> float:
    """Bytes a day a table takes on the live feed where its rows follow the wall clock, not event time:
    execution writes a portfolio snapshot at most every SNAPSHOT_INTERVAL_SECONDS (wall) while a held
    price moves, so fast-forward writes fewer per day of event time than a live day does. Worst case:
    one every interval all day; a row as its average stored size plus the tuple header, line pointer
    and the entries of its two indexes (id; portfolio, taken_at), ~70 bytes."""
    row = final.get("row_bytes", {}).get(table)
    if table != "portfolio_snapshots" or not row:
        return 0.0
    interval = float(env.get("SNAPSHOT_INTERVAL_SECONDS") or 10)
    return 86_400 / interval * (row + 70)


def project(rest: dict[str, Any], final: dict[str, Any], growth: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    """Bytes on disk after PROJECT_DAYS days at the measured rate, from the stack at rest before the
    load: each table grows until its retention window is full (then deletes free as much as inserts
    take: Postgres reuses the space once vacuumed); the Postgres volume is its tables plus what it held
    beside them at the end (catalogs, WAL); Redis' AOF is bounded by stream trimming and rewritten when
    it doubles (auto-aof-rewrite-percentage 100), so it is counted at twice its end size; other volumes
    and the logs grow on (capped by log options)."""
    tables_end = {k: v["bytes"] for k, v in final["tables"].items()}
    kept = retention(env, list(tables_end))
    tables = {}
    for t in tables_end:
        days = min(PROJECT_DAYS, kept[t][0]) if t in kept else PROJECT_DAYS
        base = rest["tables"].get(t, {}).get("bytes", 0)
        tables[t] = base + max(0.0, growth["tables"].get(t, 0), live_rate(final, t, env)) * days
    volumes = {}
    for v, size in final["volumes"].items():
        if v.endswith("postgres_data"):  # the tables live here (not in Postgres' scratch volume for /tmp)
            volumes[v] = size - sum(tables_end.values()) + sum(tables.values())
        elif "redis" in v:
            volumes[v] = max(size, 2 * final["redis"].get("aof_bytes", 0))
        else:
            volumes[v] = rest["volumes"].get(v, 0) + max(0.0, growth["volumes"].get(v, 0)) * PROJECT_DAYS
    logs = {}
    for n in final["logs"]:
        cap = stackwatch.log_cap_bytes(final["containers"].get(n, {}).get("log_config") or {})
        grown = rest["logs"].get(n, 0) + max(0.0, growth["logs"].get(n, 0)) * PROJECT_DAYS
        logs[n] = grown if cap is None else min(grown, cap)
    others = sum(volumes.values()) + sum(logs.values()) - tables.get("market_snapshots", 0)
    rate = growth["tables"].get("market_snapshots", 0)
    fits = (TARGETS["footprint_30d_gib"] * GIB - others) / rate if rate > 0 else None
    return {
        "days": PROJECT_DAYS,
        "market_snapshot_days_within_target": None if fits is None else round(fits, 1),
        "retention": {t: {"days": d, "source": src} for t, (d, src) in kept.items()},
        "tables": tables,
        "volumes": volumes,
        "logs": logs,
        "logs_capped": {n: stackwatch.log_cap_bytes(c.get("log_config") or {}) for n, c in final["containers"].items()},
        "total_bytes": sum(volumes.values()) + sum(logs.values()),
    }


def print_report(result: dict[str, Any]) -> None:
    from ffprint import render

    render(result)
