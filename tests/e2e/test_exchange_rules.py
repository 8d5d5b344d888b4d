"""The exchange's connection rules on the real engine (issue 23, items 2 and 7), on a stack of our own.

The stack is a renamed copy (`cdbe_*`, ports +10700, system `cdb_xchg`) with the replay feed in market
mode (one shared playback, as the exchange's stream: a new connection joins the running market) at
speed 10, playing a file of three symbols with a frame every second of event time. The replay enforces
the exchange's rules with short settings (ping every 1 s, pong within 3 s) and injects its faults through
POST /control. What is proven:

* the screener answers the server's pings (echoing the payload): its connection outlives the pong
  deadline many times over; a client that does not answer is dropped (close 1008) right after it;
* after `serverShutdown`, an abrupt close and a silent connection the screener streams again within 5 s
  (the silence: within FEED_SILENCE_SECONDS + 5 s), no tick reaches cdb:ticks twice, and the holes in
  cdb:ticks are exactly the gaps the screener reports in /health (and counts in /metrics);
* with the exchange's 24 h limit made 8 s and the screener rotating at 5 s, every rotation opens the new
  connection first and no frame is missed: cdb:ticks holds every second of event time once, and the
  exchange never had to cut a connection off;
* a gzip recording of 300 MB (uncompressed) plays through a replay container within its 128 MiB limit.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import struct
import time
from collections import Counter
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest
import redis

from tests.e2e.test_faults import _converge, _metric, _wait
from tests.e2e.wsclient import CLOSE, WsClient
from tests.helpers import STACKS, env_values, make_project, remove_system

pytestmark = pytest.mark.e2e

STACK = STACKS["exchange"]
SYSTEM, PREFIX, OFFSET = STACK.system, STACK.prefix, STACK.offset
REDIS_PORT, SCREENER_PORT, REPLAY_PORT = 6379 + OFFSET, 8000 + OFFSET, 8010 + OFFSET
BIG_PORT = REPLAY_PORT + 1  # the big-gzip replay container of the last test
SYMBOLS = ("XCHAUSDT", "XCHBUSDT", "XCHCUSDT")
T0 = 1_736_553_600_000
FRAMES = 36_000  # an hour of event time: at speed 10 the playback never loops during the module
SILENCE = 2  # FEED_SILENCE_SECONDS
RULES = {
    "REPLAY_FILE": "xchg.jsonl",
    "REPLAY_SPEED": "10",
    "REPLAY_LOOP": "1",
    "REPLAY_MODE": "market",
    "REPLAY_PING_SECONDS": "1",
    "REPLAY_PONG_TIMEOUT_SECONDS": "3",
    "FEED_SILENCE_SECONDS": str(SILENCE),
}


def _write_replays(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o755)  # the replay runs as a non-root user
    item = '{"e":"24hrMiniTicker","E":%d,"s":"%s","c":"10.0","o":"10.0","h":"10.0","l":"10.0","v":"1e5","q":"1e6"}'
    with open(folder / "xchg.jsonl", "w") as out:
        for second in range(FRAMES):
            out.write("[" + ",".join(item % (T0 + second * 1000, s) for s in SYMBOLS) + "]\n")
    (folder / "xchg.jsonl").chmod(0o644)


def _set_env(project: Path, **values: str) -> None:
    path = project / ".env"
    lines = [ln for ln in path.read_text().splitlines() if ln.split("=", 1)[0] not in values]
    path.write_text("\n".join([*lines, *(f"{k}={v}" for k, v in values.items())]) + "\n")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory):
    remove_system(SYSTEM)
    root = tmp_path_factory.mktemp("xchg")
    _write_replays(root / "replays")  # the project's own replays/ (make_project links the repo's otherwise)
    make_project(root, SYSTEM, prefix=PREFIX, offset=OFFSET)
    _set_env(root, **RULES)
    _converge(root)
    yield root
    remove_system(SYSTEM)


# -- access ------------------------------------------------------------------------------------------


def _screener() -> dict[str, Any]:
    return httpx.get(f"http://127.0.0.1:{SCREENER_PORT}/health", timeout=5).json()["checks"]


def _replay() -> dict[str, Any]:
    return httpx.get(f"http://127.0.0.1:{REPLAY_PORT}/health", timeout=5).json()["checks"]


def _control(action: str, seconds: float = 0) -> dict[str, Any]:
    body = {"action": action, "seconds": seconds}
    response = httpx.post(f"http://127.0.0.1:{REPLAY_PORT}/control", json=body, timeout=5)
    assert response.status_code == 200, response.text
    return response.json()


def _redis(project: Path) -> redis.Redis:
    password = env_values(project)["REDIS_PASSWORD"]
    return redis.Redis(host="127.0.0.1", port=REDIS_PORT, password=password, decode_responses=True, socket_timeout=10)


def _ticks_since(project: Path, since_ms: int) -> dict[str, list[int]]:
    """Per symbol, the event times of the ticks added to cdb:ticks since `since_ms` (wall clock), in order."""
    out: dict[str, list[int]] = {s: [] for s in SYMBOLS}
    for _id, fields in _redis(project).xrange("cdb:ticks", min=f"{since_ms}-0", max="+"):
        tick = json.loads(fields["data"])
        if tick["symbol"] in out:
            out[tick["symbol"]].append(int(tick["tick_time"]))
    return out


def _holes_seconds(times: list[int]) -> float:
    """Event time missing between consecutive ticks of a symbol (frames are 1 s apart)."""
    ordered = sorted(times)
    return sum(max(0, b - a - 1000) for a, b in zip(ordered, ordered[1:], strict=False)) / 1000


def _assert_once_each(ticks: dict[str, list[int]]) -> None:
    for symbol, times in ticks.items():
        doubled = {t: n for t, n in Counter(times).items() if n > 1}
        assert times and not doubled, f"{symbol}: {len(times)} ticks, published twice: {list(doubled)[:5]}"


def _streaming_again(before: int, started: float, limit: float) -> float:
    """Seconds from `started` until the screener streams on a connection newer than `before`."""

    def back() -> float | None:
        facts = _screener()
        age = facts["last_frame_age_seconds"]
        if (facts["feed_connection"] or 0) > before and age is not None and age < 0.5:
            return time.monotonic() - started
        return None

    return _wait("the screener streaming on a new connection", back, timeout=limit + 10, every=0.1)


# -- the rules ---------------------------------------------------------------------------------------


def test_the_screener_answers_pings_and_a_client_that_does_not_is_dropped(project):
    def settled() -> dict[str, Any] | None:
        conns = _replay()["connections"]
        return conns[0] if len(conns) == 1 and conns[0]["age_seconds"] > 10 else None

    screener_conn = _wait("the screener's connection to outlive the 3 s pong deadline", settled, 60)
    assert screener_conn["unanswered_pings"] <= 1, screener_conn  # every ping echoed (one may be in flight)
    metrics = httpx.get(f"http://127.0.0.1:{REPLAY_PORT}/metrics", timeout=5).text
    assert _metric(metrics, "cdb_replay_disconnects_total", reason="pong timeout") == 0

    client = WsClient("127.0.0.1", REPLAY_PORT, answer_pings=False)
    opened = time.monotonic()
    try:
        while (message := client.recv()).opcode != CLOSE:
            pass
    finally:
        client.close()
    took = time.monotonic() - opened
    (code,) = struct.unpack("!H", message.payload[:2])
    assert code == 1008 and b"pong" in message.payload, message.payload
    assert 3 < took < 1 + 3 + 3, f"dropped after {took:.1f} s (ping every 1 s, pong within 3 s)"
    assert client.pings and all(payload.isdigit() for _at, payload in client.pings), client.pings[:3]
    print(f"\nno pong: dropped after {took:.1f} s; the screener's connection: {screener_conn}")


@pytest.mark.parametrize(
    ("action", "seconds", "cause", "limit"),
    [
        ("shutdown", 0, "server_shutdown", 5.0),
        ("close", 0, "closed", 5.0),
        ("silence", 30, "silence", SILENCE + 5.0),
    ],
)
def test_after_each_fault_the_screener_streams_within_5_s_once_each_and_reports_the_gap(
    project, action, seconds, cause, limit
):
    since = int(time.time() * 1000)
    before = _screener()
    _wait("a frame or two", lambda: _ticks_since(project, since)[SYMBOLS[0]], 20)
    started = time.monotonic()
    answer = _control(action, seconds)
    assert answer["connections"] >= 1, answer
    took = _streaming_again(before["feed_connection"], started, limit)
    time.sleep(2)  # some frames on the new connection
    after = _screener()
    gaps = after["feed_gaps"]
    assert gaps["count"] == before["feed_gaps"]["count"] + 1, gaps  # one replacement, one gap reported
    new = gaps["recent"][-1:]
    assert [g["cause"] for g in new] == [cause], new
    missed = new[0]["seconds"]
    if cause == "server_shutdown":
        assert missed == 0, new  # the new connection was opened while the old one still streamed
    if cause == "silence":
        assert missed >= SILENCE * 10 - 1, new  # at speed 10: 2 s of silence is 20 s of frames
    ticks = _ticks_since(project, since)
    _assert_once_each(ticks)
    holes = {s: _holes_seconds(t) for s, t in ticks.items()}
    assert all(abs(h - missed) < 0.001 for h in holes.values()), (holes, new)
    metrics = httpx.get(f"http://127.0.0.1:{SCREENER_PORT}/metrics", timeout=5).text
    assert _metric(metrics, "cdb_feed_gaps_total", cause=cause) >= 1
    assert _metric(metrics, "cdb_feed_gap_seconds_total", cause=cause) >= missed
    assert took <= limit, f"{action}: streaming again after {took:.1f} s"
    print(f"\n{action}: streaming again after {took:.2f} s, {missed:g} s of frames missed (= the holes)")


def test_a_planned_rotation_opens_the_new_connection_first_and_misses_no_frame(project):
    """The exchange's 24 h limit made 8 s, the screener's rotation 5 s: connections are replaced every
    5 s, each by make-before-break, and cdb:ticks holds every second of event time exactly once."""
    _set_env(project, REPLAY_MAX_CONNECTION_SECONDS="8", FEED_ROTATE_SECONDS="5")
    try:
        _converge(project)
        since = int(time.time() * 1000)
        start = _screener()
        _wait("three rotations", lambda: _screener()["feed_rotations"] >= start["feed_rotations"] + 3, 60)
        facts = _screener()
        replay_metrics = httpx.get(f"http://127.0.0.1:{REPLAY_PORT}/metrics", timeout=5).text
        ticks = _ticks_since(project, since)
    finally:
        _set_env(project, REPLAY_MAX_CONNECTION_SECONDS="86400", FEED_ROTATE_SECONDS="85800")
    _assert_once_each(ticks)
    assert all(_holes_seconds(t) == 0 for t in ticks.values()), {s: _holes_seconds(t) for s, t in ticks.items()}
    rotations = [g for g in facts["feed_gaps"]["recent"] if g["cause"] == "rotation"]
    assert len(rotations) >= 3 and all(g["seconds"] == 0 for g in rotations), facts["feed_gaps"]
    assert _metric(replay_metrics, "cdb_replay_disconnects_total", reason="max age") == 0  # never cut off
    assert facts["duplicate_ticks_dropped"] > 0  # the overlaps did deliver ticks twice, published once
    span = (max(ticks[SYMBOLS[0]]) - min(ticks[SYMBOLS[0]])) / 1000 + 1
    print(f"\nrotations: {facts['feed_rotations']}, {span:.0f} s of event time, every frame once; "
          f"{facts['duplicate_ticks_dropped']} overlap ticks dropped")  # fmt: skip


# -- a big recording -----------------------------------------------------------------------------------


BIG_UNCOMPRESSED = 300 * 1024 * 1024
MEMORY_LIMIT = 128 * 1024 * 1024


def _write_big_gzip(path: Path) -> int:
    """300 MB of 300-pair frames (a day of the live feed is several GB), gzip-compressed; returns frames."""
    item = '{"e":"24hrMiniTicker","E":%d,"s":"SYN%04dUSDT","c":"%d.%04d","o":"1.0","h":"9.9","l":"0.1","v":"1","q":"1"}'
    frames = written = 0
    with gzip.open(path, "wt", compresslevel=1) as out:
        while written < BIG_UNCOMPRESSED:
            event_time = T0 + frames * 1000
            line = "[" + ",".join(item % (event_time, i, i, frames % 10_000) for i in range(300)) + "]\n"
            out.write(line)
            written += len(line)
            frames += 1
    path.chmod(0o644)
    return frames


def test_a_big_gzip_recording_plays_within_the_replays_memory_limit(project, tmp_path):
    folder = tmp_path / "big"
    folder.mkdir()
    folder.chmod(0o755)
    frames = _write_big_gzip(folder / "day.jsonl.gz")
    client = docker.from_env()
    name = PREFIX + "bigreplay"
    with contextlib.suppress(docker.errors.NotFound):
        client.containers.get(name).remove(force=True)
    container = client.containers.run(
        f"{PREFIX}market_replay:latest",
        name=name,
        detach=True,
        network=f"{PREFIX}network",
        environment={"HTTP_PORT": "8010", "REPLAY_DIR": "/replays", "REPLAY_FILE": "day.jsonl.gz", "REPLAY_SPEED": "0"},
        volumes={str(folder): {"bind": "/replays", "mode": "ro"}},
        ports={"8010/tcp": ("127.0.0.1", BIG_PORT)},
        mem_limit=MEMORY_LIMIT,
        memswap_limit=MEMORY_LIMIT,  # no swap to hide in
        labels={"cdb.system": SYSTEM},
    )
    usage: list[int] = []
    try:
        _wait("the big replay's health", lambda: httpx.get(f"http://127.0.0.1:{BIG_PORT}/health", timeout=2), 60)
        reader = WsClient("127.0.0.1", BIG_PORT, timeout=120)
        received = 0
        started = time.monotonic()
        try:
            while received < frames:
                message = reader.recv()
                assert message.opcode != CLOSE, f"closed after {received} of {frames} frames"
                received += 1
                if received % 1000 == 0:
                    usage.append(container.stats(stream=False)["memory_stats"]["usage"])
        finally:
            reader.close()
        took = time.monotonic() - started
        container.reload()
        state = container.attrs["State"]
        facts = httpx.get(f"http://127.0.0.1:{BIG_PORT}/health", timeout=5).json()["checks"]
    finally:
        with contextlib.suppress(docker.errors.NotFound):
            client.containers.get(name).remove(force=True)
    assert received == frames
    assert state["Status"] == "running" and not state["OOMKilled"] and container.attrs["RestartCount"] == 0, state
    assert facts["gzip"] is True and facts["source_bytes"] < BIG_UNCOMPRESSED
    peak = max(usage) / 2**20
    assert peak < 96, f"replay memory (MiB) while streaming: {[round(u / 2**20) for u in usage]}"
    print(f"\nbig gzip: {BIG_UNCOMPRESSED / 2**20:.0f} MiB ({facts['source_bytes'] / 2**20:.0f} MiB gzip), "
          f"{frames} frames in {took:.0f} s, replay memory peak {peak:.1f} MiB of 128 MiB")  # fmt: skip
