"""Where this installation's warm server listens. Imported by every `cdb-ops` start, so stdlib only
and cheap: the key is a checksum of what decides which code a process runs (interpreter, the cdb_ops
package's location, sys.path, flags), so two checkouts or two virtualenvs never share a server."""

from __future__ import annotations

import os
import stat
import sys
import zlib

IDLE_SECONDS = 900.0


def disabled() -> bool:
    return os.environ.get("CDB_OPS_WARM", "").strip().lower() in ("0", "off", "no", "false")


def runtime_dir() -> str:
    base = os.environ.get("XDG_RUNTIME_DIR") or "/tmp"
    return os.path.join(base, f"cdb-ops-{os.getuid()}")


def package_dir() -> str:
    """Where this process's cdb_ops package is: a server serves one package, its clients' own."""
    import cdb_ops

    return os.path.dirname(os.path.abspath(cdb_ops.__file__))


def install_key() -> str:
    # sys.path[0] is the script's or the working directory: not part of what the server loaded
    parts = [sys.executable, sys.version, package_dir(), *sys.path[1:]]
    parts.append(repr(sys.flags))
    raw = "\0".join(parts).encode("utf-8", "surrogateescape")
    return f"{zlib.crc32(raw):08x}{zlib.adler32(raw):08x}"


# set in the warm server (and so in every command it runs): the socket it serves. Its own interpreter
# starts with other flags and without sys.path[0], so it would compute another key than its clients.
serving: str | None = None


def socket_path() -> str:
    return serving or os.path.join(runtime_dir(), f"warm-{install_key()}.sock")


def private_dir(path: str, create: bool) -> bool:
    """True when the socket's directory is ours alone (a directory, owned by us, mode 0700) — the only
    place a socket that is handed our terminal and environment may live."""
    d = os.path.dirname(path)
    if create:
        try:
            os.makedirs(d, mode=0o700, exist_ok=True)
        except OSError:
            return False
    try:
        st = os.lstat(d)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and not st.st_mode & 0o077
