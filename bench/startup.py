"""What a command costs its own process, in CPU instructions: deterministic where wall-clock timings are not
(a loaded machine, a shared CI runner). Runs each command under valgrind's callgrind (instructions counted,
not sampled) and prints the count beside `python3 -c pass` — the floor every Python process pays here, .pth
files included — and `python3 -S -c pass` (the interpreter alone).

    python3 bench/startup.py [--project-dir DIR] [--no-cache]

--project-dir: a project whose stack is up (status reads it); default the current directory.
--no-cache: delete cdb-ops' bytecode caches before each command, i.e. what every run cost on a machine with
PYTHONDONTWRITEBYTECODE=1 before the command kept its own cache (cdb_ops/cli/__init__.py)."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COMMANDS = (["--version"], ["--help"], ["status"], ["status", "--json"], ["trading", "--help"])


def instructions(argv: list[str], cwd: Path, env: dict[str, str]) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/cg.out", *argv],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
    m = re.search(r"refs:\s+([\d,]+)", out.stderr)
    if not m:
        raise SystemExit(f"valgrind printed no count for {argv}:\n{out.stderr[-2000:]}")
    return int(m.group(1).replace(",", ""))


def _drop_caches() -> None:
    for d in [*REPO.joinpath("cdb_ops").rglob("__pycache__"), *REPO.joinpath("images/common").rglob("__pycache__")]:
        shutil.rmtree(d, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--project-dir", type=Path, default=Path.cwd())
    ap.add_argument("--no-cache", action="store_true")
    args = ap.parse_args()
    if not shutil.which("valgrind"):
        raise SystemExit("valgrind is not installed (Debian: apt-get install valgrind)")
    env = dict(os.environ)
    if not args.no_cache:
        for cmd in COMMANDS:  # a first run of each writes the caches it uses
            subprocess.run([sys.executable, "-m", "cdb_ops", *cmd], cwd=args.project_dir, capture_output=True)
    floor = instructions([sys.executable, "-c", "pass"], args.project_dir, env)
    bare = instructions([sys.executable, "-S", "-c", "pass"], args.project_dir, env)
    print(f"{'command':<28} {'instructions':>14} {'above python3 -c pass':>22}")
    print(f"{'python3 -S -c pass':<28} {bare / 1e6:>13.0f}M")
    print(f"{'python3 -c pass':<28} {floor / 1e6:>13.0f}M")
    for cmd in COMMANDS:
        if args.no_cache:
            _drop_caches()
        n = instructions([sys.executable, "-m", "cdb_ops", *cmd], args.project_dir, env)
        print(f"{'cdb-ops ' + ' '.join(cmd):<28} {n / 1e6:>13.0f}M {(n - floor) / 1e6:>21.0f}M")


if __name__ == "__main__":
    main()
