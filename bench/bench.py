"""Benchmarks on this machine's real engine, cdb-ops and Docker Compose side by side on the same
stack: no-op rebuild, cold start to healthy, status, validate (with and without the end-to-end
probe), pipeline throughput and tick-to-order latency under the replay feed at full speed, and the
core stack's memory at rest and under that load. Prints a table and writes bench/results/bench.json.

    python bench/bench.py                 # everything (about 6 minutes)
    python bench/bench.py --runs 3 --skip-compose
    python bench/bench.py --runs 3 --skip-pipeline   # the lifecycle commands vs Compose v2 only

Its own copy of the stack (STACKS["bench"] in tests/helpers.py) is removed at the end.
Compose is Docker Compose v2.40.3 (tools/compose-v2.sh: the Go binary users run) on the file
`cdb-ops export compose --offline --feed replay` writes, measured in the same run; the ratios are
cdb-ops / Compose v2 (the targets: cold start <= 0.2, no-op <= 0.35, status <= 0.8, down <= 0.9).
cdb-ops runs as users run it: one process per command, nothing running in between. `status` and `ps`
are timed in turns (15 each) on the one stack Compose started, and each `down` is split by the engine's
events (the tool's own start, the engine's stop and teardown, the rest). The code is byte-compiled first,
as an installed package is. `--system/--prefix/--offset` put the bench's stack under other names and ports
(for a machine where another bench or test stack runs).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import docker  # noqa: E402
import httpx  # noqa: E402

from tests.helpers import STACKS, make_project, remove_system  # noqa: E402
from tests.helpers import cdb as run_cdb  # noqa: E402

SYSTEM, PREFIX, OFFSET = STACKS["bench"].system, STACKS["bench"].prefix, STACKS["bench"].offset
CORE = ("postgres", "redis", "screener_ws", "signal", "risk", "execution")
ROOT = REPO / ".cache" / "bench"


def _use(system: str, prefix: str, offset: int) -> None:
    """Run the bench under these names and ports (its project folder is named after the system)."""
    global SYSTEM, PREFIX, OFFSET, ROOT
    if system != SYSTEM:
        ROOT = REPO / ".cache" / f"bench-{system}"
    SYSTEM, PREFIX, OFFSET = system, prefix, offset


def cdb(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """`cdb-ops ARGS` as a user runs it: a process of its own."""
    r = run_cdb(*args, project=ROOT, timeout=900)
    if check and r.returncode != 0:
        raise SystemExit(f"cdb-ops {' '.join(args)} failed ({r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    return r


def _python(*args: str) -> None:
    subprocess.run([sys.executable, *args], check=True)


def timed(fn: Callable[[], Any]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def stats(samples: list[float]) -> dict[str, Any]:
    return {
        "median": round(statistics.median(samples), 3),
        "min": round(min(samples), 3),
        "max": round(max(samples), 3),
        "runs": len(samples),
    }


def containers(client: docker.DockerClient) -> dict[str, tuple[str, str]]:
    return {
        c.name: (c.id, c.attrs["State"]["StartedAt"])
        for c in client.containers.list(all=True, filters={"label": f"cdb.system={SYSTEM}"})
    }


def wait_healthy(client: docker.DockerClient, names: list[str], timeout: float = 180) -> float:
    """Seconds until Docker reports every named container healthy (polled every 100 ms)."""
    t = time.perf_counter()
    while time.perf_counter() - t < timeout:
        states = []
        for n in names:
            try:
                states.append(client.api.inspect_container(n)["State"].get("Health", {}).get("Status"))
            except docker.errors.NotFound:
                states.append(None)
        if all(s == "healthy" for s in states):
            return time.perf_counter() - t
        time.sleep(0.1)
    raise SystemExit(f"not healthy after {timeout}s: {names}")


def set_env(**values: str) -> None:
    env = ROOT / ".env"
    lines = [ln for ln in env.read_text().splitlines() if ln.split("=", 1)[0] not in values]
    env.write_text("\n".join(lines + [f"{k}={v}" for k, v in values.items()]) + "\n")


def metrics(port: int) -> str:
    return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text


def counter(text: str, name: str, label: str = "") -> float:
    return sum(
        float(ln.split()[-1])
        for ln in text.splitlines()
        if ln.startswith(name) and not ln.startswith("#") and label in ln
    )


def histogram(text: str, name: str, label: str) -> dict[float, float]:
    out = {}
    for ln in text.splitlines():
        if ln.startswith(f"{name}_bucket") and label in ln:
            le = ln.split('le="')[1].split('"')[0]
            out[float("inf") if le == "+Inf" else float(le)] = float(ln.split()[-1])
    return out


def quantile(q: float, buckets: dict[float, float]) -> float | None:
    """histogram_quantile: linear interpolation inside the bucket that holds the q-th observation."""
    items = sorted(buckets.items())
    total = items[-1][1] if items else 0
    if total <= 0:
        return None
    rank, prev_le, prev_count = q * total, 0.0, 0.0
    for le, count in items:
        if count >= rank:
            if le == float("inf"):
                return prev_le
            return prev_le + (le - prev_le) * ((rank - prev_count) / max(count - prev_count, 1e-9))
        prev_le, prev_count = le, count
    return None


def timed_down(
    client: docker.DockerClient, fn: Callable[[], Any], samples: list[float], phases: list[dict[str, float]]
) -> None:
    """Time one `down` and split it by the engine's own events for the stack's containers: from the
    command's start to its first SIGTERM (the tool's own work), from there to the network's removal (the
    engine stopping and tearing down containers in the order the tool asks), and from that to the
    command's exit."""
    wall = time.time()
    t = time.perf_counter()
    fn()
    took = time.perf_counter() - t
    samples.append(took)
    events = client.api.events(
        since=wall - 0.5, until=time.time() + 0.5, filters={"label": f"cdb.system={SYSTEM}"}, decode=True
    )
    kills = [e["timeNano"] / 1e9 for e in events if e.get("Action") == "kill"]
    events = client.api.events(
        since=wall - 0.5, until=time.time() + 0.5, filters={"type": "network", "event": "destroy"}, decode=True
    )
    gone = [e["timeNano"] / 1e9 for e in events if e["Actor"]["Attributes"].get("name") == f"{PREFIX}network"]
    if kills and gone:
        phases.append(
            {
                "to_first_sigterm": min(kills) - wall,
                "engine_sigterm_to_network_removed": gone[-1] - min(kills),
                "after_network_removed": wall + took - gone[-1],
            }
        )


