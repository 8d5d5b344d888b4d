"""One process per command: nothing a `cdb-ops` command starts outlives it — no server kept warm in the
background, whatever the command (help, version, a read, a refused run, an unknown one). Real processes:
every process on the machine is searched for a marker only these commands' environment carries."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def carrying(marker: str) -> list[int]:
    """The pids of every process whose environment holds `marker` (a daemon inherits its starter's)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes()
        except OSError:
            continue  # gone meanwhile, or not ours to read
        if marker.encode() in environ:
            found.append(int(entry))
    return found


def test_no_command_leaves_a_process_behind(tmp_path: Path):
    marker = f"cdb-no-daemon-{uuid.uuid4().hex}"
    env = {
        **os.environ,
        "CDB_TEST_MARKER": marker,
        "DOCKER_HOST": "unix:///nonexistent/docker.sock",
        "XDG_RUNTIME_DIR": str(tmp_path),  # where a background server would put its socket
    }
    env.pop("CDB_PROJECT_DIR", None)
    env.pop("CDB_OPS_WARM", None)  # the old switch: whatever it says, nothing may stay
    project = tmp_path / "project"
    project.mkdir()
    for args in (
        ["--help"],
        ["--version"],
        ["status"],
        ["status", "--json"],
        ["portfolio"],
        ["plan"],
        ["warm", "status"],
        ["warm", "stop"],
        ["no-such-command"],
    ):
        r = subprocess.run(
            [sys.executable, "-m", "cdb_ops", *args],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        assert r.returncode in (0, 2, 3), (args, r.returncode, r.stderr)
    deadline = time.monotonic() + 1.0  # a process started in the background is running by now
    while time.monotonic() < deadline:
        assert carrying(marker) == []
        time.sleep(0.1)
    assert not list(tmp_path.glob("cdb-ops-*")), "a runtime directory for a server was made"


def test_the_marker_search_finds_a_process_that_stays(tmp_path: Path):
    """The search itself works: a process left running with the marker is found (and then stopped)."""
    marker = f"cdb-no-daemon-{uuid.uuid4().hex}"
    stray = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(30)"],
        env={**os.environ, "CDB_TEST_MARKER": marker},
        start_new_session=True,
    )
    try:
        # (right after the exec the kernel may still show the process without its environment: look again)
        deadline = time.monotonic() + 5.0
        while carrying(marker) != [stray.pid] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert carrying(marker) == [stray.pid]
    finally:
        stray.kill()
        stray.wait()
    assert carrying(marker) == []
