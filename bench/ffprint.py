"""The printed report of bench/fastforward.py: targets beside the numbers, then memory per service,
growth per day, the 30-day projection, the trading it did and validate's verdicts."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

MIB = 2**20


def _mib(value: float | None) -> str:
    return "-" if value is None else f"{value / MIB:,.1f} MiB"


def render(r: dict[str, Any]) -> None:
    console = Console(width=150)
    a = r["args"]
    span = f"{a['hours']:g} h of event time at REPLAY_SPEED={a['speed']:g}, {a['symbols']} pairs, seed {a['seed']}"
    console.print(f"[bold]A day of the exchange in fast-forward[/bold]: {span}, file {a['file']}")
    if a.get("note"):
        console.print(f"note: {a['note']}")
    h = r["host"]
    console.print(
        f"host: {h['cpus']} CPUs, mean 1-min load average during the load {h['loadavg_1m_mean']}; "
        f"{r.get('ticks_per_s_through_signal') or '-'} ticks/s through the signal engine over the load"
    )
    if r["extrapolated"]:
        how = "a shorter run" if r["finished"] else "the run did not finish; from the part played"
        console.print(f"wall time per day is extrapolated ({how}: {r['event_days_played'] * 24:.2f} h played)")

    t = Table(title="targets", title_justify="left")
    for col in ("measure", "measured", "target", "verdict"):
        t.add_column(col)
    v = r["validate"]
    proj = r["projection_30d"]
    c = r["core_mib"]
    rows = [
        ("wall minutes per day of event time",
         f"{r['wall_minutes_per_day']:.1f} (wall {r['wall_seconds'] / 60:.1f} min)",
         "<= 30", "a day of event time in <= 30 min"),
        ("restarts / OOM kills", f"{sum(r['restarts'].values())} / {', '.join(r['oom_killed']) or 'none'}", "0 / none",
         "0 restarts, no OOM kill"),
        ("core memory after warm-up -> end (MiB)",
         f"{c['start']} -> {c['end']} ({r['core_end_vs_start_pct']} %), peak {c['peak']}",
         "within 10 %", "memory flat (core end within 10 % of start after warm-up)"),
        ("lag / pending at the end", ", ".join(f"{k}={g['lag']}/{g['pending']}" for k, g in r["groups_end"].items()),
         "drained", "every lag drained at the end"),
        ("validate (with probe) during the load", _verdict(v.get("during")), "pass", "validate passes during the load"),
        ("validate (with probe) after the load", _verdict(v.get("after")), "pass", "validate passes after the load"),
        ("30-day footprint, retention applied", _mib(proj["total_bytes"]), "<= 2 GiB", "30-day footprint <= 2 GiB"),
        ("the screener's feed connection", "held" if not r.get("feed_dropped") else
         f"dropped after {r['feed_dropped']['at_wall_s']} s: {r['feed_dropped']['reason']}", "held",
         "the feed stayed connected (no replay started over)"),
        ("trades (BUY / SELL fills)", f"{r['trading'].get('trades BUY', 0)} / {r['trading'].get('trades SELL', 0)}",
         "> 0 each", "the pipeline traded (BUY and SELL fills)"),
    ]  # fmt: skip
    for name, measured, target, key in rows:
        ok = r["targets"].get(key, True)
        t.add_row(name, measured, target, "[green]met[/green]" if ok else "[red]MISSED[/red]")
    console.print(t)

    m = Table(title="memory per container (MiB)", title_justify="left")
    for col in ("container", "at rest", "after warm-up", "end", "peak", "limit", "restarts"):
        m.add_column(col)
    for n, row in r["memory_mib"].items():
        m.add_row(n, *(str(row[k] if row[k] is not None else "-") for k in ("rest", "start", "end", "peak", "limit")),
                  str(r["restarts"].get(n, "-")))  # fmt: skip
    c = r["core_mib"]
    m.add_row("core total", str(c["rest"]), str(c["start"]), str(c["end"]), str(c["peak"]), "1536 (memo)", "")
    console.print(m)
    console.print(f"warm-up: {r['warm_up']}")

    g = Table(title="growth per day of event time, and in 30 days", title_justify="left")
    for col in ("what", "at end", "per day", "in 30 days", "how projected"):
        g.add_column(col)
    grow = r["growth_per_day_bytes"]
    end = r["end"]
    ret = proj["retention"]
    for name, info in sorted(end["tables"].items(), key=lambda kv: -kv[1]["bytes"]):
        how = f"kept {ret[name]['days']:g} d ({ret[name]['source']})" if name in ret else "never deleted"
        if name == "portfolio_snapshots":
            how += "; at least the live rate (one per SNAPSHOT_INTERVAL_SECONDS of wall time)"
        g.add_row(f"table {name}", _mib(info["bytes"]), _mib(grow["tables"].get(name)), _mib(proj["tables"][name]), how)
    for name, size in end["volumes"].items():
        how = ("tables projected + the rest as at the end" if name.endswith("postgres_data")
               else "AOF x2 (rewrite at +100 %)" if "redis" in name else "linear")  # fmt: skip
        # Redis' volume (the AOF) fills while the streams fill to their MAXLEN, then stays: no rate per day
        per_day = "bounded" if "redis" in name else _mib(grow["volumes"].get(name))
        g.add_row(f"volume {name}", _mib(size), per_day, _mib(proj["volumes"][name]), how)
    redis = end["redis"]
    g.add_row("redis used_memory (per day: after warm-up)", _mib(redis.get("used_memory")), _mib(grow["redis_memory"]),
              "-", "streams trimmed")  # fmt: skip
    g.add_row("redis AOF (per day: written after warm-up)", _mib(redis.get("aof_bytes")), _mib(grow["aof"]), "-",
              f"rewritten at +100 %: {redis.get('aof_rewrites', 0)} rewrites")  # fmt: skip
    for name, size in end["logs"].items():
        cap = proj["logs_capped"].get(name)
        how = "uncapped (json-file, no max-size)" if cap is None else f"capped at {_mib(cap)}"
        g.add_row(f"log {name}", _mib(size), _mib(grow["logs"].get(name)), _mib(proj["logs"].get(name)), how)
    g.add_row("[bold]total on disk[/bold]", "", "", _mib(proj["total_bytes"]), "volumes + logs")
    console.print(g)
    fits = proj.get("market_snapshot_days_within_target")
    if fits is not None:
        console.print(f"market_snapshots retention that keeps the 30-day footprint within 2 GiB: {fits:g} days")

    clock = r["end"].get("event_clock") or {}
    if clock:
        console.print(f"event clock: market minutes {clock['first_minute']} .. {clock['last_minute']} "
                      f"(wall clock at the end {clock['wall_now']})")  # fmt: skip
    console.print("trading:", {k: v for k, v in r["trading"].items() if not k.startswith("market")})
    console.print(f"max lag seen {r['max_lag']}; a lag Redis could not tell (stream trimmed past a group): "
                  f"{'yes - ticks were lost' if r['lag_unknown_seen'] else 'never'}")  # fmt: skip
    for when in ("during", "after"):
        if v.get(when) and v[when]["not_passed"]:
            console.print(f"validate {when}: not passed: {v[when]['not_passed']}")


def _verdict(v: dict[str, Any] | None) -> str:
    if not v:
        return "not run"
    return f"{'pass' if v['passed'] else 'FAIL'} ({v['seconds']} s)"
