"""The server half, started by the client (`client._BOOT`), never by hand.

It imports everything a command may need, then waits for clients. Per command it forks twice: a
supervisor that holds the client's connection, and under it the worker that runs the command with the
client's descriptors, environment and directory. The supervisor reports the worker's exit status to
the client, or stops the worker when the client goes away. The server itself stays single-threaded
(a fork copies only the calling thread) and keeps nothing of one command for the next: every command
starts from the state right after the imports."""

from __future__ import annotations

import contextlib
import fcntl
import gc
import io
import json
import os
import select
import signal
import socket
import struct
import sys
import sysconfig
import threading
import time
import traceback
from typing import Any

from cdb_ops.cli.warm import address, protocol

# imported inside functions of cdb_ops, so not reached by importing its modules
_LAZY_IMPORTS = ("psycopg", "redis", "urllib3", "rich.live", "docker.utils", "yaml")


def warm_up() -> int:
    """Import every module of cdb_ops (and what their functions import later); the count."""
    import importlib
    import pkgutil

    import cdb_ops

    for info in pkgutil.walk_packages(cdb_ops.__path__, "cdb_ops."):
        if info.name.endswith("__main__"):
            continue
        importlib.import_module(info.name)
    for name in _LAZY_IMPORTS:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    # first use of typer/click and rich builds a few things lazily: build them once here
    from cdb_ops.cli.app import run

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        run(["--help"])
    # rich loads its table of character widths on the first character outside its one-cell ranges (the
    # tables' ✓ and •): 30 ms of every `status` a worker ran, until the server loaded it once
    from rich.cells import cell_len

    cell_len("✓ ✗ • — … ⚠")
    from cdb_ops.report.render import prime

    prime()  # and the rest of what rich builds on its first table
    return len(sys.modules)


def source_files() -> dict[str, int]:
    """Every loaded module's file outside the standard library, with its mtime: when one changes
    (an edit, `pip install -U`, a new editable install), this server is stale."""
    stdlib = {sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"]}
    files: dict[str, int] = {}
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if not path or any(path.startswith(p + os.sep) and "site-packages" not in path for p in stdlib):
            continue
        with contextlib.suppress(OSError):
            files[path] = os.stat(path).st_mtime_ns
    return files


def stale(files: dict[str, int]) -> bool:
    for path, mtime in files.items():
        try:
            if os.stat(path).st_mtime_ns != mtime:
                return True
        except OSError:
            return True
    return False


def serve(path: str, package: str) -> int:
    """Serve on `path` the cdb_ops package at `package` (the client's): any other, and it refuses."""
    if address.package_dir() != package:
        print(f"warm server: imported cdb_ops from {address.package_dir()}, not {package}; not serving", flush=True)
        return 1
    if not address.private_dir(path, create=True):
        return 1
    os.chdir("/")  # holds no one's directory; each command gets its client's
    address.serving = path
    lock = open(path + ".lock", "a")  # noqa: SIM115 - held for the server's whole life
    if not _take(lock) or _answers(path):
        return 0  # another server for this installation is starting or running
    started = time.time()
    modules = warm_up()
    files = source_files()
    # Everything imported is moved out of the collector's reach: a collection in a worker would otherwise
    # walk (and so write to, refcounts and GC headers) every object inherited from here, turning the fork's
    # shared pages into private copies; frozen, the worker's collections see only its own objects.
    gc.collect()
    gc.freeze()
    if threading.active_count() > 1:
        print("warm server: a module started a thread at import; forking is unsafe, not serving", flush=True)
        return 1
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)  # a previous server's, which died without removing it (we hold the lock)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    os.chmod(path, 0o600)
    listener.listen(64)
    listener.settimeout(address.IDLE_SECONDS)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # supervisors are reaped by the kernel
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    served, ours = 0, True
    print(f"warm server {os.getpid()} ready: {modules} modules, {len(files)} source files, "
          f"{time.time() - started:.2f}s", flush=True)  # fmt: skip
    try:
        while True:
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                return 0  # idle
            with conn:
                if not _same_user(conn):
                    continue
                conn.settimeout(5)
                try:
                    kind, head, fds = protocol.recv_kind(conn)
                except OSError:
                    continue
                if kind == protocol.RUN:
                    if stale(files):
                        _close(fds)
                        # socket and lock given up before answering, so the server the client starts now
                        # can take them at once
                        with contextlib.suppress(OSError):
                            os.unlink(path)
                        ours = False  # from here on the path may be the next server's
                        lock.close()
                        with contextlib.suppress(OSError):
                            conn.sendall(protocol.STALE)
                        return 0
                    served += 1
                    if os.fork() == 0:
                        listener.close()
                        lock.close()
                        _supervise(conn, head, fds)
                    _close(fds)
                    continue
                _close(fds)  # only a run hands over descriptors
                if kind == protocol.INFO:
                    info = {"pid": os.getpid(), "socket": path, "started_at": started, "modules": modules,
                            "source_files": len(files), "commands_served": served,
                            "idle_timeout_seconds": address.IDLE_SECONDS, "rss_bytes": _rss()}  # fmt: skip
                    with contextlib.suppress(OSError):
                        conn.sendall(json.dumps(info).encode())
                elif kind == protocol.QUIT:
                    with contextlib.suppress(OSError):
                        conn.sendall(b"K")
                    return 0
    finally:
        if ours:  # no other server binds it while we hold the lock
            with contextlib.suppress(OSError):
                os.unlink(path)


