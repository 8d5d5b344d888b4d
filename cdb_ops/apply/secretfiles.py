"""The secrets the containers read as files: `.cdb/secrets/<name>` (dir 0700, file 0444)."""

from __future__ import annotations

from cdb_ops.fsutil import atomic_write
from cdb_ops.load.desired import DesiredStack


def write_secret_files(desired: DesiredStack) -> list[str]:
    """Write each secret to .cdb/secrets (dir 0700, file 0444: readable by the container's user,
    unreachable for other host users); only when the content changed, so nothing churns."""
    desired.project.ensure_state_dir()
    written = []
    for svc in desired.services.values():
        for fname, content in svc.secret_files.items():
            path = desired.project.secrets_dir / fname
            if path.is_file() and path.read_bytes() == content:
                continue
            atomic_write(path, content, mode=0o444)
            written.append(fname)
    return written
