"""The stack's disk use: a sample (each volume's size, each container's log size, the database's table
sizes, and the filesystem that holds the Postgres data volume), kept in a small bounded history under
`.cdb/` so that `status` can show the latest one and the growth per day without measuring anything.

A sample is taken by `status --disk` and by `validate` (so by `rebuild`, which ends with it) when the newest
one is older than FULL_SAMPLE_SECONDS: the engine's /system/df walks every volume and image on the engine
(seconds on a busy one), and growth per day needs no finer grain, so neither the plain `status` nor a
no-op rebuild pays for it each time. `validate` always reads the data volume's filesystem anew (one
statvfs) and warns when it is fuller than DATA_FS_WARN_PERCENT.
"""

from __future__ import annotations

import contextlib
import glob
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cdb_ops.checks.context import CheckContext
from cdb_ops.load.desired import DesiredStack
from cdb_ops.load.diskhistory import append_sample, load_history
from cdb_ops.load.settings import Settings
from cdb_ops.model.results import CheckResult
from cdb_ops.model.tables import EXPECTED_TABLES

DATA_FS_WARN_PERCENT = 80.0
FULL_SAMPLE_SECONDS = 3600.0  # validate samples sizes at most this often; `status --disk` whenever asked
POSTGRES_DATA_DIR = "/var/lib/postgresql/data"


@dataclass(frozen=True)
class FsReading:
    """A filesystem's size as `df` reports it (used % of what non-root may use, reserved blocks apart)."""

    path: str
    size_bytes: int
    used_bytes: int
    available_bytes: int
    source: str  # "statvfs" (the volume's mountpoint, local engine) or "df in <container>"

    @property
    def used_percent(self) -> float:
        usable = self.used_bytes + self.available_bytes
        return round(100.0 * self.used_bytes / usable, 1) if usable else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "used_percent": self.used_percent}


@dataclass
class DiskSample:
    taken_at: str
    volumes: dict[str, int | None] = field(default_factory=dict)  # None: the engine did not say
    logs: dict[str, int | None] = field(default_factory=dict)  # container -> bytes (None: not readable here)
    tables: dict[str, int] = field(default_factory=dict)
    data_fs: FsReading | None = None
    problems: list[str] = field(default_factory=list)  # what could not be measured, and why

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["data_fs"] = self.data_fs.to_dict() if self.data_fs else None
        return out


# -- the validate check: its input is the filesystem reading ----------------------------------------------


def judge_data_fs(reading: FsReading | None, volume: str, why_unknown: str = "") -> CheckResult:
    """pass below DATA_FS_WARN_PERCENT, warn above it (with the remedies); warn when it cannot be read."""
    name = f"disk {volume}"
    if reading is None:
        remedy = f"check it by hand: `docker exec <postgres container> df -h {POSTGRES_DATA_DIR}`"
        return CheckResult(name, "warn", f"its filesystem could not be read ({why_unknown or 'unknown'})", remedy)
    facts = reading.to_dict()
    detail = (
        f"its filesystem is {reading.used_percent:.0f} % full "
        f"({_gib(reading.used_bytes)} used, {_gib(reading.available_bytes)} free)"
    )
    if reading.used_percent > DATA_FS_WARN_PERCENT:
        return CheckResult(
            name,
            "warn",
            detail + f", above {DATA_FS_WARN_PERCENT:.0f} %: a full data disk stops Postgres' writes",
            "keep less: lower MARKET_SNAPSHOT_RETENTION_DAYS / PORTFOLIO_SNAPSHOT_RETENTION_DAYS in .env and "
            "rebuild; free space: `docker image prune`, `cdb-ops backup` then delete old files in backups/; "
            "or move Docker's data to a bigger disk",
            facts,
        )
    return CheckResult(name, "pass", detail, facts=facts)


def check_disk(ctx: CheckContext) -> list[CheckResult]:
    """validate's disk check: takes a sample (kept for `status`) and judges the data volume's filesystem.
    It reads what the engine interface does not carry (/system/df, LogPath, exec) through docker-py's
    APIClient of the engine itself; an engine without one (the unit tests' fake) has nothing to sample."""
    volume = data_volume(ctx.desired)
    api = engine_api(ctx.engine)
    if volume is None or api is None:
        return []
    local = ctx.engine.info().local
    if _sampled_within(ctx.desired.project.state_dir, FULL_SAMPLE_SECONDS):
        problems: list[str] = []
        db = next(s for s in ctx.desired.services.values() if s.spec.role == "database")
        reading = _read_data_fs(api, volume, db.container.name, local, problems)
        return [judge_data_fs(reading, volume, "; ".join(problems))]
    sample = take_sample(api, local, ctx.desired, ctx.settings)
    with contextlib.suppress(OSError):  # a read-only project folder must not fail validate
        append_sample(ctx.desired.project.state_dir, sample.to_dict())
    why = "; ".join(p for p in sample.problems if "filesystem" in p)
    return [judge_data_fs(sample.data_fs, volume, why)]


