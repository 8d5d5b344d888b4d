"""The quick `status` path: the outline cache (keyed by every input file), its argument parser, and
the plain-socket HTTP reader — each against real files and a real Unix socket, no engine."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path

import pytest

from cdb_ops.cli.status_plain import _parse, quick_status
from cdb_ops.engine.cgroups import CgroupSample, load_samples, save_samples
from cdb_ops.engine.socket_reader import MIN_CPU_WINDOW, _dechunk, _http_many, http_get
from cdb_ops.load.envfile import parse_env_file
from cdb_ops.load.outline import OutlineService, StackOutline, load_outline, outline_key, save_outline
from cdb_ops.load.project import find_project

OUTLINE = StackOutline("cdb.system=x", (OutlineService("db", "x_db", "database", "critical"),), ("DB_PASSWORD",))


def test_outline_round_trips_and_any_input_change_is_a_miss(project_dir: Path) -> None:
    project = find_project(project_dir)
    key = outline_key(project, "rebuild", None)
    assert load_outline(project, "rebuild", None) is None
    save_outline(project, "rebuild", None, OUTLINE)
    assert load_outline(project, "rebuild", None) == OUTLINE
    cached = (project.state_dir / "outline.json").read_text()
    assert all(e.value not in cached for k, e in parse_env_file(project.env_file).items() if "PASSWORD" in k)
    assert outline_key(project, "rebuild", ["monitoring"]) != key
    assert load_outline(project, "rebuild", ["monitoring"]) is None
    assert load_outline(project, "down", None) is None  # another playbook's outline is another file
    save_outline(project, "down", None, OUTLINE)
    assert load_outline(project, "down", None) == OUTLINE == load_outline(project, "rebuild", None)
    for f in (project.stack_file, project.env_file):
        before = f.read_text()
        f.write_text(before + "\n# edited\n")
        assert load_outline(project, "rebuild", None) is None, f
        assert load_outline(project, "down", None) is None, f
        f.write_text(before)
    assert outline_key(project, "rebuild", None) == key
    project.env_file.chmod(project.env_file.stat().st_mode ^ 0o044)  # readable by others or not: a warning
    assert outline_key(project, "rebuild", None) != key
    (project.schema_dir / "001_x.sql").write_text("select 1;\n")
    assert outline_key(project, "rebuild", None) != key
    save_outline(project, "down", None, OUTLINE)  # an input changed: the same file is rewritten
    assert len(list(project.state_dir.glob("outline*.json"))) == 2


def test_only_plain_status_arguments_take_the_quick_path() -> None:
    assert _parse([]) == (False, None, None)
    assert _parse(["--json", "--project-dir", "/p", "--profile=a", "--profile", "b"]) == (
        True,
        Path("/p"),
        ["a", "b"],
    )
    for args in (["--watch"], ["--help"], ["--profile"], ["--profile", "--json"], ["--project-dir="], ["x"]):
        assert _parse(args) is None, args


def test_without_a_cached_outline_the_full_command_runs(project_dir: Path) -> None:
    assert quick_status(["--project-dir", str(project_dir)]) is None
    assert quick_status(["--interval", "1"]) is None


def test_chunked_bodies_are_joined() -> None:
    assert _dechunk(b"3\r\nabc\r\n2;x=1\r\nde\r\n0\r\n\r\n") == b"abcde"


def test_http_get_over_a_unix_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "s.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    seen: list[bytes] = []

    def answer() -> None:
        conn, _ = server.accept()
        with conn:
            seen.append(conn.recv(4096))
            body = json.dumps([{"Id": "a"}]).encode()
            conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            conn.sendall(b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))

    t = threading.Thread(target=answer)
    t.start()
    status, body = http_get(path, "/containers/json?all=1", 5.0)
    t.join()
    server.close()
    assert status == 200 and json.loads(body) == [{"Id": "a"}]
    assert seen[0].startswith(b"GET /containers/json?all=1 HTTP/1.1\r\n")


def test_several_gets_are_in_flight_at_once_and_come_back_in_order(tmp_path: Path) -> None:
    """The inspects of `status` go out together: the server sees every request before it answers any,
    answers them in reverse order (one slowly, in pieces), and each reply is matched to its URL."""
    path = str(tmp_path / "s.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(8)
    urls = [f"/containers/c{i}/json" for i in range(5)]

    def answer() -> None:
        conns = [server.accept()[0] for _ in urls]  # all five connected and asked before any reply
        asked = {c.recv(4096).split()[1].decode(): c for c in conns}
        for url in reversed(urls):
            conn = asked[url]
            body = json.dumps({"url": url}).encode()
            status = b"404 Not Found" if url.endswith("c3/json") else b"200 OK"
            conn.sendall(b"HTTP/1.1 " + status + b"\r\nContent-Length: %d\r\n\r\n" % len(body))
            for i in range(0, len(body), 7):
                conn.sendall(body[i : i + 7])
            conn.close()

    t = threading.Thread(target=answer)
    t.start()
    replies = _http_many(path, urls, 5.0)
    t.join()
    server.close()
    assert [status for status, _ in replies] == [200, 200, 200, 404, 200]
    assert [json.loads(body)["url"] for _, body in replies] == urls


def test_an_engine_that_does_not_answer_times_out(tmp_path: Path) -> None:
    path = str(tmp_path / "s.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    with pytest.raises(TimeoutError):
        _http_many(path, ["/containers/json"], 0.2)
    server.close()


class _Cgroups:
    """What `cgroup_sample` reads, per container id, scripted: (monotonic time, cpu ns) per call."""

    def __init__(self, readings: dict[str, list[tuple[float, int]]]) -> None:
        self.readings = readings

    def __call__(self, cid: str) -> CgroupSample | None:
        at, cpu_ns = self.readings[cid].pop(0)
        return CgroupSample(at, 100 * 2**20, 0, cpu_ns)


def _reader(monkeypatch, readings, earlier):
    from cdb_ops.engine import socket_reader

    sleeps: list[float] = []
    monkeypatch.setattr(socket_reader, "cgroup_sample", _Cgroups(readings))
    monkeypatch.setattr(socket_reader.time, "sleep", sleeps.append)
    monkeypatch.setattr(socket_reader.time, "monotonic", lambda: 1000.0)
    reader = socket_reader.SocketReader("/nonexistent.sock", earlier=earlier)
    reader._first_at = 1000.0
    return reader, sleeps


def test_a_recent_reading_of_an_earlier_status_starts_the_cpu_window_without_waiting(monkeypatch) -> None:
    earlier = {"a": CgroupSample(998.0, 0, 0, 1_000_000_000)}  # 2 s before, 1 s of CPU since
    reader, sleeps = _reader(monkeypatch, {"a": [(1000.0, 2_000_000_000)]}, earlier)
    stats = reader.stats_many(["a"])
    assert sleeps == [] and stats["a"].cpu_percent == 50.0
    assert reader.latest["a"].cpu_ns == 2_000_000_000  # what the next status starts from


@pytest.mark.parametrize(
    "earlier",
    [
        {},  # no earlier status
        {"a": CgroupSample(980.0, 0, 0, 1_000_000_000)},  # 20 s old: not "now" any more
        {"a": CgroupSample(999.99, 0, 0, 1_000_000_000)},  # 10 ms old: too short a window
        {"a": CgroupSample(998.0, 0, 0, 9_000_000_000)},  # counter went back: the container restarted
    ],
)
def test_without_a_usable_earlier_reading_status_measures_its_own_window(monkeypatch, earlier) -> None:
    reader, sleeps = _reader(monkeypatch, {"a": [(1000.0, 2_000_000_000), (1000.05, 2_010_000_000)]}, earlier)
    stats = reader.stats_many(["a"])
    assert sleeps and sleeps[0] == pytest.approx(MIN_CPU_WINDOW)
    assert stats["a"].cpu_percent == pytest.approx(20.0)


def test_readings_round_trip_through_the_state_file(tmp_path: Path) -> None:
    path = tmp_path / "cpu-samples.json"
    assert load_samples(path) == {}
    save_samples(path, {"a": CgroupSample(1.5, 2, 3, 4)})
    assert load_samples(path) == {"a": CgroupSample(1.5, 2, 3, 4)}
    path.write_text("not json")
    assert load_samples(path) == {}
