"""Backup files on disk, the one reading of them for the backup service and cdb-ops: names, checksums,
the manifest a dump carries (what it held: rows per table at dump time), which dumps count as
verified, grandfather-father-son retention and the state file (last success, failures, drills).

A dump `<system>_<db>_<stamp>.dump` counts only with its `.sha256` sidecar matching and its
`.json` manifest saying `pg_restore --list` read it whole; anything else is "damaged", shown, and
never pruned (it is evidence, and a human decides). Retention prunes nothing unless the newest dump
is verified. Standard library only: the service image and cdb-ops both import it."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

DUMP_MAGIC = b"PGDMP"  # the first bytes of every pg_dump custom-format archive
STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
STAMP_RE = re.compile(r"^_(\d{8}T\d{6}Z)\.(dump|tar\.gz)$")
STATE_SUFFIX = ".state.json"


class BackupError(Exception):
    """A backup, check or drill that failed: what happened and what to do."""

    def __init__(self, message: str, fix: str) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix


def stamp(when: datetime | None = None) -> str:
    return (when or datetime.now(UTC)).astimezone(UTC).strftime(STAMP_FORMAT)


def parse_stamp(text: str) -> datetime:
    """The inverse of stamp(). By position, not strptime: STAMP_RE has checked the shape, and strptime's
    first call imports the locale machinery (a tenth of the quick `status` path's own work)."""
    if len(text) != 16 or text[8] != "T" or text[15] != "Z" or not (text[:8] + text[9:15]).isdigit():
        raise ValueError(f"not a backup time stamp ({STAMP_FORMAT}): {text!r}")
    y, mo, d, h, mi, sec = (int(text[a:b]) for a, b in ((0, 4), (4, 6), (6, 8), (9, 11), (11, 13), (13, 15)))
    return datetime(y, mo, d, h, mi, sec, tzinfo=UTC)


def dump_name(system: str, db: str, when: datetime) -> str:
    return f"{system}_{db}_{stamp(when)}.dump"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def write_private(path: Path, data: str | bytes) -> None:
    """Whole or not at all (temp file, then rename), readable by the owner only (0600)."""
    raw = data.encode() if isinstance(data, str) else data
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    adopt(path)


def adopt(path: Path) -> None:
    """Run as root (cdb-ops by root), a file takes its folder's owner: the backup service runs as that
    user and must read every dump to verify it. Anyone else owns what they write already."""
    if os.geteuid() != 0:
        return
    st = path.parent.stat()
    if st.st_uid != 0 and path.stat().st_uid != st.st_uid:
        os.chown(path, st.st_uid, st.st_gid)


def private_dir(path: Path) -> Path:
    """The backups folder: created if missing, 0700 (dumps hold every row of the account)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def manifest_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def seal(tmp: Path, final: Path, expected: str) -> tuple[int, str]:
    """The copy's checksum must equal the one computed where the dump was made; then the sidecar,
    the rename (a dump under its final name is complete) and the file read back against the sidecar."""
    digest = sha256_file(tmp)
    if digest != expected:
        raise BackupError(
            f"the copy of {final.name} differs from the original (sha256 {digest[:12]}… != {expected[:12]}…)",
            "check free disk space on this machine, then run the backup again",
        )
    write_private(sidecar(final), f"{digest}  {final.name}\n")
    os.chmod(tmp, 0o600)
    tmp.replace(final)
    adopt(final)
    check_sidecar(final)
    return final.stat().st_size, digest


def check_sidecar(path: Path) -> str:
    """The file's checksum equals its sidecar's; returns it (BackupError otherwise)."""
    side = sidecar(path)
    if not side.is_file():
        raise BackupError(
            f"{side.name} is missing, so {path.name} cannot be verified",
            "use only backups made by `cdb-ops backup` or the backup service (they carry a .sha256 file)",
        )
    words = side.read_text().split()
    expected = words[0] if words else ""
    actual = sha256_file(path)
    if actual != expected:
        raise BackupError(
            f"checksum mismatch: {path.name} is {actual[:12]}…, its sidecar says {expected[:12]}…",
            "the backup is damaged or was changed; pick another one",
        )
    return actual


@dataclass
class DumpFile:
    path: Path
    when: datetime
    verified: bool
    problem: str | None = None
    manifest: dict[str, Any] = field(default_factory=dict)

    def to_dict(self, now: datetime) -> dict[str, Any]:
        return {
            "file": self.path.name,
            "created": self.when.isoformat(),
            "age_seconds": round((now - self.when).total_seconds()),
            "verified": self.verified,
            "problem": self.problem,
            "tables": len(self.manifest.get("rows", {})),
        }


def check_dump(path: Path, when: datetime) -> DumpFile:
    """Verified: the sidecar matches, it starts like a pg_dump archive, and its manifest records that
    `pg_restore --list` read it whole with this very checksum."""
    try:
        digest = check_sidecar(path)
        with open(path, "rb") as f:
            if f.read(len(DUMP_MAGIC)) != DUMP_MAGIC:
                raise BackupError("not a pg_dump custom-format archive", "pick another backup")
        mpath = manifest_path(path)
        if not mpath.is_file():  # made before manifests existed: checksummed, but what it held is unknown
            return DumpFile(path, when, True, None, {})
        manifest = json.loads(mpath.read_text())
        if manifest.get("sha256") != digest or not manifest.get("listed"):
            raise BackupError("its manifest does not vouch for this file", "pick another backup")
        return DumpFile(path, when, True, None, manifest)
    except (BackupError, OSError, ValueError) as exc:
        return DumpFile(path, when, False, getattr(exc, "message", str(exc)))


def listing(directory: Path, prefix: str) -> list[tuple[Path, datetime]]:
    """The dump files of `prefix` (`<system>_<db>`) in `directory`, newest first, unchecked."""
    if not directory.is_dir():
        return []
    found = []
    for p in directory.iterdir():
        m = STAMP_RE.match(p.name[len(prefix) :]) if p.name.startswith(prefix) else None
        if m and m.group(2) == "dump" and p.is_file():
            found.append((p, parse_stamp(m.group(1))))
    return sorted(found, key=lambda f: f[1], reverse=True)


def inventory(directory: Path, prefix: str) -> list[DumpFile]:
    """Every dump of `prefix` in `directory`, newest first, each checked (reads every file whole)."""
    return [check_dump(p, when) for p, when in listing(directory, prefix)]


def newest_verified(directory: Path, prefix: str) -> tuple[DumpFile | None, list[DumpFile]]:
    """The newest dump that verifies, and the damaged ones newer than it; reads only those files."""
    damaged: list[DumpFile] = []
    for p, when in listing(directory, prefix):
        d = check_dump(p, when)
        if d.verified:
            return d, damaged
        damaged.append(d)
    return None, damaged


@dataclass(frozen=True)
class Retention:
    """Grandfather-father-son: the newest dump of each of the last `daily` days, `weekly` ISO weeks
    and `monthly` months that have one, plus the `last` newest (what `--keep N` asks for)."""

    daily: int = 7
    weekly: int = 4
    monthly: int = 6
    last: int = 0

    @classmethod
    def from_env(cls, env: Any) -> Retention:
        """From .env / the environment (validated against envrules before; unset: its defaults)."""

        def num(key: str) -> int:
            raw = (env.get(key) or "").strip()
            if raw.isdigit():
                return int(raw)
            from .envrules import RULES  # the defaults only where unset (`cdb-ops status` stays light)

            return int(RULES[key].default or 0)

        return cls(num("BACKUP_KEEP_DAILY"), num("BACKUP_KEEP_WEEKLY"), num("BACKUP_KEEP_MONTHLY"))

    def describe(self) -> str:
        if self.last and not (self.daily or self.weekly or self.monthly):
            return f"the {self.last} newest"
        return f"{self.daily} daily, {self.weekly} weekly, {self.monthly} monthly" + (
            f" and the {self.last} newest" if self.last else ""
        )


def gfs_keep(times: Iterable[datetime], r: Retention) -> set[datetime]:
    """Which of `times` retention keeps (a pure function: the unit tests feed it many dates)."""
    newest_first = sorted(set(times), reverse=True)
    keep = set(newest_first[: r.last])
    buckets = (
        (r.daily, lambda t: t.date()),
        (r.weekly, lambda t: t.isocalendar()[:2]),
        (r.monthly, lambda t: (t.year, t.month)),
    )
    for count, bucket_of in buckets:
        seen: list[Any] = []
        for t in newest_first:
            b = bucket_of(t)
            if b in seen:
                continue  # the newest of this bucket is already kept
            if len(seen) >= count:
                break
            seen.append(b)
            keep.add(t)
    return keep


def prune_plan(dumps: list[DumpFile], r: Retention) -> list[DumpFile]:
    """What retention deletes: nothing unless the newest dump is verified; only verified dumps GFS
    does not keep (a damaged one stays for a human to look at, and counts toward nothing)."""
    if not dumps:
        return []
    newest = max(dumps, key=lambda d: d.when)
    if not newest.verified:
        return []
    verified = [d for d in dumps if d.verified]
    keep = gfs_keep((d.when for d in verified), r)
    return [d for d in verified if d.when not in keep]


def prune(directory: Path, prefix: str, r: Retention) -> list[Path]:
    removed = []
    for d in prune_plan(inventory(directory, prefix), r):
        for p in (d.path, sidecar(d.path), manifest_path(d.path)):
            p.unlink(missing_ok=True)
        removed.append(d.path)
    return removed


# -- the state file: what the last backup, failure and drill were --------------------------------------
def state_path(directory: Path, prefix: str) -> Path:
    return directory / f"{prefix}{STATE_SUFFIX}"


def read_state(directory: Path, prefix: str) -> dict[str, Any]:
    try:
        data = json.loads(state_path(directory, prefix).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def record(directory: Path, prefix: str, section: str, **facts: Any) -> dict[str, Any]:
    """Merge `facts` into one section ("backup" or "drill") of the state file; counts failures."""
    state = read_state(directory, prefix)
    part = dict(state.get(section) or {})
    now = datetime.now(UTC).isoformat()
    if facts.get("ok"):
        part.update(last_success=now, consecutive_failures=0, last_error=None)
    else:
        part.update(
            last_failure=now,
            consecutive_failures=int(part.get("consecutive_failures") or 0) + 1,
            failures_total=int(part.get("failures_total") or 0) + 1,
        )
    part.update(facts, last_run=now)
    state[section] = part
    write_private(state_path(directory, prefix), json.dumps(state, indent=2, sort_keys=True) + "\n")
    return part
