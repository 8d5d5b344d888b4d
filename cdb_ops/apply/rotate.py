"""Setting the Postgres role's password in place, where the plan says the data volume keeps an old one.

Postgres reads POSTGRES_PASSWORD(_FILE) only when it initialises an empty data directory, so a changed
password in .env never reaches a volume that already holds data. The new container has the new secret
mounted; psql inside it, over the local socket (both images trust local connections), reads that file
into a psql variable and runs ALTER ROLE. No value is on any command line (the script names only
environment variables the container already has), in `docker inspect`, or in the server's log (the
session turns statement logging off before the statement that carries the password)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping

from cdb_ops.engine.api import Engine
from cdb_ops.errors import ConfigError, StepFailed
from cdb_ops.fsutil import atomic_write
from cdb_ops.load.project import Project
from cdb_ops.load.settings import Settings
from cdb_ops.model.labels import LABEL_VOLUME_ID, recorded_parts
from cdb_ops.redact import Redactor

SOCKET_WAIT = 60.0  # an existing data directory starts in a second or two; crash recovery may take longer

# `sh -c` expands only the container's own env vars (names, not values, are on the command line); the
# quoted heredoc reaches psql's stdin verbatim. psql's backquote runs `cat` on the mounted secret file.
_SCRIPT = """psql -X -q -t -A -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d postgres \\
  -v role="$POSTGRES_USER" -v db="${POSTGRES_DB:-$POSTGRES_USER}" <<'CDB_SQL'
SET log_statement = 'none';
SET log_min_error_statement = 'panic';
SET log_min_duration_statement = -1;
SELECT count(*) AS cdb_has_db FROM pg_database WHERE datname = :'db' \\gset
\\if :cdb_has_db
\\else
\\echo cdb-rotate: no database :db
\\quit
\\endif
\\set cdb_pw `cat "$POSTGRES_PASSWORD_FILE"`
ALTER ROLE :"role" WITH PASSWORD :'cdb_pw';
\\unset cdb_pw
\\echo cdb-rotate: ok
CDB_SQL
"""

_NO_ROLE = re.compile(r'role "([^"]+)" does not exist')
PENDING_FILE = "rotation-pending.json"
KNOWN_FILE = "volume-passwords.json"
VOLUME_MISMATCH = "volume_mismatch"  # details.cause of the error: .env names a role/database the volume lacks


def pending_rotations(project: Project) -> frozenset[str]:
    """Services whose container was (re)created for a rotation that has not been carried out yet (a run
    interrupted in between): the container then looks converged, so only this record says the volume
    still holds the old password. The planner plans those rotations again."""
    path = project.state_dir / PENDING_FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return frozenset()
    return frozenset(str(s) for s in data) if isinstance(data, list) else frozenset()


def known_passwords(project: Project) -> dict[str, dict[str, str]]:
    """Data volume -> the config parts ({"volume_id", "secrets", "env"}: short hashes, never a value) of
    the Postgres container last removed from it. A container created anew onto that very volume (same
    `cdb.volume-id` label) with the same parts needs no ALTER ROLE: the password the volume holds is known."""
    try:
        data = json.loads((project.state_dir / KNOWN_FILE).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(v): {str(k): str(x) for k, x in p.items()} for v, p in data.items() if isinstance(p, dict)}


def remember_password(project: Project, volume: str, volume_id: str, parts: dict[str, str] | None) -> None:
    """Record (parts) or forget (None) what the volume's password was last set from."""
    known = known_passwords(project)
    if parts is None or not volume_id:
        if known.pop(volume, None) is None:
            return
    else:
        known[volume] = {"volume_id": volume_id, "secrets": parts.get("secrets", ""), "env": parts.get("env", "")}
    project.ensure_state_dir()
    atomic_write(project.state_dir / KNOWN_FILE, json.dumps(known, indent=2, sort_keys=True), mode=0o600)


