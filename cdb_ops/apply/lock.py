"""One converging run per project at a time: an exclusive, non-blocking file lock (released by the
kernel if the process dies, so a crashed run never leaves a stale lock behind)."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cdb_ops.errors import LockHeld


@contextmanager
def run_lock(state_dir: Path, what: str) -> Iterator[None]:
    state_dir.mkdir(mode=0o700, exist_ok=True)
    path = state_dir / "run.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another cdb-ops run"
            raise LockHeld(
                f"another run holds the lock: {holder}",
                "wait for it to finish (or stop it); a crashed run releases the lock by itself",
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}: {what}".encode(), 0)
        yield
    finally:
        os.close(fd)
