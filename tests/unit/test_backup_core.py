"""The backup core without Docker: cron schedules (both sides read them with cdb_common.cron), a bad
BACKUP_SCHEDULE refused with file, line and fix, grandfather-father-son retention as a pure function
over many dates, which dumps count as verified, and that nothing is pruned while the newest dump
fails verification. Real files in tmp_path; the Postgres half is in tests/integration."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cdb_common import backupfiles as bf
from cdb_common import cron
from cdb_common.backupjob import compare

from cdb_ops.checks.backups import backup_summary, backup_verdict
from cdb_ops.errors import CdbError
from cdb_ops.load.envfile import parse_env_text
from cdb_ops.load.settings import check_settings, render_env_from_example

REPO = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 3, 15, 3, 30, tzinfo=UTC)  # a Sunday


# -- cron -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "after", "expected"),
    [
        ("* * * * *", datetime(2026, 1, 1, 10, 0, 30, tzinfo=UTC), datetime(2026, 1, 1, 10, 1, tzinfo=UTC)),
        ("30 3 * * *", datetime(2026, 1, 1, 3, 30, tzinfo=UTC), datetime(2026, 1, 2, 3, 30, tzinfo=UTC)),
        ("30 3 * * *", datetime(2026, 1, 1, 3, 29, 59, tzinfo=UTC), datetime(2026, 1, 1, 3, 30, tzinfo=UTC)),
        ("*/15 * * * *", datetime(2026, 1, 1, 10, 16, tzinfo=UTC), datetime(2026, 1, 1, 10, 30, tzinfo=UTC)),
        ("0 5 * * 0", datetime(2026, 3, 9, tzinfo=UTC), datetime(2026, 3, 15, 5, 0, tzinfo=UTC)),  # next Sunday
        ("0 5 * * sun", datetime(2026, 3, 9, tzinfo=UTC), datetime(2026, 3, 15, 5, 0, tzinfo=UTC)),
        ("0 5 * * 7", datetime(2026, 3, 9, tzinfo=UTC), datetime(2026, 3, 15, 5, 0, tzinfo=UTC)),  # 7 is Sunday too
        ("0 0 1 * *", datetime(2026, 1, 31, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)),
        ("0 0 29 2 *", datetime(2026, 3, 1, tzinfo=UTC), datetime(2028, 2, 29, tzinfo=UTC)),  # leap years only
        ("0 4 * * 1-5", datetime(2026, 3, 13, 5, tzinfo=UTC), datetime(2026, 3, 16, 4, tzinfo=UTC)),  # Fri -> Mon
        ("0 12 1 * mon", datetime(2026, 3, 2, 13, tzinfo=UTC), datetime(2026, 3, 9, 12, tzinfo=UTC)),  # day OR weekday
        ("15 2,14 * jan-mar *", datetime(2026, 3, 31, 15, tzinfo=UTC), datetime(2027, 1, 1, 2, 15, tzinfo=UTC)),
        ("@daily", datetime(2026, 1, 1, 0, 0, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)),
        ("@hourly", datetime(2026, 1, 1, 0, 59, tzinfo=UTC), datetime(2026, 1, 1, 1, tzinfo=UTC)),
    ],
)
def test_next_run(text, after, expected):
    assert cron.parse(text).next_after(after) == expected


def test_previous_run_is_at_or_before():
    s = cron.parse("30 3 * * *")
    assert s.previous_at_or_before(datetime(2026, 1, 2, 3, 30, tzinfo=UTC)) == datetime(2026, 1, 2, 3, 30, tzinfo=UTC)
    assert s.previous_at_or_before(datetime(2026, 1, 2, 3, 29, tzinfo=UTC)) == datetime(2026, 1, 1, 3, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "has 0 fields"),
        ("* * * *", "has 4 fields"),
        ("60 * * * *", "minute: 60 is outside 0-59"),
        ("* 24 * * *", "hour: 24 is outside 0-23"),
        ("* * 0 * *", "day of month: 0 is outside 1-31"),
        ("* * * 13 *", "month: 13 is outside 1-12"),
        ("* * * * 8", "day of week: 8 is outside 0-7"),
        ("*/0 * * * *", "never advances"),
        ("5-1 * * * *", "runs backwards"),
        ("daily", "has 1 fields"),
        ("0 3 * * funday", "'funday' is not a number"),
        ("0 0 31 2 *", "never fires"),
        ("0 3 * * * *", "has 6 fields"),
    ],
)
def test_bad_schedule_is_named(text, says):
    with pytest.raises(cron.CronError, match=says):
        cron.parse(text)


def _env(extra: str) -> tuple[str, int]:
    """A valid .env (the template with fresh secrets) plus `extra`, and the line `extra` starts on."""
    base = render_env_from_example((REPO / ".env.example").read_text())
    return base + extra, base.count("\n") + 1


def test_bad_backup_schedule_in_env_is_refused_with_file_line_and_fix(tmp_path):
    path = tmp_path / ".env"
    text, line = _env("BACKUP_SCHEDULE=61 3 * * *\n")
    with pytest.raises(CdbError) as err:
        check_settings(parse_env_text(text, path), path)
    e = err.value
    assert e.file == str(path) and e.line == line
    assert "BACKUP_SCHEDULE: minute: 61 is outside 0-59" in e.message
    assert "cron syntax" in e.remedy and "30 3 * * *" in e.remedy


@pytest.mark.parametrize("value", ["/mnt/nas", "../elsewhere", "a/../../b", "nas dir"])
def test_second_dir_must_stay_inside_the_project(tmp_path, value):
    path = tmp_path / ".env"
    text, line = _env(f"BACKUP_SECOND_DIR={value}\n")
    with pytest.raises(CdbError, match="BACKUP_SECOND_DIR") as err:
        check_settings(parse_env_text(text, path), path)
    assert err.value.line == line


def test_good_backup_settings_pass(tmp_path):
    path = tmp_path / ".env"
    text, _ = _env(
        "BACKUP_SCHEDULE=*/5 * * * *\nRESTORE_DRILL_SCHEDULE=@weekly\nBACKUP_KEEP_DAILY=0\nBACKUP_SECOND_DIR=nas/cdb\n"
    )
    s = check_settings(parse_env_text(text, path), path)
    assert bf.Retention.from_env(s.values) == bf.Retention(0, 4, 6)


# -- grandfather-father-son -------------------------------------------------------------------------------
def _daily(days: int, start: datetime = T0) -> list[datetime]:
    return [start - timedelta(days=i) for i in range(days)]


def test_gfs_defaults_over_a_year_of_daily_backups():
    times = _daily(400)
    keep = bf.gfs_keep(times, bf.Retention(7, 4, 6))
    daily = set(_daily(7))
    # ISO weeks: the newest of each of the 4 newest weeks; T0 is a Sunday, so those are T0 - 0/7/14/21 days
    weekly = {T0 - timedelta(days=7 * i) for i in range(4)}
    # months: the newest of March, February, January, December, November, October
    monthly = {T0} | {datetime(y, m, 1, 3, 30, tzinfo=UTC) - timedelta(days=1) for y, m in
                      ((2026, 3), (2026, 2), (2026, 1), (2025, 12), (2025, 11))}  # fmt: skip
    assert keep == daily | weekly | monthly
    assert len(keep) == 7 + 3 + 5  # T0 counts in all three


def test_gfs_keeps_the_newest_of_each_day():
    times = [T0 - timedelta(hours=h) for h in range(0, 72, 6)]  # four a day for three days
    keep = bf.gfs_keep(times, bf.Retention(daily=2, weekly=0, monthly=0))
    assert keep == {T0, datetime(2026, 3, 14, 21, 30, tzinfo=UTC)}


def test_gfs_counts_days_with_a_backup_not_calendar_days():
    times = [T0, T0 - timedelta(days=10), T0 - timedelta(days=40)]  # the machine was off in between
    assert bf.gfs_keep(times, bf.Retention(daily=3, weekly=0, monthly=0)) == set(times)


def test_gfs_keep_last_is_the_n_newest():
    times = [T0 - timedelta(minutes=i) for i in range(10)]
    assert bf.gfs_keep(times, bf.Retention(0, 0, 0, last=3)) == set(times[:3])


def test_gfs_keeps_nothing_with_all_zero_and_everything_is_idempotent():
    times = _daily(50)
    assert bf.gfs_keep(times, bf.Retention(0, 0, 0)) == set()
    r = bf.Retention(7, 4, 6)
    once = bf.gfs_keep(times, r)
    assert bf.gfs_keep(once, r) == once  # pruning again prunes nothing more


def test_gfs_week_bucket_crosses_a_year_boundary():
    # 2026-01-01 is a Thursday in ISO week 2026-W01, which began on Monday 2025-12-29
    times = [datetime(2026, 1, 1, tzinfo=UTC), datetime(2025, 12, 29, tzinfo=UTC), datetime(2025, 12, 28, tzinfo=UTC)]
    assert bf.gfs_keep(times, bf.Retention(0, 2, 0)) == {times[0], times[2]}


def _dump(when: datetime, verified: bool) -> bf.DumpFile:
    return bf.DumpFile(Path(f"x_db_{bf.stamp(when)}.dump"), when, verified, None if verified else "damaged")


def test_nothing_is_pruned_while_the_newest_dump_fails_verification():
    dumps = [_dump(T0, False)] + [_dump(t, True) for t in _daily(30)[1:]]
    assert bf.prune_plan(dumps, bf.Retention(1, 0, 0)) == []


def test_damaged_dumps_are_never_pruned_and_never_kept_in_their_place():
    dumps = [_dump(T0, True), _dump(T0 - timedelta(days=1), False), _dump(T0 - timedelta(days=2), True)]
    gone = bf.prune_plan(dumps, bf.Retention(2, 0, 0))
    assert [d.when for d in gone] == []  # two verified days kept: the damaged one does not take a slot
    gone = bf.prune_plan(dumps, bf.Retention(1, 0, 0))
    assert [d.when for d in gone] == [T0 - timedelta(days=2)]


# -- files on disk ----------------------------------------------------------------------------------------
def _write_dump(directory: Path, when: datetime, rows: dict[str, int] | None = None) -> Path:
    directory.mkdir(exist_ok=True)
    path = directory / bf.dump_name("sys", "db", when)
    tmp = path.with_name(path.name + ".partial")
    tmp.write_bytes(bf.DUMP_MAGIC + bytes(range(256)) * 4)
    size, digest = bf.seal(tmp, path, bf.sha256_file(tmp))
    manifest = {"sha256": digest, "listed": "pg_restore --list reads 9 entries", "rows": rows or {"t": 1}}
    bf.write_private(bf.manifest_path(path), json.dumps(manifest))
    return path


def test_inventory_counts_only_files_that_verify(tmp_path):
    good = _write_dump(tmp_path, T0 - timedelta(days=1))
    bad = _write_dump(tmp_path, T0)
    data = bytearray(bad.read_bytes())
    data[100] ^= 1
    bad.write_bytes(bytes(data))
    unlisted = _write_dump(tmp_path, T0 - timedelta(days=2))
    m = json.loads(bf.manifest_path(unlisted).read_text())
    bf.manifest_path(unlisted).write_text(json.dumps({**m, "listed": ""}))
    (tmp_path / "sys_db_notastamp.dump").write_bytes(b"PGDMP")
    found = bf.inventory(tmp_path, "sys_db")
    assert [(d.path, d.verified) for d in found] == [(bad, False), (good, True), (unlisted, False)]
    assert "checksum mismatch" in (found[0].problem or "")
    newest, damaged = bf.newest_verified(tmp_path, "sys_db")
    assert newest is not None and newest.path == good and [d.path for d in damaged] == [bad]
    assert oct(good.stat().st_mode & 0o777) == "0o600"


def test_prune_on_disk_removes_sidecar_and_manifest_but_not_the_damaged(tmp_path):
    paths = [_write_dump(tmp_path, T0 - timedelta(days=i)) for i in range(4)]
    paths[2].write_bytes(b"PGDMP damaged")
    removed = bf.prune(tmp_path, "sys_db", bf.Retention(1, 0, 0))
    assert removed == [paths[1], paths[3]]
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted([paths[0].name, paths[0].name + ".sha256", paths[0].name + ".json"] +
                          [paths[2].name, paths[2].name + ".sha256", paths[2].name + ".json"])  # fmt: skip


def test_state_file_counts_failures_and_resets_on_success(tmp_path):
    bf.record(tmp_path, "sys_db", "backup", ok=False, last_error="pg_dump failed")
    part = bf.record(tmp_path, "sys_db", "backup", ok=False, last_error="pg_dump failed again")
    assert part["consecutive_failures"] == 2 and part["failures_total"] == 2
    part = bf.record(tmp_path, "sys_db", "backup", ok=True, file="x.dump")
    assert part["consecutive_failures"] == 0 and part["failures_total"] == 2 and part["last_error"] is None
    assert oct(bf.state_path(tmp_path, "sys_db").stat().st_mode & 0o777) == "0o600"


def test_compare_names_each_table_that_differs():
    assert compare({"a": 1, "b": 2}, {"a": 1, "b": 2}) == {}
    assert compare({"a": 1, "b": 2}, {"a": 1, "b": 3, "c": 0}) == {
        "b": {"dump": 2, "restored": 3},
        "c": {"dump": None, "restored": 0},
    }


# -- what status and validate say --------------------------------------------------------------------------
def test_summary_tells_verified_from_drilled_and_overdue(tmp_path):
    now = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)
    values = {"POSTGRES_DB": "db", "BACKUP_SCHEDULE": "* * * * *"}
    empty = backup_summary(tmp_path, "sys", values, now)
    assert empty["level"] == "none" and empty["overdue"]
    assert backup_verdict(empty)[0] == "warn" and "no verified backup" in backup_verdict(empty)[1]
    _write_dump(tmp_path / "backups", now - timedelta(minutes=1))
    fresh = backup_summary(tmp_path, "sys", values, now)
    assert fresh["level"] == "verified" and not fresh["overdue"]
    status, detail, remedy = backup_verdict(fresh)
    assert status == "warn" and "no restore drill yet" in detail and "--drill" in remedy
    bf.record(tmp_path / "backups", "sys_db", "drill", ok=True, file="x.dump", mismatches={})
    drilled = backup_summary(tmp_path, "sys", values, now)
    assert drilled["level"] == "drilled" and backup_verdict(drilled)[0] == "pass"
    later = backup_summary(tmp_path, "sys", values, now + timedelta(hours=1))
    assert later["overdue"] and "older than BACKUP_SCHEDULE" in backup_verdict(later)[1]
    daily = backup_summary(tmp_path, "sys", {**values, "BACKUP_SCHEDULE": "30 3 * * *"}, now + timedelta(hours=1))
    assert not daily["overdue"]  # a daily schedule allows a day (its last run, 03:30, was before the dump)
    bf.record(tmp_path / "backups", "sys_db", "drill", ok=False, error="pg_restore failed")
    failed = backup_summary(tmp_path, "sys", values, now)
    assert backup_verdict(failed)[0] == "warn" and "restore drill failed" in backup_verdict(failed)[1]


def test_a_stamp_reads_back_as_the_same_time_and_anything_else_is_refused() -> None:
    when = datetime(2026, 12, 7, 3, 30, 5, tzinfo=UTC)
    assert bf.parse_stamp(bf.stamp(when)) == when
    for bad in ("20261307T000000Z", "2026120T7000000Z", "20261207 033005Z", "20261207T033005", ""):
        with pytest.raises(ValueError):
            bf.parse_stamp(bad)
