"""Soak run (not part of the tests): the whole stack under the looping replay feed for a while,
reporting every minute memory per service, restarts, consumer-group lag and pending entries,
ticks/s and fills, then a summary (also written as JSON).

    python bench/soak.py --minutes 30            # default 30
    python bench/soak.py --minutes 2 --keep      # leave the stack up afterwards

It runs its own copy of the stack (STACKS["soak"] in tests/helpers.py), so it never
touches your cdb_* stack; it is removed at the end unless --keep.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))  # its sibling modules (the folder also holds bench.py)

from stackwatch import CORE, Stack, consumer_groups, containers, memory_mib, row_counts  # noqa: E402

from tests.helpers import STACKS, StackFixture, cdb_json, env_values  # noqa: E402

STACK = STACKS["soak"]


def sample(stack: Stack, started: float) -> dict:
    found = containers(stack)
    mem = memory_mib(stack, found)
    ticks = 0.0
    try:
        import httpx

        text = httpx.get(f"http://127.0.0.1:{STACK.port(8000)}/metrics", timeout=5).text
        ticks = sum(
            float(line.split()[-1]) for line in text.splitlines() if line.startswith("cdb_ticks_published_total")
        )
    except Exception:  # noqa: BLE001 - a missed sample shows as 0
        pass
    counts = row_counts(stack, ("signals", "trades", "market_snapshots"))
    return {
        "minute": round((time.monotonic() - started) / 60, 1),
        "at": datetime.now(UTC).isoformat(),
        "memory_mb": mem,
        "core_mb": round(sum(v for k, v in mem.items() if k in CORE), 1),
        "restarts": {n: c["restarts"] for n, c in found.items()},
        "groups": consumer_groups(stack),
        "rows": {"snapshots" if k == "market_snapshots" else k: v for k, v in counts.items()},
        "ticks_published": ticks,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "soak.json")
    args = ap.parse_args()
    root = REPO / ".cache" / "soak"
    # the recorded 18 minutes every ~2 minutes, looping
    fixture = StackFixture(STACK, env={"REPLAY_SPEED": "10", "REPLAY_LOOP": "1"}, converge=False)
    fixture.up(root)
    out = cdb_json("rebuild", "--feed", "replay", project=root)
    print(f"stack up in {out['duration_seconds']}s; soaking {args.minutes} min", flush=True)
    stack = Stack(STACK.system, STACK.prefix, STACK.offset, env_values(root), root)
    started = time.monotonic()
    samples = []
    try:
        while True:
            s = sample(stack, started)
            samples.append(s)
            lag = {k: v["lag"] for k, v in s["groups"].items()}
            print(
                f"[{s['minute']:5.1f} min] core {s['core_mb']} MiB  restarts {sum(s['restarts'].values())}  "
                f"lag {lag}  ticks {s['ticks_published']:.0f}  rows {s['rows']}",
                flush=True,
            )
            if time.monotonic() - started >= args.minutes * 60:
                break
            time.sleep(60)
    finally:
        validate = cdb_json("validate", project=root, expect=None)
        if not args.keep:
            fixture.down()
    first, last = samples[0], samples[-1]
    minutes = max(last["minute"], 1e-9)
    summary = {
        "minutes": last["minute"],
        "core_mb": {
            "first": first["core_mb"],
            "last": last["core_mb"],
            "max": max(s["core_mb"] for s in samples),
            "median": statistics.median(s["core_mb"] for s in samples),
        },
        "restarts_total": sum(last["restarts"].values()),
        "max_lag": max((v["lag"] or 0) for s in samples for v in s["groups"].values()) if first["groups"] else None,
        "max_pending": max((v["pending"] or 0) for s in samples for v in s["groups"].values())
        if first["groups"]
        else None,
        "ticks_per_second": round((last["ticks_published"] - first["ticks_published"]) / (minutes * 60), 1),
        "rows_last": last["rows"],
        "validate_at_end": {c["name"]: c["status"] for c in validate["checks"] if c["status"] != "pass"} or "all pass",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"summary": summary, "samples": samples}, indent=2))
    print(json.dumps(summary, indent=2))
    return 0 if summary["restarts_total"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