def _sampled_within(state_dir: Path, seconds: float) -> bool:
    """Whether the history's newest sample is younger than `seconds` (a clock set back counts as old)."""
    history = load_history(state_dir)
    if not history:
        return False
    try:
        age = (datetime.now(UTC) - history[-1].taken_at).total_seconds()
    except ValueError:  # a foreign line: sample anew
        return False
    return 0 <= age < seconds


def engine_api(engine: object) -> Any:
    """docker-py's low-level client behind a DockerEngine (the same host, TLS and timeouts), or None."""
    return getattr(engine, "_api", None)


# -- taking a sample ------------------------------------------------------------------------------------


def data_volume(desired: DesiredStack) -> str | None:
    db = next((s for s in desired.services.values() if s.spec.role == "database"), None)
    return db.data_volume if db else None


def take_sample(api: Any, local: bool, desired: DesiredStack, settings: Settings) -> DiskSample:
    """Every figure it can get; what it cannot (a remote engine's files, Postgres down) goes to `problems`."""
    import docker

    sample = DiskSample(taken_at=datetime.now(UTC).isoformat(timespec="seconds"))
    try:
        df = api.df()
        sizes = {v.get("Name"): (v.get("UsageData") or {}).get("Size") for v in df.get("Volumes") or []}
        for name in desired.volumes:
            size = sizes.get(name)
            sample.volumes[name] = size if isinstance(size, int) and size >= 0 else None
        root = api.info().get("DockerRootDir", "/var/lib/docker")
        for svc in desired.services.values():
            sample.logs[svc.container.name] = _log_bytes(api, svc.container.name, root) if local else None
        if not local:
            sample.problems.append("log sizes: the engine is not on this machine")
        volume, db = (
            data_volume(desired),
            next((s for s in desired.services.values() if s.spec.role == "database"), None),
        )
        if volume and db:
            sample.data_fs = _read_data_fs(api, volume, db.container.name, local, sample.problems)
    except docker.errors.DockerException as exc:
        sample.problems.append(f"engine: {str(exc)[:200]}")
    sample.tables = _table_sizes(desired, settings, sample.problems)
    return sample


def _log_bytes(api: Any, container: str, docker_root: str) -> int | None:
    """The container's log files on this machine: json-file's LogPath plus its rotated siblings, or the
    `local` driver's folder (its LogPath is empty)."""
    try:
        info = api.inspect_container(container)
    except Exception:  # noqa: BLE001 - a container that is not there has no logs
        return None
    path = info.get("LogPath") or ""
    files = (
        glob.glob(path + "*")
        if path
        else glob.glob(os.path.join(docker_root, "containers", info["Id"], "local-logs", "*"))
    )
    if not files:
        return 0 if path or info.get("HostConfig", {}).get("LogConfig", {}).get("Type") == "local" else None
    total = 0
    for f in files:
        with contextlib.suppress(OSError):
            total += os.path.getsize(f)
    return total


def _read_data_fs(api: Any, volume: str, container: str, local: bool, problems: list[str]) -> FsReading | None:
    """statvfs of the volume's mountpoint when the engine is local and it is readable, else `df` in the
    database container."""
    if local:
        try:
            mountpoint = api.inspect_volume(volume).get("Mountpoint", "")
            st = os.statvfs(mountpoint)
            return FsReading(
                mountpoint,
                st.f_blocks * st.f_frsize,
                (st.f_blocks - st.f_bfree) * st.f_frsize,
                st.f_bavail * st.f_frsize,
                "statvfs",
            )
        except Exception as exc:  # noqa: BLE001 - not readable here (permissions): ask the container
            problems.append(f"filesystem via the mountpoint: {type(exc).__name__}")
    try:
        exec_id = api.exec_create(container, ["df", "-Pk", POSTGRES_DATA_DIR], stdout=True, stderr=True)["Id"]
        out = api.exec_start(exec_id).decode("utf-8", "replace")
        return parse_df(out, f"df in {container}")
    except Exception as exc:  # noqa: BLE001 - the container may be down
        problems.append(f"filesystem via df in {container}: {type(exc).__name__}: {str(exc)[:120]}")
        return None


def parse_df(output: str, source: str) -> FsReading | None:
    """The data line of `df -Pk PATH` (POSIX format: 1024-byte blocks)."""
    lines = [ln.split() for ln in output.strip().splitlines()[1:] if ln.strip()]
    if not lines or len(lines[-1]) < 6:
        return None
    parts = lines[-1]
    try:
        size, used, avail = (int(parts[i]) * 1024 for i in (1, 2, 3))
    except ValueError:
        return None
    return FsReading(parts[5], size, used, avail, source)


def _table_sizes(desired: DesiredStack, settings: Settings, problems: list[str]) -> dict[str, int]:
    import psycopg

    from cdb_ops.errors import CdbError
    from cdb_ops.load.endpoints import postgres_conninfo

    try:
        with psycopg.connect(**postgres_conninfo(desired, settings), connect_timeout=3, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c"
                " WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r' AND c.relname = ANY(%s)",
                (list(EXPECTED_TABLES),),
            ).fetchall()
    except (psycopg.Error, CdbError) as exc:
        problems.append(f"table sizes: {type(exc).__name__}")
        return {}
    return {name: int(size) for name, size in sorted(rows)}


def _gib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB"