def _take(lock: Any) -> bool:
    """The installation's lock, or False when another server holds it (starting or running). One try:
    a stale server gives it up before it tells its client to start a new one, and a server that was
    stopped on purpose must not be followed by one that happened to be waiting."""
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _answers(path: str) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
        return True
    except OSError:
        return False
    finally:
        probe.close()


def _same_user(conn: socket.socket) -> bool:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return bool(uid == os.getuid())


def _close(fds: list[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


def _rss() -> int | None:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return None


def _supervise(conn: socket.socket, head: bytes, fds: list[int]) -> None:
    """In the first fork: start the worker, tell the client its pid, report its exit status."""
    code = 0
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        conn.settimeout(None)
        payload = protocol.recv_payload(conn, head)
        worker = os.fork()
        if worker == 0:
            conn.close()
            _work(fds, payload)
        with contextlib.suppress(OSError):  # here too, so the group exists before the client can signal it
            os.setpgid(worker, worker)
        _close(fds)
        conn.sendall(protocol.STARTED + protocol.pack_int(worker))
        status = _wait_worker(conn, worker)
        code = os.waitstatus_to_exitcode(status)
        code = 128 - code if code < 0 else code  # killed by a signal: what a shell reports
        conn.sendall(protocol.pack_int(code))
    except BaseException:  # noqa: BLE001 - a fork never returns into the server's loop
        traceback.print_exc()
        code = 70
    finally:
        os._exit(0 if code == 0 else 1)


def _wait_worker(conn: socket.socket, worker: int) -> int:
    """The worker's wait status. A client that goes away (killed, its terminal closed) stops it."""
    try:
        pidfd = os.pidfd_open(worker)
    except OSError:  # a kernel before 5.3: wait without watching the client
        return os.waitpid(worker, 0)[1]
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    poller.register(conn, select.POLLIN | select.POLLHUP)
    done = False
    while not done:
        for fd, _event in poller.poll():
            if fd == pidfd:
                done = True
            elif not conn.recv(16):  # the client only ever closes: EOF
                poller.unregister(conn)
                with contextlib.suppress(OSError):
                    os.killpg(worker, signal.SIGTERM)
    os.close(pidfd)
    return os.waitpid(worker, 0)[1]


def _work(fds: list[int], payload: dict[str, Any]) -> None:
    """In the second fork: become the client's command, run it, exit with its code."""
    rc = 70
    try:
        os.setpgid(0, 0)
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGWINCH, signal.SIGUSR1, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        targets: list[int] = payload["fds"]
        for fd, target in zip(fds, targets, strict=True):
            os.dup2(fd, target)
        for target in {0, 1, 2} - set(targets):
            with contextlib.suppress(OSError):
                os.close(target)
        _close([fd for fd in fds if fd not in (0, 1, 2)])
        os.environ.clear()
        os.environ.update(payload["env"])
        time.tzset()
        os.chdir(payload["cwd"])
        os.umask(payload["umask"])
        _stdio(payload["streams"])
        sys.argv = ["cdb-ops", *payload["argv"]]
        from cdb_ops.cli import dispatch

        try:
            rc = dispatch(payload["argv"])
        except SystemExit as e:
            rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            if isinstance(e.code, str):
                print(e.code, file=sys.stderr)
        except KeyboardInterrupt:
            rc = 130
    except BaseException:  # noqa: BLE001
        with contextlib.suppress(Exception):
            traceback.print_exc()
    finally:
        for t in threading.enumerate():
            if t is not threading.current_thread() and not t.daemon:
                t.join()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(rc)


def _stdio(streams: dict[str, list[str] | None]) -> None:
    """sys.stdin/stdout/stderr as the client's interpreter made them: its encodings, line buffering
    on a terminal (stderr always), block buffering into pipes and files."""
    made: dict[int, Any] = {}
    for key, spec in streams.items():
        fd = int(key)
        if spec is None:
            continue
        encoding, errors = spec
        if fd == 0:
            made[0] = io.TextIOWrapper(io.BufferedReader(io.FileIO(0, "r", closefd=False)), encoding=encoding,
                                       errors=errors)  # fmt: skip
        else:
            made[fd] = io.TextIOWrapper(io.BufferedWriter(io.FileIO(fd, "w", closefd=False)), encoding=encoding,
                                        errors=errors, line_buffering=fd == 2 or os.isatty(fd))  # fmt: skip
    sys.stdin = sys.__stdin__ = made.get(0)  # type: ignore[assignment,misc]
    sys.stdout = sys.__stdout__ = made.get(1)  # type: ignore[assignment,misc]
    sys.stderr = sys.__stderr__ = made.get(2)  # type: ignore[assignment,misc]
