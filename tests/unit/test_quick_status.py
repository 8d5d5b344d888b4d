"""The quick `status` path: the outline cache (keyed by every input file), its argument parser, and
the plain-socket HTTP reader — each against real files and a real Unix socket, no engine."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path

from cdb_ops.cli.quick import _parse, quick_status
from cdb_ops.engine.lean import _dechunk, _http_get
from cdb_ops.load.outline import OutlineService, StackOutline, load_outline, outline_key, save_outline
from cdb_ops.load.project import find_project
from cdb_ops.load.settings import parse_env_file

OUTLINE = StackOutline("cdb.system=x", (OutlineService("db", "x_db", "database", "critical"),), ("DB_PASSWORD",))


def test_outline_round_trips_and_any_input_change_is_a_miss(project_dir: Path) -> None:
    project = find_project(project_dir)
    key = outline_key(project, "rebuild", None)
    assert load_outline(project, key) is None
    save_outline(project, key, OUTLINE)
    assert load_outline(project, key) == OUTLINE
    cached = (project.state_dir / "outline.json").read_text()
    assert all(e.value not in cached for k, e in parse_env_file(project.env_file).items() if "PASSWORD" in k)
    assert outline_key(project, "rebuild", ["monitoring"]) != key
    for f in (project.stack_file, project.env_file):
        before = f.read_text()
        f.write_text(before + "\n# edited\n")
        assert load_outline(project, outline_key(project, "rebuild", None)) is None, f
        f.write_text(before)
    assert outline_key(project, "rebuild", None) == key
    project.env_file.chmod(project.env_file.stat().st_mode ^ 0o044)  # readable by others or not: a warning
    assert outline_key(project, "rebuild", None) != key
    (project.schema_dir / "001_x.sql").write_text("select 1;\n")
    assert outline_key(project, "rebuild", None) != key


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
    status, body = _http_get(path, "/containers/json?all=1", 5.0)
    t.join()
    server.close()
    assert status == 200 and json.loads(body) == [{"Id": "a"}]
    assert seen[0].startswith(b"GET /containers/json?all=1 HTTP/1.1\r\n")
