"""The warm server (cdb_ops/cli/warm): a command run through it prints, exits and reads its environment
exactly as without it; a stale or unsafe server is never used. Real processes, no Docker: each test has
its own runtime directory, so its server is its own."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import cdb_ops
from tests.helpers import quit_servers


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[dict[str, str]]:
    run_dir = tmp_path / "run"
    run_dir.mkdir(mode=0o700)
    env = {k: v for k, v in os.environ.items() if k not in ("CDB_OPS_WARM", "CDB_PROJECT_DIR")}
    env["XDG_RUNTIME_DIR"] = str(run_dir)
    yield env
    quit_servers(run_dir)


def cli(args: list[str], env: dict[str, str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cdb_ops", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def server(env: dict[str, str], timeout: float = 60) -> dict[str, object]:
    """Start the server (any command does) and wait until it answers; its `warm status` facts."""
    cli(["--version"], env)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        facts = served(env)
        if facts is not None:
            return facts
        time.sleep(0.2)
    raise AssertionError("the warm server did not come up")


def served(env: dict[str, str]) -> dict[str, object] | None:
    code = "import json; from cdb_ops.cli.warm import control; print(json.dumps(control.info()))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=30)
    import json

    found: dict[str, object] | None = json.loads(out.stdout)
    return found


@pytest.fixture
def bad_project(project_dir: Path) -> Path:
    """A project whose .env has a bad line 2 (plan stops there, before any engine call)."""
    lines = (project_dir / ".env").read_text().splitlines()
    lines.insert(1, "this line is no setting")
    (project_dir / ".env").write_text("\n".join(lines) + "\n")
    return project_dir


def test_commands_through_the_server_print_and_exit_as_without_it(
    runtime: dict[str, str], bad_project: Path, tmp_path: Path
) -> None:
    project = bad_project
    before = server(runtime)
    cases = [["--version"], ["no-such-command"], ["plan", "--project-dir", str(project)], ["warm", "--help"]]
    cold_env = {**runtime, "CDB_OPS_WARM": "0"}
    for args in cases:
        warm, cold = cli(args, runtime), cli(args, cold_env)
        assert (warm.returncode, warm.stdout, warm.stderr) == (cold.returncode, cold.stdout, cold.stderr), args
    after = served(runtime)
    assert after is not None and after["pid"] == before["pid"]
    assert int(after["commands_served"]) - int(before["commands_served"]) == len(cases)  # type: ignore[call-overload]
    # the bad .env is named with its line, exit 3, through the server as without it
    r = cli(["plan", "--project-dir", str(project)], runtime)
    assert r.returncode == 3 and f"{project / '.env'}:2" in r.stderr


def test_the_command_gets_the_clients_environment_and_directory(runtime: dict[str, str], bad_project: Path) -> None:
    project = bad_project
    server(runtime)
    # found through the working directory, then through CDB_PROJECT_DIR from the environment
    r = cli(["plan"], runtime, cwd=project)
    assert r.returncode == 3 and str(project / ".env") in r.stderr
    r = cli(["plan"], {**runtime, "CDB_PROJECT_DIR": str(project)}, cwd=Path("/"))
    assert r.returncode == 3 and str(project / ".env") in r.stderr


def _on_terminal(args: list[str], env: dict[str, str], cwd: Path) -> tuple[int, bytes]:
    """Run with stdin/stdout/stderr on a pseudo-terminal: what a user at a terminal sees."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "cdb_ops", *args], env={**env, "COLUMNS": "100", "TERM": "xterm-256color"},
        cwd=cwd, stdin=follower, stdout=follower, stderr=follower,
    )  # fmt: skip
    os.close(follower)
    out = b""
    while True:
        ready, _, _ = select.select([leader], [], [], 60)
        if not ready:
            proc.kill()
            raise AssertionError("no output within 60 s")
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: every writer closed its end
            break
        if not chunk:
            break
        out += chunk
    os.close(leader)
    return proc.wait(timeout=60), out


def test_a_terminal_stays_a_terminal(runtime: dict[str, str], bad_project: Path) -> None:
    project = bad_project
    server(runtime)
    rc_warm, warm = _on_terminal(["plan"], runtime, project)
    rc_cold, cold = _on_terminal(["plan"], {**runtime, "CDB_OPS_WARM": "0"}, project)
    assert rc_warm == rc_cold == 3
    assert b"\x1b[" in warm  # styled, because the command saw a terminal
    assert warm == cold


def test_a_changed_source_file_retires_the_server(runtime: dict[str, str]) -> None:
    first = server(runtime)
    source = Path(cdb_ops.__file__).parent / "cli" / "warm" / "protocol.py"
    st = source.stat()
    try:
        os.utime(source, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
        r = cli(["--version"], runtime)  # answered here; the stale server quits and a fresh one starts
        assert r.returncode == 0 and r.stdout.strip() == f"cdb-ops {cdb_ops.__version__}"
        deadline = time.monotonic() + 60
        facts = served(runtime)
        while (facts is None or facts["pid"] == first["pid"]) and time.monotonic() < deadline:
            time.sleep(0.2)
            facts = served(runtime)
        assert facts is not None and facts["pid"] != first["pid"]
    finally:
        os.utime(source, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_off_switch_and_shared_directories_mean_no_server(runtime: dict[str, str], tmp_path: Path) -> None:
    off = cli(["--version"], {**runtime, "CDB_OPS_WARM": "0"})
    assert off.returncode == 0
    time.sleep(1)
    assert not list(Path(runtime["XDG_RUNTIME_DIR"]).rglob("*.sock"))
    # a runtime directory others may write to: never used for a socket that is handed our terminal
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / f"cdb-ops-{os.getuid()}").mkdir(mode=0o777)
    os.chmod(shared / f"cdb-ops-{os.getuid()}", 0o777)
    env = {**runtime, "XDG_RUNTIME_DIR": str(shared)}
    r = cli(["--version"], env)
    assert r.returncode == 0
    time.sleep(1)
    assert not list(shared.rglob("*.sock"))
    assert served(env) is None


def test_warm_start_status_and_stop(runtime: dict[str, str]) -> None:
    r = cli(["warm", "start"], runtime)  # starts one and waits until it answers
    assert r.returncode == 0 and "running — pid" in r.stdout, r.stdout + r.stderr
    facts = served(runtime)
    assert facts is not None and f"pid {facts['pid']}," in r.stdout
    r = cli(["warm", "status"], runtime)
    assert r.returncode == 0 and f"running — pid {facts['pid']}" in r.stdout
    r = cli(["warm", "stop"], {**runtime, "CDB_OPS_WARM": "0"})
    assert r.returncode == 0 and f"stopped pid {facts['pid']}" in r.stdout
    assert served(runtime) is None
    r = cli(["warm", "status"], {**runtime, "CDB_OPS_WARM": "0"})
    assert "off" in r.stdout and "still runs" not in r.stdout
    r = cli(["warm", "start"], {**runtime, "CDB_OPS_WARM": "0"})
    assert r.returncode == 2 and "CDB_OPS_WARM" in r.stderr
