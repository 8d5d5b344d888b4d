"""The client half: hand this command to the warm server, or start one for the next command.

Imported by every `cdb-ops` start before anything else, so stdlib only. Everything that can go wrong
before the server has started the command (no server, a stale one, a socket in a directory that is
not ours alone, no fd passing here) returns None and the command runs in this process as usual."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
from typing import Any

from cdb_ops.cli.warm import address, protocol

# what a terminal or a supervisor sends the command; SIGTSTP (Ctrl-Z) stops the client only
_FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGWINCH, signal.SIGUSR1)


def delegate(args: list[str]) -> int | None:
    """The command's exit code when the warm server ran it; None when this process must run it."""
    if address.disabled() or sys._xoptions or not hasattr(socket, "send_fds"):
        return None  # -X importtime/-X dev and the like: the caller wants this very process measured
    try:
        path = address.socket_path()
        cwd = os.getcwd()
    except OSError:
        return None
    if not address.private_dir(path, create=False):
        start_server(path)
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        try:
            sock.connect(path)
            fds = _std_fds()
            protocol.send_run(sock, fds, _payload(args, cwd, fds))
            answer = protocol.recv_exact(sock, 1)
            pgid = protocol.recv_int(sock) if answer == protocol.STARTED else 0
        except (FileNotFoundError, ConnectionRefusedError):
            start_server(path)
            return None
        except OSError:
            return None
        if answer == protocol.STALE:
            start_server(path)
            return None
        if answer != protocol.STARTED:
            return None
        return _wait(sock, pgid)
    finally:
        sock.close()


def _wait(sock: socket.socket, pgid: int) -> int:
    """The command runs; pass signals on to its process group and exit with its code."""

    def forward(signum: int, _frame: Any) -> None:
        with contextlib.suppress(OSError):  # it has just finished
            os.killpg(pgid, signum)

    for sig in _FORWARDED:
        signal.signal(sig, forward)
    try:
        return protocol.recv_int(sock)
    except OSError:
        print("cdb-ops: the warm server's worker vanished without an exit code; run the command again, "
              "or with CDB_OPS_WARM=0 to bypass the warm server", file=sys.stderr)  # fmt: skip
        return 70


def _std_fds() -> list[int]:
    fds = []
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            continue
        fds.append(fd)
    return fds


def _payload(args: list[str], cwd: str, fds: list[int]) -> dict[str, Any]:
    umask = os.umask(0o022)
    os.umask(umask)
    streams = {}
    for fd, stream in ((0, sys.stdin), (1, sys.stdout), (2, sys.stderr)):
        if fd in fds and stream is not None:
            streams[str(fd)] = [stream.encoding, stream.errors]
    return {"argv": args, "env": dict(os.environ), "cwd": cwd, "umask": umask, "fds": fds, "streams": streams}


def start_server(path: str) -> None:
    """Start this installation's server in the background (its own session, no terminal, stdio to
    its log) for the next command; this one runs here. Two racing starts are settled by the server's
    lock."""
    if not address.private_dir(path, create=True):
        return
    log = path.removesuffix(".sock") + ".log"
    package = address.package_dir()
    with contextlib.suppress(OSError):  # no server: every command runs in its own process, as without one
        os.posix_spawn(
            sys.executable,
            # -P: not the working directory of whichever command started it on its sys.path; _BOOT makes it
            # import this very cdb_ops package (a checkout's, when its directory shadows the installed one)
            [sys.executable, "-P", "-c", _BOOT, path, package],
            dict(os.environ),
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_OPEN, 1, log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600),
                (os.POSIX_SPAWN_DUP2, 1, 2),
            ],
            setsid=True,
        )


_BOOT = """import importlib.util, os, sys
spec = importlib.util.find_spec("cdb_ops")
if spec is None or os.path.dirname(spec.origin or "") != sys.argv[2]:
    sys.path.insert(0, os.path.dirname(sys.argv[2]))
from cdb_ops.cli.warm.server import serve
sys.exit(serve(sys.argv[1], sys.argv[2]))
"""
