"""Files cdb-ops writes (state, secrets, .env, backups' sidecars): written whole or not at all.

A reader — or a run interrupted half-way — sees either the old content or the new, never a torn file."""

from __future__ import annotations

import os
from pathlib import Path


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
