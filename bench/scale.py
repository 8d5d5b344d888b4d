"""Cost as the stack grows: no-op `rebuild` (validate and probe included) and `status` on the bench's
7-service stack, then on a generated playbook of 50 (the same 7 plus 43 small services: the Redis
image, no ports, a health check), and the growth factor of each (linear would be 50/7 = 7.1x).

    python bench/scale.py --runs 3

Its own stack (STACKS["scale"] in tests/helpers.py) is removed at the end.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import yaml  # noqa: E402

from tests.helpers import STACKS, make_project, remove_system  # noqa: E402
from tests.helpers import cdb as run_cdb  # noqa: E402

STACK = STACKS["scale"]
SYSTEM, PREFIX, OFFSET = STACK.system, STACK.prefix, STACK.offset
ROOT = REPO / ".cache" / "scale"
EXTRA_IMAGE = "cdb_ops/redis:7-fallback"  # built by every rebuild of the core stack (or pulled redis)


def cdb(*args: str) -> float:
    t = time.perf_counter()
    r = run_cdb(*args, project=ROOT, timeout=900)
    took = time.perf_counter() - t
    if r.returncode != 0:
        raise SystemExit(f"cdb-ops {' '.join(args)} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-2000:]}")
    return took


def grow(services: int) -> int:
    """Add small services to the generated stack until it declares `services` (in the core profile)."""
    path = ROOT / "playbooks" / "stack.yaml"
    stack = yaml.safe_load(path.read_text())
    selected = {"core", *stack.get("feeds", {}).get("replay", {}).get("profiles", [])}
    have = sum(bool(selected & set(s.get("profiles", ["core"]))) for s in stack["services"].values())
    for i in range(services - have):
        stack["services"][f"extra{i:02d}"] = {
            "container": f"{PREFIX}extra{i:02d}",
            "role": "worker",
            "priority": "optional",
            "profiles": ["core"],
            "image": EXTRA_IMAGE,
            "command": ["redis-server", "--save", "", "--appendonly", "no"],
            "healthcheck": {"test": ["CMD", "redis-cli", "ping"], "interval": "5s", "timeout": "3s", "retries": 5},
            "mem_limit": "32m",
        }
    path.write_text(yaml.safe_dump(stack, sort_keys=False))
    return have


def measure(runs: int) -> dict[str, Any]:
    cdb("rebuild", "--feed", "replay")  # converge (creates what the playbook added); not timed
    cdb("status")  # writes the cached outline status reads
    noop = [cdb("rebuild", "--feed", "replay") for _ in range(runs)]
    status = [cdb("status") for _ in range(runs)]
    return {"noop_rebuild_s": statistics.median(noop), "status_s": statistics.median(status)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--services", type=int, default=50)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "scale.json")
    args = ap.parse_args()
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(REPO / "cdb_ops")], check=True, stdout=subprocess.DEVNULL
    )
    remove_system(SYSTEM)
    make_project(ROOT, SYSTEM, prefix=PREFIX, offset=OFFSET)
    result: dict[str, Any] = {}
    try:
        small = grow(0)
        result[str(small)] = measure(args.runs)
        grow(args.services)
        result[str(args.services)] = measure(args.runs)
    finally:
        remove_system(SYSTEM)
    a, b = result[str(small)], result[str(args.services)]
    result["growth"] = {
        "services": round(args.services / small, 2),
        "noop_rebuild": round(b["noop_rebuild_s"] / a["noop_rebuild_s"], 2),
        "status": round(b["status_s"] / a["status_s"], 2),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(
        f"{'measure (median s)':<22}{small:>10}{args.services:>10}  growth (services x{result['growth']['services']})"
    )
    for key, name in (("noop_rebuild_s", "no-op rebuild"), ("status_s", "status")):
        g = result["growth"][key.removesuffix("_s")]
        verdict = "sublinear" if g < args.services / small else "NOT sublinear"
        print(f"{name:<22}{a[key]:>10.3f}{b[key]:>10.3f}  x{g} ({verdict})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
