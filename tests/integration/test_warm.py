"""The warm server with the real engine: a long-running command (`status --watch`) run through it stops
on Ctrl-C exactly as without it, and a client that is killed takes its command with it — nothing keeps
running in the background but the server itself."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import make_project, quit_servers, remove_system

pytestmark = pytest.mark.integration

SYSTEM = "cdb_warm"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    remove_system(SYSTEM)
    yield make_project(tmp_path_factory.mktemp("warm"), SYSTEM, prefix="cdbh_", offset=32000)
    remove_system(SYSTEM)


@pytest.fixture
def env(tmp_path: Path, project: Path) -> Iterator[dict[str, str]]:
    run_dir = tmp_path / "run"
    run_dir.mkdir(mode=0o700)
    values = {k: v for k, v in os.environ.items() if k != "CDB_OPS_WARM"}
    values.update(XDG_RUNTIME_DIR=str(run_dir), CDB_PROJECT_DIR=str(project))
    yield values
    quit_servers(run_dir)


def _server_processes(env: dict[str, str]) -> list[int]:
    """The server and every fork of it (supervisors, workers): their command line names the socket."""
    marker = env["XDG_RUNTIME_DIR"].encode()
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"cdb_ops.cli.warm.server" in cmdline and marker in cmdline:
            found.append(int(pid))
    return found


def _start_server(env: dict[str, str]) -> None:
    subprocess.run([sys.executable, "-m", "cdb_ops", "--version"], env=env, capture_output=True, timeout=60)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        r = subprocess.run([sys.executable, "-m", "cdb_ops", "warm", "status"], env={**env, "CDB_OPS_WARM": "0"},
                           capture_output=True, text=True, timeout=60)  # fmt: skip
        if "still runs" in r.stdout:
            return
        time.sleep(0.2)
    raise AssertionError("the warm server did not come up")


def _watch(env: dict[str, str]) -> subprocess.Popen[bytes]:
    """`status --watch`, once its first table is out."""
    proc = subprocess.Popen([sys.executable, "-m", "cdb_ops", "status", "--watch", "--interval", "0.5"], env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    assert proc.stdout is not None
    os.set_blocking(proc.stdout.fileno(), False)
    deadline = time.monotonic() + 60
    seen = b""
    while b"memory total" not in seen:
        assert time.monotonic() < deadline and proc.poll() is None, "status --watch printed no table"
        seen += proc.stdout.read() or b""
        time.sleep(0.1)
    return proc


def _gone(env: dict[str, str], timeout: float = 10) -> list[int]:
    deadline = time.monotonic() + timeout
    while len(left := _server_processes(env)) > 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def test_ctrl_c_stops_the_command_as_without_the_server(env: dict[str, str]) -> None:
    cold = _watch({**env, "CDB_OPS_WARM": "0"})
    cold.send_signal(signal.SIGINT)
    cold_rc = cold.wait(timeout=30)
    _start_server(env)
    assert len(_server_processes(env)) == 1
    warm = _watch(env)
    assert len(_server_processes(env)) == 3  # the server, the supervisor, the command
    warm.send_signal(signal.SIGINT)
    assert warm.wait(timeout=30) == cold_rc == 0
    assert len(_gone(env)) == 1


def test_a_killed_client_takes_its_command_with_it(env: dict[str, str]) -> None:
    _start_server(env)
    warm = _watch(env)
    warm.kill()
    warm.wait(timeout=30)
    assert len(_gone(env)) == 1
