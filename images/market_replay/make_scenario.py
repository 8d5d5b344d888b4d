#!/usr/bin/env python3
"""Write a generated scenario as a replay file: `python3 images/market_replay/make_scenario.py`.

Default: the `momentum` scenario (seed 7) to replays/momentum_demo.jsonl. Deterministic: the same
arguments always give the same bytes, so the shipped file can be checked against the generator.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from market_replay.scenario import SCENARIOS, generate  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="momentum", choices=sorted(SCENARIOS))
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=HERE.parent.parent / "replays" / "momentum_demo.jsonl")
    args = parser.parse_args(argv)
    lines = generate(args.scenario, seed=args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    print(f"wrote {len(lines)} frames to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