def down_split(phases: list[dict[str, float]]) -> dict[str, Any]:
    return {k: stats([p[k] for p in phases]) for k in phases[0]} if phases else {}


def core_memory_mb() -> float:
    from cdb_ops.engine.docker import DockerEngine

    engine = DockerEngine()
    found = {c.name.removeprefix(PREFIX): c.id for c in engine.containers(label=f"cdb.system={SYSTEM}") if c.running}
    st = engine.stats_many([found[n] for n in CORE if n in found], cpu=False)
    return round(sum(s.memory_bytes for s in st.values()) / 2**20, 1)


def bench_cdb_ops(client: docker.DockerClient, runs: int, pipeline: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {}
    cdb("rebuild", "--feed", "replay")  # builds what is missing; not timed
    wait_healthy(client, list(containers(client)))
    before = containers(client)
    out["noop_rebuild_s"] = stats([timed(lambda: cdb("rebuild", "--feed", "replay")) for _ in range(runs)])
    out["noop_restarted_nothing"] = containers(client) == before
    cdb("status")  # (re)writes the cached stack outline the quick status path reads; not timed
    out["status_s"] = stats([timed(lambda: cdb("status")) for _ in range(runs)])
    out["status_json_s"] = stats([timed(lambda: cdb("status", "--json")) for _ in range(runs)])
    # what every command pays before any of cdb-ops runs: the interpreter, with and without `site` (the
    # .pth files of site-packages: an editable install's finder, here also the sandbox's CA bundle hook)
    out["python_start_s"] = stats([timed(lambda: _python("-c", "pass")) for _ in range(max(runs, 5))])
    out["python_start_without_site_s"] = stats(
        [timed(lambda: _python("-S", "-c", "pass")) for _ in range(max(runs, 5))]
    )
    out["validate_no_probe_s"] = stats([timed(lambda: cdb("validate", "--no-probe", "--json")) for _ in range(runs)])
    out["validate_s"] = stats([timed(lambda: cdb("validate", "--json")) for _ in range(runs)])
    out["memory_at_rest_mb"] = core_memory_mb()

    phases = [
        "--phase",
        "cleanup",
        "--phase",
        "network",
        "--phase",
        "volumes",
        "--phase",
        "postgres",
        "--phase",
        "schema",
        "--phase",
        "redis",
        "--phase",
        "builds",
        "--phase",
        "start",
    ]
    ready, healthy, down = [], [], []
    split: list[dict[str, float]] = []
    for _ in range(runs):
        timed_down(client, lambda: cdb("down"), down, split)
        t = time.perf_counter()
        cdb("rebuild", "--feed", "replay", *phases)
        ready.append(time.perf_counter() - t)
        wait_healthy(client, list(containers(client)))
        healthy.append(time.perf_counter() - t)
    out["cold_start_to_ready_s"] = stats(ready)
    out["cold_start_to_docker_healthy_s"] = stats(healthy)
    out["down_s"] = stats(down)
    out["down_split_s"] = down_split(split)
    if pipeline:
        out.update(bench_pipeline(client))
    return out


def write_load_file(path: Path, symbols: int = 300, frames: int = 60) -> None:
    """A market like the real `!miniTicker@arr`: hundreds of USDT pairs a frame, one frame a second,
    prices drifting by hundredths of a percent, looped — throughput without a storm of signals (the shipped
    momentum scenario replayed in a loop at full speed would make every loop a burst of signals)."""
    import random

    rnd = random.Random(7)
    prices = {f"LOAD{i:03d}USDT": 10.0 + rnd.random() * 90 for i in range(symbols)}
    start = 1_760_000_000_000
    with open(path, "w") as f:
        for n in range(frames):
            items = []
            for sym, open_ in prices.items():
                c = open_ * (1 + rnd.uniform(-0.0002, 0.0002))
                items.append(
                    {
                        "e": "24hrMiniTicker",
                        "E": start + n * 1000,
                        "s": sym,
                        "c": f"{c:.6f}",
                        "o": f"{open_:.6f}",
                        "h": f"{max(c, open_):.6f}",
                        "l": f"{min(c, open_):.6f}",
                        "v": "100000.0",
                        "q": "5000000.0",
                    }
                )
            f.write(json.dumps(items, separators=(",", ":")) + "\n")


def _rates(seconds: float, probe: bool) -> dict[str, Any]:
    """Counters over a window of `seconds`; with `probe`, 10 probes/s for tick-to-order latency."""
    m0 = {p: metrics(p + OFFSET) for p in (8000, 8001, 8003)}
    t0 = time.perf_counter()
    mem = []
    n = 0
    while time.perf_counter() - t0 < seconds:
        if probe:
            httpx.post(
                f"http://127.0.0.1:{8000 + OFFSET}/probe",
                json={"probe_id": str(uuid.uuid4()), "move_pct": 8},
                timeout=5,
            )
        n += 1
        if n % 20 == 0:
            mem.append(core_memory_mb())
        time.sleep(0.1)
    time.sleep(2 if probe else 0)
    elapsed = time.perf_counter() - t0
    m1 = {p: metrics(p + OFFSET) for p in (8000, 8001, 8003)}
    published = counter(m1[8000], "cdb_ticks_published_total") - counter(m0[8000], "cdb_ticks_published_total")
    consumed = counter(m1[8001], "cdb_events_consumed_total", 'stream="cdb:ticks"') - counter(
        m0[8001], "cdb_events_consumed_total", 'stream="cdb:ticks"'
    )
    b0 = histogram(m0[8003], "cdb_event_latency_seconds", 'stream="cdb:orders"')
    b1 = histogram(m1[8003], "cdb_event_latency_seconds", 'stream="cdb:orders"')
    window = {le: b1[le] - b0.get(le, 0.0) for le in b1}
    return {
        "published": round(published / elapsed, 1),
        "consumed": round(consumed / elapsed, 1),
        "orders": int(max(window.values(), default=0)),
        "p50": round((quantile(0.5, window) or 0) * 1000, 1),
        "p99": round((quantile(0.99, window) or 0) * 1000, 1),
        "memory": max(mem) if mem else core_memory_mb(),
    }


def wait_drained(timeout: float = 300) -> float:
    """Seconds until every consumer group of cdb:ticks has read the whole stream (XINFO GROUPS lag 0)."""

    from tests.helpers import redis_connect

    r = redis_connect(ROOT, 6379 + OFFSET, decode_responses=True)
    t = time.perf_counter()
    while time.perf_counter() - t < timeout:
        groups = r.xinfo_groups("cdb:ticks")
        if groups and all(g.get("lag") == 0 for g in groups):
            return round(time.perf_counter() - t, 1)
        time.sleep(0.5)
    raise SystemExit(f"cdb:ticks not drained after {timeout}s: {groups}")


def bench_pipeline(client: docker.DockerClient) -> dict[str, Any]:
    """Two windows on a generated market of 300 pairs: the replay as fast as it goes (the most ticks/s
    the pipeline sustains), then at 10 frames/s = 3,000 ticks/s (above the 2,000 target, below
    saturation) with probes for tick-to-order latency. At saturation queues grow, so latency there
    measures the backlog, not the pipeline."""
    write_load_file(ROOT / "replays" / "load.jsonl")
    # paced first: a flat-out window leaves a backlog in the streams that would be measured as latency
    set_env(REPLAY_SPEED="10", REPLAY_LOOP="1", REPLAY_FILE="load.jsonl")
    cdb("rebuild", "--feed", "replay", "--phase", "start")
    time.sleep(5)
    paced = _rates(30.0, probe=True)
    set_env(REPLAY_SPEED="0", REPLAY_LOOP="1", REPLAY_FILE="load.jsonl")
    cdb("rebuild", "--feed", "replay", "--phase", "start")
    time.sleep(5)
    full = _rates(20.0, probe=False)
    set_env(REPLAY_SPEED="10", REPLAY_LOOP="0", REPLAY_FILE="momentum_demo.jsonl")
    cdb("rebuild", "--feed", "replay", "--phase", "start")
    drained = wait_drained()  # flat out, the screener may publish faster than the signal engine reads
    cdb("rebuild", "--feed", "replay")
    return {
        "ticks_published_per_s": full["published"],
        "ticks_through_signal_per_s": full["consumed"],
        "paced_ticks_through_signal_per_s": paced["consumed"],
        "orders_in_window": paced["orders"],
        "tick_to_order_p50_ms": paced["p50"],
        "tick_to_order_p99_ms": paced["p99"],
        "memory_under_load_mb": max(full["memory"], paced["memory"]),
        "backlog_drained_after_s": drained,
    }


def bench_compose(client: docker.DockerClient, runs: int) -> dict[str, Any]:
    compose = subprocess.run(
        ["bash", str(REPO / "tools" / "compose-v2.sh")], capture_output=True, text=True, check=True
    ).stdout.strip()
    file = ROOT / "docker-compose.yml"
    cdb("export", "compose", "--offline", "--feed", "replay", "-o", str(file), "--force")
    cdb("rebuild", "--clean", "--phase", "cleanup")  # free the names; volumes and images stay

    def dc(*args: str) -> None:
        subprocess.run(
            [compose, "-p", SYSTEM.replace("_", ""), "-f", str(file), *args],
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
            timeout=600,
        )

    names = [
        f"{PREFIX}{n}" for n in ("postgres", "redis", "screener_ws", "signal", "risk", "execution", "market_replay")
    ]
    out: dict[str, Any] = {}
    up, healthy, down = [], [], []
    split: list[dict[str, float]] = []
    try:
        dc("down", "--remove-orphans")
        for _ in range(runs):
            t = time.perf_counter()
            dc("up", "-d", "--wait")
            up.append(time.perf_counter() - t)
            wait_healthy(client, names)
            healthy.append(time.perf_counter() - t)
            if _ < runs - 1:
                timed_down(client, lambda: dc("down"), down, split)
        out["cold_start_up_returns_s"] = stats(up)
        out["cold_start_to_docker_healthy_s"] = stats(healthy)
        out["noop_up_s"] = stats([timed(lambda: dc("up", "-d", "--wait")) for _ in range(runs)])
        # The listings take ~0.1 s and this VM's speed drifts from minute to minute: both tools list the
        # same running containers (the stack Compose started carries the system label) in turns, 15 each.
        cdb("status")  # the outline cache status reads; not timed
        turns: dict[str, list[float]] = {"ps": [], "status": [], "status --json": []}
        for _ in range(15):
            turns["ps"].append(timed(lambda: dc("ps")))
            turns["status"].append(timed(lambda: cdb("status")))
            turns["status --json"].append(timed(lambda: cdb("status", "--json")))
        out["ps_s"] = stats(turns["ps"])
        out["cdb_ops_status_in_turns_s"] = stats(turns["status"])
        out["cdb_ops_status_json_in_turns_s"] = stats(turns["status --json"])
        timed_down(client, lambda: dc("down"), down, split)
        out["down_s"] = stats(down)
        out["down_split_s"] = down_split(split)
    finally:
        dc("down", "--remove-orphans")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--skip-compose", action="store_true")
    ap.add_argument("--skip-pipeline", action="store_true", help="the lifecycle commands only")
    ap.add_argument(
        "--pipeline-only",
        action="store_true",
        help="only the throughput/latency part, merged into an existing results file",
    )
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "bench.json")
    ap.add_argument("--system", default=SYSTEM, help=f"the bench stack's cdb.system label (default {SYSTEM})")
    ap.add_argument("--prefix", default=PREFIX, help=f"its containers' name prefix (default {PREFIX})")
    ap.add_argument("--offset", type=int, default=OFFSET, help=f"added to every host port (default {OFFSET})")
    args = ap.parse_args()
    _use(args.system, args.prefix, args.offset)
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(REPO / "cdb_ops"), str(REPO / "images/common/cdb_common")],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    client = docker.from_env()
    remove_system(SYSTEM)
    replays = ROOT / "replays"  # a folder of its own (not the repo's), for the generated load file
    if replays.is_symlink():
        replays.unlink()
    replays.mkdir(parents=True, exist_ok=True)
    import shutil

    shutil.copy(REPO / "replays" / "momentum_demo.jsonl", replays / "momentum_demo.jsonl")
    make_project(ROOT, SYSTEM, prefix=PREFIX, offset=OFFSET, init=False)
    if not (ROOT / ".env").exists():
        cdb("init", "--feed", "replay")  # the bench runs the replay: no need to ask the exchange
    set_env(REPLAY_SPEED="10", REPLAY_LOOP="0", REPLAY_FILE="momentum_demo.jsonl")
    result: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "machine": {
            "cpus": os.cpu_count(),
            "docker": client.version()["Version"],
            "load_average_at_start": os.getloadavg(),
        },
    }
    try:
        if args.pipeline_only:
            previous = json.loads(args.out.read_text()) if args.out.exists() else {**result, "cdb_ops": {}}
            cdb("rebuild", "--feed", "replay")
            previous["cdb_ops"].update(bench_pipeline(client))
            result = previous
        else:
            result["cdb_ops"] = bench_cdb_ops(client, args.runs, pipeline=not args.skip_pipeline)
        if not args.skip_compose and not args.pipeline_only:
            result["compose"] = bench_compose(client, max(3, args.runs // 2))
    finally:
        remove_system(SYSTEM)
    result["machine"]["load_average_at_end"] = os.getloadavg()
    c, d = result["cdb_ops"], result.get("compose")
    if d:
        result["ratios_cdb_ops_over_compose"] = {
            "cold_start_to_ready_vs_compose_healthy": round(
                c["cold_start_to_ready_s"]["median"] / d["cold_start_to_docker_healthy_s"]["median"], 3
            ),
            "cold_start_docker_healthy": round(
                c["cold_start_to_docker_healthy_s"]["median"] / d["cold_start_to_docker_healthy_s"]["median"], 3
            ),
            "noop": round(c["noop_rebuild_s"]["median"] / d["noop_up_s"]["median"], 3),
            "status_vs_ps": round(d["cdb_ops_status_in_turns_s"]["median"] / d["ps_s"]["median"], 3),
            "status_json_vs_ps": round(d["cdb_ops_status_json_in_turns_s"]["median"] / d["ps_s"]["median"], 3),
            "down": round(c["down_s"]["median"] / d["down_s"]["median"], 3),
        }
    r = result.get("ratios_cdb_ops_over_compose", {})
    targets = {} if "noop_rebuild_s" not in c else {
        "no-op rebuild restarts nothing": bool(c["noop_restarted_nothing"]),
        "cold start <= 0.2x Compose v2 up --wait": bool(r) and r["cold_start_to_ready_vs_compose_healthy"] <= 0.2,
        "no-op rebuild <= 0.35x Compose v2 up --wait": bool(r) and r["noop"] <= 0.35,
        "status <= 0.8x Compose v2 ps": bool(r) and r["status_vs_ps"] <= 0.8,
        "down <= 0.9x Compose v2 down": bool(r) and r["down"] <= 0.9,
        "core stack < 600 MB": c["memory_at_rest_mb"] < 600,
    }  # fmt: skip
    if "ticks_through_signal_per_s" in c:
        targets[">= 20000 ticks/s"] = c["ticks_through_signal_per_s"] >= 20000
        targets["p99 tick-to-order < 50 ms"] = 0 < c["tick_to_order_p99_ms"] < 50
    result["targets_met"] = targets
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    _print(result)
    return 0


def _print(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title="cdb-ops vs Docker Compose v2.40.3 (seconds: median [min–max]; n runs)", title_justify="left")
    for col in ("measure", "cdb-ops", "compose v2"):
        t.add_column(col)

    def fmt(v: Any) -> str:
        if isinstance(v, dict) and "median" in v:
            return f"{v['median']:.3f} [{v['min']:.3f}–{v['max']:.3f}] n={v['runs']}"
        return str(v)

    c, d = result["cdb_ops"], result.get("compose", {})
    rows = (
        []
        if "noop_rebuild_s" not in c
        else [
            ("no-op rebuild (validate + probe) / up -d --wait", c["noop_rebuild_s"], d.get("noop_up_s")),
            ("  restarted nothing", c["noop_restarted_nothing"], None),
            (
                "cold start to ready (cdb-ops probes) / up -d --wait",
                c["cold_start_to_ready_s"],
                d.get("cold_start_up_returns_s"),
            ),
            (
                "cold start to Docker-healthy",
                c["cold_start_to_docker_healthy_s"],
                d.get("cold_start_to_docker_healthy_s"),
            ),
            ("status / ps (in turns on one stack, 15 each)", d.get("cdb_ops_status_in_turns_s"), d.get("ps_s")),
            ("status --json in those turns", d.get("cdb_ops_status_json_in_turns_s"), None),
            ("status (its own phase)", c["status_s"], None),
            ("status --json (its own phase)", c["status_json_s"], None),
            ("  python3 -c pass (every command's start)", c.get("python_start_s"), None),
            ("  python3 -S -c pass (the same without site)", c.get("python_start_without_site_s"), None),
            ("down / down", c["down_s"], d.get("down_s")),
            *(
                (f"  {label}", c.get("down_split_s", {}).get(key), d.get("down_split_s", {}).get(key))
                for key, label in (
                    ("to_first_sigterm", "start to first SIGTERM (the tool)"),
                    ("engine_sigterm_to_network_removed", "first SIGTERM to network removed (engine)"),
                    ("after_network_removed", "network removed to exit"),
                )
            ),
            ("validate --no-probe", c["validate_no_probe_s"], None),
            ("validate (with end-to-end probe)", c["validate_s"], None),
        ]
    )
    if "ticks_through_signal_per_s" in c:
        rows += [
            ("ticks/s published by screener", c["ticks_published_per_s"], None),
            ("ticks/s through signal engine (replay flat out)", c["ticks_through_signal_per_s"], None),
            ("ticks/s through signal engine (paced window)", c.get("paced_ticks_through_signal_per_s"), None),
            ("backlog after the flat-out window drained in (s)", c.get("backlog_drained_after_s"), None),
            (
                "tick-to-order p50 / p99 ms",
                f"{c['tick_to_order_p50_ms']} / {c['tick_to_order_p99_ms']} ({c['orders_in_window']} orders)",
                None,
            ),
        ]
    rows.append(
        (
            "core memory at rest / under load MiB",
            f"{c.get('memory_at_rest_mb', '-')} / {c.get('memory_under_load_mb', '-')}",
            None,
        )
    )
    for name, a, b in rows:
        t.add_row(name, fmt(a), "" if b is None else fmt(b))
    console = Console(width=160)
    console.print(t)
    if "ratios_cdb_ops_over_compose" in result:
        console.print("ratios (cdb-ops / compose):", result["ratios_cdb_ops_over_compose"])
    console.print("targets:", {k: ("met" if v else "MISSED") for k, v in result["targets_met"].items()})


if __name__ == "__main__":
    sys.exit(main())
