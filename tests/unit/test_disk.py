"""Disk use without Docker: validate's verdict on the data volume's filesystem (its input is the reading),
`df` parsed, the bounded history under `.cdb/`, the growth per day `status` shows, and the `disk` field of
`status --json` against its schema. tests/integration/test_retention.py samples a real stack."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cdb_ops.checks.disk import DATA_FS_WARN_PERCENT, DiskSample, FsReading, check_disk, judge_data_fs, parse_df
from cdb_ops.load.diskhistory import HISTORY_FILE, KEEP_DAYS, MAX_SAMPLES, RECENT_HOURS, append_sample, load_history
from cdb_ops.report.document import status_payload
from cdb_ops.views.status import disk_lines, disk_summary
from tests.unit.test_json_schemas import problems

GIB = 2**30


def reading(used_gib: float, free_gib: float) -> FsReading:
    return FsReading(
        "/var/lib/docker/volumes/cdb_postgres_data/_data",
        int((used_gib + free_gib) * GIB),
        int(used_gib * GIB),
        int(free_gib * GIB),
        "statvfs",
    )


@pytest.mark.parametrize(
    ("used", "free", "status"), [(10, 90, "pass"), (80, 20, "pass"), (81, 19, "warn"), (99, 1, "warn")]
)
def test_validate_warns_above_80_percent_of_the_data_filesystem(used: float, free: float, status: str):
    result = judge_data_fs(reading(used, free), "cdb_postgres_data")
    assert result.name == "disk cdb_postgres_data"
    assert result.status == status
    assert f"{used:.0f} % full" in result.detail
    assert result.facts["used_percent"] == pytest.approx(used, abs=0.1)
    if status == "warn":
        assert f"above {DATA_FS_WARN_PERCENT:.0f} %" in result.detail
        # the remedies: keep less, free space, a bigger disk
        assert "RETENTION_DAYS" in result.remedy and "prune" in result.remedy and "bigger disk" in result.remedy
    else:
        assert result.remedy == ""


def test_reserved_blocks_count_as_df_counts_them():
    # 100 GiB filesystem, 5 GiB reserved for root: 76 used + 19 free is 80 % of what may be used
    fs = FsReading("/data", 100 * GIB, 76 * GIB, 19 * GIB, "statvfs")
    assert fs.used_percent == 80.0
    assert judge_data_fs(fs, "v").status == "pass"


def test_an_unreadable_filesystem_is_a_warning_that_says_how_to_look():
    result = judge_data_fs(None, "cdb_postgres_data", "filesystem via df in cdb_postgres: NotFound")
    assert result.status == "warn" and "NotFound" in result.detail and "df -h" in result.remedy


def test_df_output_is_parsed_and_garbage_is_not():
    out = (
        "Filesystem     1024-blocks     Used Available Capacity Mounted on\n"
        "/dev/sda1        102400000 83886080  18513920      82% /var/lib/postgresql/data\n"
    )
    fs = parse_df(out, "df in cdb_postgres")
    assert fs is not None and fs.size_bytes == 102400000 * 1024 and fs.used_percent == pytest.approx(81.9, abs=0.1)
    assert judge_data_fs(fs, "v").status == "warn"
    assert parse_df("df: /nope: No such file or directory\n", "x") is None
    assert parse_df("Filesystem 1024-blocks Used\nfoo bar baz qux quux corge\n", "x") is None


def test_the_fake_engine_has_nothing_to_sample(project_dir: Path):
    from cdb_ops.checks.context import CheckContext, ValidateOptions
    from cdb_ops.load.desired import resolve
    from cdb_ops.load.playbook import load_runbook
    from cdb_ops.load.project import Project
    from cdb_ops.load.settings import load_settings
    from cdb_ops.model.observed import EngineInfo, ObservedStack
    from cdb_ops.redact import Redactor
    from tests.unit.fake_engine import FakeEngine

    project = Project(project_dir)
    _book, stack = load_runbook(project.playbook("rebuild"))
    settings = load_settings(project.env_file)
    desired = resolve(stack, settings, project)
    observed = ObservedStack(EngineInfo("20.10", "1.41", True), {}, {}, {}, {})
    ctx = CheckContext(FakeEngine(), desired, settings, ValidateOptions(), Redactor([]), observed)
    assert check_disk(ctx) == []  # no docker-py client behind it: nothing sampled, nothing judged
    assert not (project.state_dir / HISTORY_FILE).exists()


def _sample(at: datetime, pg: int, logs: int, snapshots: int) -> dict:
    return DiskSample(
        taken_at=at.isoformat(timespec="seconds"),
        volumes={"cdb_postgres_data": pg, "cdb_redis_data": 1000},
        logs={"cdb_screener_ws": logs, "cdb_postgres": None},
        tables={"market_snapshots": snapshots, "trades": 8192},
        data_fs=reading(50, 50),
    ).to_dict()


def test_growth_per_day_is_measured_against_an_older_sample(tmp_path: Path):
    t0 = datetime(2030, 5, 1, tzinfo=UTC)
    for i, (pg, logs, snaps) in enumerate(
        [(100 * 2**20, 10 * 2**20, 50 * 2**20), (150 * 2**20, 12 * 2**20, 90 * 2**20)]
    ):
        append_sample(tmp_path, _sample(t0 + timedelta(hours=12 * i), pg, logs, snaps))
    disk = disk_summary(load_history(tmp_path), now=t0 + timedelta(hours=15))
    assert disk is not None
    assert disk["age_seconds"] == 3 * 3600 and disk["growth_over_hours"] == 12
    vols = {v["name"]: v for v in disk["volumes"]}
    assert vols["cdb_postgres_data"]["growth_bytes_per_day"] == 100 * 2**20  # +50 MiB in 12 h
    assert vols["cdb_redis_data"]["growth_bytes_per_day"] == 0
    assert disk["logs"]["bytes"] == 12 * 2**20 and disk["logs"]["growth_bytes_per_day"] == 4 * 2**20
    assert {t["name"]: t["growth_bytes_per_day"] for t in disk["tables"]}["market_snapshots"] == 80 * 2**20
    lines = "\n".join(disk_lines(disk))
    assert "sampled 3 h ago" in lines and "cdb_postgres_data 150.0 MiB (+100.0 MiB/day)" in lines
    assert "data filesystem 50 % full" in lines


def test_one_sample_or_samples_minutes_apart_give_no_growth_yet(tmp_path: Path):
    t0 = datetime(2030, 5, 1, tzinfo=UTC)
    append_sample(tmp_path, _sample(t0, 100, 10, 50))
    append_sample(tmp_path, _sample(t0 + timedelta(minutes=5), 200, 20, 60))
    disk = disk_summary(load_history(tmp_path), now=t0 + timedelta(minutes=6))
    assert disk is not None and disk["growth_over_hours"] is None
    assert all(v["growth_bytes_per_day"] is None for v in disk["volumes"])
    assert "needs two samples at least an hour apart" in "\n".join(disk_lines(disk))
    assert disk_summary([]) is None
    assert "no sample yet" in disk_lines(None)[0]


def test_the_history_is_thinned_and_bounded_however_often_it_is_sampled(tmp_path: Path):
    t0 = datetime(2030, 5, 1, tzinfo=UTC)
    # a validate from cron every minute for ten days: 14,400 samples
    for i in range(0, 10 * 24 * 60, 7):  # (every 7 minutes here, to keep the test quick; same shape)
        append_sample(tmp_path, {"taken_at": (t0 + timedelta(minutes=i)).isoformat(timespec="seconds")})
    history = load_history(tmp_path)
    newest = history[-1].taken_at
    assert len(history) <= MAX_SAMPLES
    assert newest - history[0].taken_at <= timedelta(days=KEEP_DAYS)  # nothing older than 8 days
    recent = [h for h in history if newest - h.taken_at < timedelta(hours=RECENT_HOURS)]
    assert len(recent) >= RECENT_HOURS * 60 // 7  # every sample of the last two hours
    older = [h.stamp[:13] for h in history if newest - h.taken_at >= timedelta(hours=RECENT_HOURS)]
    assert len(older) == len(set(older))  # one per hour before that
    assert (tmp_path / HISTORY_FILE).stat().st_size < 64 * 1024


def test_a_torn_last_line_leaves_the_sample_before_it(tmp_path: Path):
    t0 = datetime(2030, 5, 1, tzinfo=UTC)
    append_sample(tmp_path, _sample(t0, 100, 10, 50))
    with (tmp_path / HISTORY_FILE).open("a") as f:
        f.write('{"taken_at": "2030-05-01T01:00:00+00:00", "volu\n{"foreign": 1}\nnot json\n')
    history = load_history(tmp_path)
    assert len(history) == 2 and history[-1].data() is None
    summary = disk_summary(history)
    assert summary is not None and summary["sampled_at"] == t0.isoformat()


def test_status_json_carries_the_disk_summary_as_its_schema_says(tmp_path: Path):
    t0 = datetime(2030, 5, 1, tzinfo=UTC)
    append_sample(tmp_path, _sample(t0, 100, 10, 50))
    append_sample(tmp_path, _sample(t0 + timedelta(days=1), 300, 20, 80))
    for disk in (disk_summary(load_history(tmp_path)), None):
        trading = {"books": None, "problem": "Postgres at 127.0.0.1:5432 did not answer: connection refused"}
        doc = {"schema_version": 1, "command": "status"} | status_payload([], None, disk, None, trading)
        assert problems("status", json.loads(json.dumps(doc, default=str))) == []


def test_validate_samples_sizes_again_only_when_the_newest_sample_is_old(tmp_path: Path) -> None:
    from cdb_ops.checks.disk import FULL_SAMPLE_SECONDS, _sampled_within

    assert not _sampled_within(tmp_path, FULL_SAMPLE_SECONDS)  # no history: sample
    now = datetime.now(UTC)
    append_sample(tmp_path, _sample(now - timedelta(seconds=FULL_SAMPLE_SECONDS + 60), 100, 10, 50))
    assert not _sampled_within(tmp_path, FULL_SAMPLE_SECONDS)  # older than the interval
    append_sample(tmp_path, _sample(now - timedelta(minutes=5), 100, 10, 50))
    assert _sampled_within(tmp_path, FULL_SAMPLE_SECONDS)
    append_sample(tmp_path, _sample(now + timedelta(hours=2), 100, 10, 50))  # a clock set back since
    assert not _sampled_within(tmp_path, FULL_SAMPLE_SECONDS)
