"""Cron schedules (`BACKUP_SCHEDULE=30 3 * * *`), standard library only.

The backup service computes its next run with this module and cdb-ops computes, with the same code,
when the last run should have happened (`validate` warns when the newest verified backup is older):
one reading of the schedule on both sides, so they cannot disagree about what `0 4 * * 1-5` means.
The syntax is Vixie cron's (what crontab(5), pg_cron and backup images accept): five fields, `*`,
`a-b`, `/step`, lists, month and weekday names, `@daily` and friends; when both day-of-month and
day-of-week are restricted, a day matching either fires (crontab(5))."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# (name, low, high, names whose index + offset is the number)
_FIELDS = (
    ("minute", 0, 59, (), 0),
    ("hour", 0, 23, (), 0),
    ("day of month", 1, 31, (), 0),
    ("month", 1, 12, _MONTHS, 1),
    ("day of week", 0, 7, _DAYS, 0),
)
_PART_RE = re.compile(r"^(\*|[0-9a-z]+(?:-[0-9a-z]+)?)(?:/(\d+))?$")
# the longest a schedule can leave between two runs is a year (0 0 29 2 * fires every 4 years: refused)
SEARCH_DAYS = 366 * 4 + 1


class CronError(ValueError):
    """A schedule that cannot be read; the message says which field and what is allowed."""


@dataclass(frozen=True)
class Schedule:
    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday (7 is folded into 0)
    days_restricted: bool
    weekdays_restricted: bool

    def day_matches(self, d: datetime) -> bool:
        if d.month not in self.months:
            return False
        in_month, in_week = d.day in self.days, (d.isoweekday() % 7) in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return in_month or in_week
        return in_month and in_week

    def next_after(self, t: datetime) -> datetime:
        """The first run strictly after `t` (same timezone as `t`)."""
        start = t.replace(second=0, microsecond=0) + timedelta(minutes=1)
        day = start.replace(hour=0, minute=0)
        for _ in range(SEARCH_DAYS):
            if self.day_matches(day):
                for h in sorted(self.hours):
                    for m in sorted(self.minutes):
                        at = day.replace(hour=h, minute=m)
                        if at >= start:
                            return at
            day += timedelta(days=1)
        raise CronError(f"{self.text!r} never fires within four years")

    def previous_at_or_before(self, t: datetime) -> datetime:
        """The last run at or before `t`."""
        end = t.replace(second=0, microsecond=0)
        day = end.replace(hour=0, minute=0)
        for _ in range(SEARCH_DAYS):
            if self.day_matches(day):
                for h in sorted(self.hours, reverse=True):
                    for m in sorted(self.minutes, reverse=True):
                        at = day.replace(hour=h, minute=m)
                        if at <= end:
                            return at
            day -= timedelta(days=1)
        raise CronError(f"{self.text!r} never fires within four years")


def _number(token: str, name: str, low: int, high: int, names: tuple[str, ...], offset: int) -> int:
    if token in names:
        return names.index(token) + offset
    if not token.isdigit():
        allowed = f"{low}-{high}" + (f" or {names[0]}..{names[-1]}" if names else "")
        raise CronError(f"{name}: {token!r} is not a number ({allowed})")
    value = int(token)
    if not low <= value <= high:
        raise CronError(f"{name}: {value} is outside {low}-{high}")
    return value


def _field(text: str, name: str, low: int, high: int, names: tuple[str, ...], offset: int) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        m = _PART_RE.match(part)
        if not m:
            raise CronError(f"{name}: {part!r} is not `*`, a number, a range a-b or a step like */5")
        span, step_text = m.group(1), m.group(2)
        step = int(step_text) if step_text else 1
        if step < 1:
            raise CronError(f"{name}: a step of {step} never advances")
        if span == "*":
            first, last = low, high
        elif "-" in span:
            a, b = span.split("-", 1)
            first, last = (_number(x, name, low, high, names, offset) for x in (a, b))
            if first > last:
                raise CronError(f"{name}: the range {span} runs backwards")
        else:
            first = _number(span, name, low, high, names, offset)
            last = high if step_text else first  # `5/15` means 5, 20, 35, 50 (as in Vixie cron)
        values.update(range(first, last + 1, step))
    return frozenset(values)


def parse(text: str) -> Schedule:
    """A Schedule, or CronError saying what is wrong."""
    expr = MACROS.get(text.strip().lower(), text.strip().lower())
    fields = expr.split()
    if len(fields) != 5:
        raise CronError(
            f"{text!r} has {len(fields)} fields; a schedule has five: minute hour day-of-month month day-of-week"
        )
    parsed = [_field(f, *spec) for f, spec in zip(fields, _FIELDS, strict=True)]
    weekdays = frozenset(d % 7 for d in parsed[4])
    schedule = Schedule(
        text.strip(), parsed[0], parsed[1], parsed[2], parsed[3], weekdays, fields[2] != "*", fields[4] != "*"
    )
    schedule.next_after(datetime(2000, 1, 1))  # `0 0 31 2 *` (never) is refused here, not at 3 a.m.
    return schedule


def problem(text: str) -> str | None:
    """What is wrong with a schedule, for envrules' checks (None: it is fine)."""
    try:
        parse(text)
    except CronError as exc:
        return str(exc)
    return None
