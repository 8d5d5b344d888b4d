"""Files on disk, both ways: what cdb-ops writes (state, secrets, .env, backups) is written whole or not at
all — a reader, or a run interrupted half-way, sees the old content or the new, never a torn file — and
what it reads of the user's (playbooks, .env, migrations, build contexts) is read safely (see below)."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from pathlib import Path

from cdb_ops.errors import ConfigError


def atomic_write(path: Path, data: bytes | str, mode: int = 0o600, tmp_suffix: str = ".tmp") -> None:
    """Write `data` to a sibling temp file created with `mode`, then rename it over `path`."""
    raw = data.encode() if isinstance(data, str) else data
    tmp = path.with_name(path.name + tmp_suffix)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
        os.chmod(tmp, mode)  # after writing: a read-only mode (0444) must not stop the write
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def publish(tmp: Path, final: Path, mode: int = 0o600) -> None:
    """Put a file written elsewhere (streamed to `tmp`, e.g. a backup copied out of a container) in
    place under its final name, with `mode`: the rename is the moment it exists, complete."""
    os.chmod(tmp, mode)
    tmp.replace(final)


# ---------------------------------------------------------------------------------------------
# Reading what the user wrote: the one place that opens a playbook, .env, migration or Dockerfile.
# Only a regular file is read (a FIFO would block forever, a device never ends, a folder is not a file),
# the size is bounded, a symlink loop is a clear refusal, and bad bytes are reported by line and column
# — never by quoting the content, which may be a password.

MAX_READ_BYTES = 16 * 1024 * 1024


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def _refuse(path: Path, message: str, fix: str, what: str) -> ConfigError:
    return ConfigError(message.replace("{what}", what), fix.replace("{what}", what), file=str(path))


def read_bytes(path: Path, what: str = "file", limit: int = MAX_READ_BYTES, missing_fix: str = "") -> bytes:
    """The content of the regular file at `path` (symlinks followed, loops refused), at most `limit` bytes."""
    try:
        st = os.stat(path)  # stat first: opening a FIFO or a tape device must never happen
    except FileNotFoundError:
        if os.path.islink(path):
            raise _refuse(
                path,
                f"is a symlink to {os.readlink(path)}, which does not exist",
                "point the symlink at an existing {what}, or replace it with the file",
                what,
            ) from None
        raise _refuse(path, "file not found", missing_fix or "check the path", what) from None
    except OSError as exc:
        raise _os_refusal(path, exc, what) from None
    if not stat.S_ISREG(st.st_mode):
        raise _refuse(
            path, f"is {_kind(st.st_mode)}, not a {{what}}", "replace it with a regular {what} (or fix the path)", what
        )
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise _os_refusal(path, exc, what) from None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):  # swapped between stat and open
            raise _refuse(path, "is not a regular file", "replace it with a regular {what}", what)
        data = f.read(limit + 1)
    if len(data) > limit:
        raise _refuse(
            path,
            f"is larger than {limit // (1024 * 1024)} MiB; not a {{what}}",
            "check the path (a {what} is a small text file)",
            what,
        )
    return data


def _os_refusal(path: Path, exc: OSError, what: str) -> ConfigError:
    if exc.errno == errno.ELOOP:
        return _refuse(path, "is a symlink loop", "replace the symlink with the {what} itself", what)
    if exc.errno in (errno.EACCES, errno.EPERM):
        return _refuse(path, "cannot be read (permission denied)", f"make it readable: chmod u+r {path}", what)
    if exc.errno == errno.ENOTDIR:
        return _refuse(path, "a part of the path is a file, not a folder", "check the path", what)
    if exc.errno == errno.ENAMETOOLONG:
        return _refuse(path, "the path is too long", "check the path", what)
    return _refuse(path, f"cannot be read ({os.strerror(exc.errno or 0)})", "check the path", what)


def position(data: bytes, offset: int) -> tuple[int, int]:
    """1-based (line, column) of byte `offset`: lines end at '\\n' only, as in every editor's status bar."""
    line = data.count(b"\n", 0, offset) + 1
    start = data.rfind(b"\n", 0, offset) + 1
    return line, len(data[start:offset].decode("utf-8", "replace")) + 1


def decode_utf8(data: bytes, path: Path, fix: str = "save the file as UTF-8") -> str:
    """UTF-8 text (a leading BOM dropped); a bad byte is named by line and column, not by its value."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line, col = position(data, exc.start)
        raise ConfigError("not UTF-8 text", fix, file=str(path), line=line, column=col) from None


def read_text(path: Path, what: str = "file", missing_fix: str = "") -> str:
    return decode_utf8(read_bytes(path, what, missing_fix=missing_fix), path)


def regular_file_problem(path: Path) -> str | None:
    """Why `path` (followed) is not a regular file, or None (for paths checked, not read)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "does not exist" + (f" (a symlink to {os.readlink(path)})" if os.path.islink(path) else "")
    except OSError as exc:
        return "is a symlink loop" if exc.errno == errno.ELOOP else f"cannot be read ({os.strerror(exc.errno or 0)})"
    return None if stat.S_ISREG(st.st_mode) else f"is {_kind(st.st_mode)}"


def tree_digest(root: Path) -> str:
    """Content hash of everything under `root` (a file or a folder), as a build or bind mount sees it:
    symlinks are hashed as links (never followed: no loops, no files outside the tree), FIFOs, sockets
    and devices by their kind (never opened: no hang), names as raw bytes (not UTF-8 is fine)."""
    h = hashlib.sha256()
    base = os.fspath(root)
    if not os.path.isdir(base):
        if os.path.isfile(base):  # one file: the hash of its content (as bind-mounted files always had)
            file_hash = hashlib.sha256()
            with open(base, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    file_hash.update(chunk)
            return file_hash.hexdigest()
        digest_entry(h, base, b"")
        return h.hexdigest()
    entries: list[tuple[bytes, str]] = []
    for dirpath, dirnames, filenames in os.walk(base, followlinks=False):
        dirnames.sort()
        for name in [*filenames, *(d for d in dirnames if os.path.islink(os.path.join(dirpath, d)))]:
            full = os.path.join(dirpath, name)
            entries.append((os.fsencode(os.path.relpath(full, base)), full))
    for rel, full in sorted(entries, key=lambda e: e[0].split(b"/")):
        digest_entry(h, full, rel)
    return h.hexdigest()


def digest_entry(h: hashlib._Hash, full: str, rel: bytes) -> None:
    h.update(rel + b"\0")
    try:
        st = os.lstat(full)
    except OSError:
        h.update(b"gone\0")
        return
    if stat.S_ISLNK(st.st_mode):
        h.update(b"link\0" + os.fsencode(os.readlink(full)) + b"\0")
    elif not stat.S_ISREG(st.st_mode):
        h.update(f"special {stat.S_IFMT(st.st_mode)}\0".encode())
    else:
        file_hash = hashlib.sha256()
        try:
            with open(full, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    file_hash.update(chunk)
        except OSError as exc:
            raise ConfigError(
                f"cannot be read ({os.strerror(exc.errno or 0)})",
                "make it readable (chmod u+r), or list it in .dockerignore",
                file=os.fsdecode(full),
            ) from None
        h.update(file_hash.digest())
