"""A day of the exchange in fast-forward (a bench, not a test): a generated `!miniTicker@arr` market of 300
USDT pairs, one frame per second of event time with a momentum move every 10 minutes (bench/ffmarket.py),
played by the replay service time-compressed through the whole real stack (screener, signal engine, risk
manager, execution, Postgres, Redis), and what a day costs: wall minutes per day of event time; memory per
service at rest, after warm-up, at the end and at its peak; restarts and OOM kills; consumer lag and
pending entries at the end; growth per day of every table, volume, Redis (memory, AOF) and container
log; a 30-day projection with retention applied; `cdb-ops validate` (with the probe) during and after.

    python bench/fastforward.py                      # a day of event time at REPLAY_SPEED=60 (~24 min)
    python bench/fastforward.py --hours 0.25         # a quarter hour; wall time per day extrapolated
    python bench/fastforward.py --speed 0 --json out.json --keep
    python bench/fastforward.py --report out.json    # print a saved result again

Its own copy of the stack (STACKS["fastforward"] in tests/helpers.py; project .cache/fastforward with a
replays/ folder of its own for the generated file) is removed at the end unless --keep.
`--speed 0` plays as fast as the screener reads: faster than the signal engine consumes on 2 cores, and
cdb:ticks is trimmed at 200,000 entries, so a backlog beyond that loses ticks (the run says so).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))  # its sibling modules (the folder also holds bench.py)

import ffmarket  # noqa: E402
import httpx  # noqa: E402
import stackwatch  # noqa: E402
import yaml  # noqa: E402
from ffreport import SampleLog, print_report, summarize  # noqa: E402

from tests.helpers import STACKS, env_values, make_project, remove_system, wait_until  # noqa: E402
from tests.helpers import cdb as run_cdb  # noqa: E402

STACK = STACKS["fastforward"]
SYSTEM, PREFIX, OFFSET = STACK.system, STACK.prefix, STACK.offset
ROOT = REPO / ".cache" / "fastforward"
REPLAY_PKG = REPO / "images" / "market_replay" / "market_replay"


def replay_streams() -> bool:
    """Whether this checkout's replay streams its file and reads gzip (issue 23 item 2), judged by its
    source: the replay of before holds every frame in memory (128 MiB limit) and reads plain text only."""
    return any("gzip" in p.read_text() for p in REPLAY_PKG.glob("*.py"))


def cdb(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    r = run_cdb(*args, project=ROOT, timeout=timeout)
    if r.returncode != 0:
        raise SystemExit(f"cdb-ops {' '.join(args)} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-2000:]}")
    return r


def set_env(**values: str) -> None:
    env = ROOT / ".env"
    lines = [ln for ln in env.read_text().splitlines() if ln.split("=", 1)[0] not in values]
    env.write_text("\n".join(lines + [f"{k}={v}" for k, v in values.items()]) + "\n")


def prepare(args: argparse.Namespace, streaming: bool) -> tuple[str, int, int, str | None]:
    """The project (replays/ a real folder, not the repo's symlink) and the market file in it (reused when
    the same seed, size and span were generated before). Returns (file name, frames, ticks, note)."""
    replays = ROOT / "replays"
    if replays.is_symlink():
        replays.unlink()
    replays.mkdir(parents=True, exist_ok=True)
    suffix = ".jsonl.gz" if streaming and not args.plain else ".jsonl"
    name = f"ffwd-s{args.seed}-n{args.symbols}-h{args.hours:g}{suffix}"
    meta = replays / (name + ".json")
    if (replays / name).exists() and meta.exists():
        frames, ticks = json.loads(meta.read_text())["frames_ticks"]
        print(f"market: reusing {replays / name}", flush=True)
    else:
        t = time.monotonic()
        frames, ticks = ffmarket.write(replays / name, args.hours, args.symbols, args.seed)
        meta.write_text(json.dumps({"frames_ticks": [frames, ticks]}))
        size = (replays / name).stat().st_size / 2**20
        print(f"market: {frames} frames, {ticks} ticks, {size:.1f} MiB in {time.monotonic() - t:.0f} s", flush=True)
    # A flat minute of the same symbols, at normal speed, to bring the stack up and measure it at rest.
    with open(replays / "ffwd-rest.jsonl", "w") as f:
        for line in ffmarket.frames(1 / 60, args.symbols, args.seed):
            f.write(line + "\n")
    make_project(ROOT, SYSTEM, prefix=PREFIX, offset=OFFSET)
    note = None
    if not streaming:
        # The replay of before parses the whole file into memory (~15x its size): give it room in this
        # copy of the playbook only, so the rest of the stack is measured; say so in the report.
        raw = (replays / name).stat().st_size
        limit = max(256, int(raw * 16 / 2**20) + 128)
        stack_file = ROOT / "playbooks" / "stack.yaml"
        stack = yaml.safe_load(stack_file.read_text())
        stack["services"]["market_replay"]["mem_limit"] = f"{limit}m"
        stack_file.write_text(yaml.safe_dump(stack, sort_keys=False))
        note = (
            f"the replay in this checkout holds its whole file in memory and reads no gzip: plain {name}, "
            f"market_replay's limit raised to {limit}m in the bench's copy of the playbook"
        )
    return name, frames, ticks, note


def replay_health() -> dict[str, Any]:
    try:
        body = httpx.get(f"http://127.0.0.1:{8010 + OFFSET}/health", timeout=5).json()
        return body.get("checks", body)
    except (httpx.HTTPError, ValueError):
        return {}


def replay_sent(stack: stackwatch.Stack, started: float, hours: float, frames: int) -> int:
    """Frames the replay has sent: from its /health, or (a replay that does not report frames_sent) from
    the event clock — its first frame carries the moment the screener connected (REPLAY_REWRITE_TIME=1),
    one frame per second of event time after it."""
    sent = replay_health().get("frames_sent")
    if isinstance(sent, int):
        return sent
    newest = stackwatch.newest_tick_time(stack)
    if newest is None:
        return 0
    start_ms = started * 1000 if newest > started * 1000 - 86_400_000 else ffmarket.START_MS
    return max(0, min(frames, int((newest - start_ms) / 1000) + 1))


def replay_logs(after: float) -> list[tuple[float, str]]:
    """(epoch s, line) of the replay's log since `after`."""
    import docker

    try:
        raw = docker.from_env().api.logs(f"{PREFIX}market_replay", timestamps=True, since=int(after) - 1)
    except docker.errors.APIError:
        return []
    out = []
    for line in raw.decode(errors="replace").splitlines():
        stamp, _, text = line.partition(" ")
        with contextlib.suppress(ValueError):
            at = datetime.fromisoformat(stamp[:26] + "+00:00").timestamp()
            if at >= after:
                out.append((at, text))
    return out