def remember_after_removal(
    project: Project,
    volume: str,
    volume_labels: Mapping[str, str],
    container_labels: Mapping[str, str],
    rotation_pending: bool,
) -> None:
    """The Postgres container is gone: record what its data volume's password was set from (the config-part
    hashes on the container), so the next run that creates it anew (after `down`, `--clean`) need not set
    the password again (0.6 s of every cold start). An interrupted rotation means it is not known:
    forgotten instead. Both `down`s call this (apply/phases/cleanup.py, cli/down_plain.py)."""
    parts = recorded_parts(container_labels)
    known = bool(parts) and not rotation_pending
    remember_password(project, volume, volume_labels.get(LABEL_VOLUME_ID, ""), parts if known else None)


def mark_pending(project: Project, service: str, done: bool = False) -> frozenset[str]:
    """Record (before the container changes) or clear (once the password is set) a pending rotation."""
    now = pending_rotations(project)
    now = now - {service} if done else now | {service}
    project.ensure_state_dir()
    path = project.state_dir / PENDING_FILE
    if now:
        atomic_write(path, json.dumps(sorted(now)), mode=0o600)
    else:
        path.unlink(missing_ok=True)
    return now


def wait_for_socket(
    engine: Engine,
    container: str,
    timeout: float = SOCKET_WAIT,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Until the server inside answers on its local socket (pg_isready, no password involved)."""
    deadline = clock() + timeout
    while True:
        facts = engine.container(container)
        if facts is None or facts.state in ("exited", "dead"):
            state = facts.state if facts else "gone"
            raise StepFailed(
                f"{container} is {state} before its password could be set",
                f"see `docker logs {container}`, fix the cause, then run rebuild again",
            )
        # as the role .env names (pg_isready's default, the OS user root, would log "role root does not exist")
        code, _ = engine.exec(container, ["sh", "-c", 'pg_isready -q -U "$POSTGRES_USER" -d postgres'])
        if code == 0:
            return
        if clock() >= deadline:
            raise StepFailed(
                f"{container} did not accept local connections within {timeout:.0f} s, so its password "
                "could not be set",
                f"see `docker logs {container}`; run rebuild again once it starts",
            )
        sleep(0.25)


def set_role_password(
    engine: Engine, container: str, settings: Settings, volume: str, redact: Redactor, timeout: float = SOCKET_WAIT
) -> str:
    """ALTER ROLE <POSTGRES_USER> PASSWORD <the mounted secret>; returns what was done (for the step).
    A role or database .env names that the volume does not hold is a config mismatch: ConfigError."""
    wait_for_socket(engine, container, timeout)
    code, out = engine.exec(container, ["sh", "-c", _SCRIPT])
    text = redact(out.strip())
    role = settings.get("POSTGRES_USER") or "postgres"
    missing = _NO_ROLE.search(text)
    if missing:
        raise ConfigError(
            f'role "{missing.group(1)}" does not exist in the data volume {volume}: POSTGRES_USER names another '
            "role than the one the volume was initialised with, and a renamed role cannot be applied in place",
            "set POSTGRES_USER in .env back to the role the volume was created with (a previous .env, e.g. "
            ".env.bak-*, has it) and run `cdb-ops rebuild`; to move the data to a new role name: set it back, "
            "`cdb-ops backup`, change POSTGRES_USER, `cdb-ops rebuild --wipe-data --yes`, then "
            "`cdb-ops restore backups/<the dump> --yes`",
            file=str(settings.path),
            line=settings.lines.get("POSTGRES_USER"),
            details={"cause": VOLUME_MISMATCH, "role": missing.group(1), "volume": volume},
        )
    if "cdb-rotate: no database" in text:
        db = settings.get("POSTGRES_DB") or role
        raise ConfigError(
            f'database "{db}" does not exist in the data volume {volume}: POSTGRES_DB names another database '
            "than the one the volume was initialised with",
            "set POSTGRES_DB in .env back to the database the volume holds (a previous .env, e.g. .env.bak-*, "
            "has it) and run `cdb-ops rebuild`",
            file=str(settings.path),
            line=settings.lines.get("POSTGRES_DB"),
            details={"cause": VOLUME_MISMATCH, "database": db, "volume": volume},
        )
    if code != 0 or "cdb-rotate: ok" not in text:
        raise StepFailed(
            f"setting the password of role {role} in {container} failed (exit {code}): {text[:400]}",
            f"see `docker logs {container}`, then run rebuild again",
        )
    return f"password of role {role} set in place from POSTGRES_PASSWORD (ALTER ROLE over the local socket)"
