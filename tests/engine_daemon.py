"""The Docker daemon behind DOCKER_HOST, found by the socket it listens on, and restarted the way a host
reboot restarts it: its own shutdown (SIGTERM, or `systemctl stop` for a systemd unit), then a start with
the same command line, environment, working directory and log files.

Found by socket, never as "the first dockerd": a machine may run several (CI has one; a developer may run
a second one for tests, as the daemon-restart test's own development did), and only the one DOCKER_HOST
names may be restarted.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import docker

from tests.helpers import wait_until

DEFAULT_SOCKET = "/var/run/docker.sock"
# __SO_ACCEPTCON in /proc/net/unix's Flags column: the socket listens (accepted connections lack it)
_LISTENING = 0x10000


class CannotRestart(Exception):
    """This engine cannot be restarted from here (remote, not root, not found); the message says why."""


@dataclass(frozen=True)
class Daemon:
    pid: int
    socket: str
    argv: tuple[str, ...]
    env: dict[str, str]
    cwd: str
    exe: str
    stdout: str  # where fd 1 pointed: a file path (appended to again) or /dev/null
    stderr: str
    unit: str | None  # the systemd unit that runs it, if any

    def describe(self) -> str:
        how = f"systemd unit {self.unit}" if self.unit else f"pid {self.pid}, logs to {self.stderr}"
        return f"{' '.join(self.argv)} ({how}, socket {self.socket})"


def socket_path(docker_host: str | None = None) -> str:
    """The Unix socket DOCKER_HOST names (docker-py's default when unset); a remote engine cannot be restarted."""
    host = os.environ.get("DOCKER_HOST", "") if docker_host is None else docker_host
    if not host:
        return DEFAULT_SOCKET
    if host.startswith("unix://"):
        return host[len("unix://") :]
    raise CannotRestart(f"DOCKER_HOST={host} is not a local Unix socket: a remote engine cannot be restarted from here")


def _listening_inodes(socket: str) -> set[str]:
    """Inodes of the listening Unix sockets bound to `socket` (compared after resolving /var/run -> /run)."""
    want = os.path.realpath(socket)
    inodes = set()
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 8 and int(fields[3], 16) & _LISTENING and os.path.realpath(fields[7]) == want:
            inodes.add(fields[6])
    return inodes


def _holders(inodes: set[str]) -> list[int]:
    """Pids of the dockerd processes holding one of `inodes` open (systemd's socket activation holds it too)."""
    targets = {f"socket:[{inode}]" for inode in inodes}
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if (proc / "comm").read_text().strip() != "dockerd":
                continue
            if any(os.readlink(fd) in targets for fd in (proc / "fd").iterdir()):
                pids.append(int(proc.name))
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return pids


def _fd_target(pid: int, fd: int) -> str:
    try:
        target = os.readlink(f"/proc/{pid}/fd/{fd}")
    except OSError:
        return os.devnull
    # a pipe or socket (a journal, a terminal's pipeline) cannot be reopened: the log goes nowhere then
    return target if target.startswith("/") and os.path.isfile(target) else os.devnull


def _systemd_unit(pid: int) -> str | None:
    """The systemd unit whose main process is `pid`. Being in a unit's cgroup is not enough: a dockerd that a
    CI runner's job started by hand sits in the runner's unit, and stopping that unit would stop the runner."""
    systemctl = shutil.which("systemctl")
    if not systemctl:
        return None
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        leaf = line.rsplit("/", 1)[-1]
        if not leaf.endswith(".service"):
            continue
        main = subprocess.run(
            [systemctl, "show", "--property=MainPID", "--value", leaf], capture_output=True, text=True, timeout=10
        ).stdout.strip()
        if main == str(pid):
            return leaf
    return None


def find(socket: str) -> Daemon:
    """The dockerd listening on `socket`, with everything needed to start it again identically."""
    if os.geteuid() != 0:
        raise CannotRestart("restarting the Docker daemon needs root (its /proc entries and its signal)")
    inodes = _listening_inodes(socket)
    if not inodes:
        raise CannotRestart(f"no process listens on {socket} (is the engine behind a proxy or in a VM?)")
    pids = _holders(inodes)
    if len(pids) != 1:
        raise CannotRestart(f"expected one dockerd holding {socket}, found pids {pids or 'none'}")
    pid = pids[0]
    raw_env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    env = dict(item.decode().split("=", 1) for item in raw_env if b"=" in item)
    return Daemon(
        pid=pid,
        socket=socket,
        argv=tuple(a.decode() for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if a),
        env=env,
        cwd=os.readlink(f"/proc/{pid}/cwd"),
        exe=os.readlink(f"/proc/{pid}/exe"),
        stdout=_fd_target(pid, 1),
        stderr=_fd_target(pid, 2),
        unit=_systemd_unit(pid),
    )


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state == "Z"  # exited; its parent has not reaped it yet


def stop(d: Daemon, timeout: float = 90.0) -> None:
    """The daemon's own shutdown: it stops every container (each by its stop signal and timeout), then exits."""
    if d.unit:
        subprocess.run(["systemctl", "stop", d.unit], check=True, timeout=timeout)
        return
    os.kill(d.pid, signal.SIGTERM)
    wait_until(f"dockerd (pid {d.pid}) exiting after SIGTERM", lambda: _gone(d.pid), timeout, every=0.1)


def start(d: Daemon) -> None:
    """Start it again as it was started: same argv, environment, directory and log files, in a session of its
    own (as `nohup … &` left it: no terminal, no parent that waits for it)."""
    if d.unit:
        subprocess.run(["systemctl", "start", d.unit], check=True, timeout=120)
        return
    program = d.argv[0]
    if os.sep not in program and not shutil.which(program, path=d.env.get("PATH", os.defpath)):
        program = d.exe  # started by a name its PATH no longer resolves: run the same binary
    setsid = shutil.which("setsid")
    assert setsid, "setsid (util-linux) is needed to start dockerd detached"
    with open(d.stdout, "ab") as out, open(d.stderr, "ab") as err:
        # setsid --fork returns at once and leaves dockerd to init, so no zombie is left here to reap
        subprocess.run(
            [setsid, "--fork", program, *d.argv[1:]],
            env=d.env,
            cwd=d.cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err if d.stderr != d.stdout else out,
            check=True,
            timeout=30,
        )


def wait_answers(socket: str, timeout: float = 120.0) -> float:
    """Poll the engine on `socket` until it answers; the monotonic time it first did."""

    def answers() -> float:  # refused, missing socket, 500 while starting: raises, so not yet
        client = docker.DockerClient(base_url=f"unix://{socket}", timeout=5)
        try:
            client.ping()
            return time.monotonic()
        finally:
            client.close()

    return wait_until(f"the engine on {socket} answering after its start", answers, timeout, every=0.1)