def connections(after: float) -> list[float]:
    """When a client (the screener) connected to the replay since `after`. Each connection is played the
    file from its first frame, its E shifted to that moment: a second one means the screener dropped the
    feed and the market started over, with event time turned back."""
    return [at for at, text in replay_logs(after) if "client connected" in text]


def last_feed_drop() -> str:
    """The screener's last reason for losing the feed (e.g. 'connection closed (1011)': its keepalive
    ping got no pong within 20 s, the pong stuck behind the frames it had not read yet)."""
    import docker

    with contextlib.suppress(docker.errors.APIError):
        raw = docker.from_env().api.logs(f"{PREFIX}screener_ws", tail=2000).decode(errors="replace")
        drops = [ln for ln in raw.splitlines() if "feed disconnected" in ln]
        if drops:
            with contextlib.suppress(ValueError):
                return str(json.loads(drops[-1]).get("reason"))
    return ""


def run(args: argparse.Namespace) -> dict[str, Any]:
    streaming = replay_streams()
    if not streaming and args.hours > 0.5:
        raise SystemExit(
            f"--hours {args.hours:g}: the replay in this checkout (images/market_replay) loads its whole file "
            "into memory and reads no gzip; a market longer than half an hour does not fit. Use --hours 0.25 "
            "until the streaming replay (issue 23, item 2) is in, then run the full day."
        )
    remove_system(SYSTEM)
    name, frames, ticks, note = prepare(args, streaming)
    set_env(REPLAY_FILE="ffwd-rest.jsonl", REPLAY_SPEED="1", REPLAY_LOOP="0")
    t = time.monotonic()
    cdb("rebuild", "--feed", "replay")
    print(f"stack up in {time.monotonic() - t:.0f} s; resting 30 s", flush=True)
    time.sleep(30)
    stack = stackwatch.Stack(SYSTEM, PREFIX, OFFSET, env_values(ROOT), ROOT)
    log = SampleLog(stack)
    rest = log.snapshot("rest")
    set_env(REPLAY_FILE=name, REPLAY_SPEED=f"{args.speed:g}", REPLAY_LOOP="0")
    before = time.time()
    cdb("rebuild", "--feed", "replay", "--phase", "start")  # recreates the replay with the market file
    # The screener reconnects when the replay is recreated, possibly after the rebuild returned: the load
    # starts with its connection to the new replay (the last one made once one is there).
    try:
        seen = wait_until("the screener connecting to the recreated replay", lambda: connections(before), 60, 0.5)
    except AssertionError:
        raise SystemExit("the screener did not connect to the recreated replay within 60 s") from None
    started = seen[-1]
    print(f"load: {frames} frames ({args.hours:g} h of event time) at REPLAY_SPEED={args.speed:g}", flush=True)
    validations: dict[str, Any] = {}
    dropped: dict[str, Any] | None = None
    checker: threading.Thread | None = None
    deadline = time.time() + args.timeout_minutes * 60
    end = None
    next_sample = time.time() + args.every
    while time.time() < deadline:
        time.sleep(1)
        sent = replay_sent(stack, started, args.hours, frames)
        if time.time() >= next_sample:
            next_sample += args.every
            print(log.line(log.sample(started, progress=min(1.0, sent / frames))), flush=True)
            again = connections(started + 0.5)
            if again:
                dropped = {"at_wall_s": round(again[0] - started, 1), "sent": sent, "reason": last_feed_drop()}
                print(
                    f"the screener lost the feed after {dropped['at_wall_s']} s ({dropped['reason']}) and the "
                    "replay started the market over: stopping, the rest would not be the same day",
                    flush=True,
                )
                break
        if checker is None and sent >= frames / 2:
            checker = threading.Thread(
                target=lambda: validations.__setitem__("during", stackwatch.validate(ROOT)), daemon=True
            )
            checker.start()
        # Done when every frame was sent and each group is within one frame (the replay then re-sends
        # the last prices once a second) of the stream's end; checked every second from then on.
        if sent >= frames:
            groups = stackwatch.consumer_groups(stack)
            if groups and all(
                g["lag"] is not None and g["lag"] <= args.symbols and g["pending"] <= args.symbols
                for g in groups.values()
            ):
                end = time.time()
                print(log.line(log.sample(started, progress=1.0)), flush=True)
                break
    if checker is not None:
        checker.join(timeout=600)
    finished = end is not None
    end = end or time.time()
    time.sleep(3)  # the last hold frame through the pipeline, so "drained" is read at rest
    final = log.snapshot("end")
    validations["after"] = stackwatch.validate(ROOT)
    return summarize(
        args=vars(args) | {"file": name, "frames": frames, "ticks": ticks, "note": note, "streaming": streaming},
        feed_dropped=dropped,
        rest=rest,
        final=final,
        log=log,
        wall_seconds=end - started,
        finished=finished,
        validations=validations,
        env=stack.env,
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=float, default=24.0, help="event time to play (default 24)")
    ap.add_argument("--speed", type=float, default=60.0, help="REPLAY_SPEED (0 = as fast as possible)")
    ap.add_argument("--symbols", type=int, default=300)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--every", type=float, default=20.0, help="seconds between samples")
    ap.add_argument("--timeout-minutes", type=float, default=None, help="give up after (default: 3x the target)")
    ap.add_argument("--plain", action="store_true", help="write plain .jsonl even when the replay reads gzip")
    ap.add_argument("--keep", action="store_true", help="leave the stack up afterwards")
    ap.add_argument("--json", type=Path, default=None, help="write the result as JSON to this file")
    ap.add_argument("--report", type=Path, default=None, help="print the report of an earlier --json file, run nothing")
    args = ap.parse_args()
    if args.report:
        print_report(json.loads(args.report.read_text()))
        return 0
    if args.hours <= 0 or args.symbols < 2 * ffmarket.LIQUID or args.speed < 0:
        ap.error("--hours must be > 0, --symbols >= 120, --speed >= 0")
    if args.timeout_minutes is None:
        args.timeout_minutes = max(10.0, 90 * args.hours / 24)
    try:
        result = run(args)
    finally:
        if not args.keep:
            remove_system(SYSTEM)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2, default=str))
    print_report(result)
    return 0 if all(result["targets"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
