"""The one table of `.env` settings: name, type, default, bounds, unit and who reads each.

Both sides read this table and nothing else: cdb-ops validates `.env` against it before it changes
anything (with file, line and fix), and the services' config applies the same bounds when they start.
Standard library only, so a service image needs nothing more than cdb_common."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from . import cron, notifyrules

SECRET_MIN_LENGTH = 16
# Passwords published in the user's memo: treat them as burnt, never use or accept them.
LEAKED_PASSWORDS = frozenset({"cdb_secure_password_2025", "Jannek2025!"})
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
FEEDS = ("live", "replay")


@dataclass(frozen=True)
class EnvRule:
    key: str
    kind: str  # "text" | "secret" | "decimal" | "integer" | "choice" | "cron" | "path" | "urls" | "events"
    default: str | None = None  # what the services use when the variable is unset (None: no default)
    low: Decimal | None = None
    low_open: bool = False  # low itself is not allowed
    high: Decimal | None = None
    choices: tuple[str, ...] = ()
    unit: str = ""
    required: bool = True  # cdb-ops refuses a .env without it
    read_by: tuple[str, ...] = ()
    hint: str = ""

    @property
    def help(self) -> str:
        """'percent, e.g. 5.0': the unit and an example, for a fix that says what to write."""
        return ", ".join(p for p in (self.unit, self.hint) if p)


_PCT = Decimal(100)
# the largest amount the money columns hold: NUMERIC(30, 12) (cash, equity, notional in schema/002, 003)
MONEY_MAX = Decimal("999999999999999999.999999999999")
# quote volumes are NUMERIC(38, 12) (schema/001_market_snapshots.sql)
VOLUME_MAX = Decimal("99999999999999999999999999.999999999999")
_RULES = (
    EnvRule("POSTGRES_DB", "text", hint="e.g. database_claire_de_binare", read_by=("postgres", "services", "cdb-ops")),
    EnvRule("POSTGRES_USER", "text", hint="e.g. claire", read_by=("postgres", "services", "cdb-ops")),
    EnvRule("POSTGRES_PASSWORD", "secret", read_by=("postgres", "services", "cdb-ops")),
    EnvRule("REDIS_PASSWORD", "secret", read_by=("redis", "services", "cdb-ops")),
    EnvRule("GRAFANA_PASSWORD", "secret", required=False, read_by=("grafana",)),
    # Ranges keep a typo from becoming a trading decision (an exposure of 500 % or a negative drawdown).
    EnvRule(
        "MAX_DAILY_DRAWDOWN",
        "decimal",
        "5.0",
        Decimal(0),
        True,
        _PCT,
        unit="percent",
        read_by=("risk",),
        hint="e.g. 5.0",
    ),
    EnvRule(
        "MAX_POSITION_SIZE",
        "decimal",
        "10.0",
        Decimal(0),
        True,
        _PCT,
        unit="percent of equity",
        read_by=("risk",),
        hint="e.g. 10.0",
    ),
    EnvRule(
        "MAX_TOTAL_EXPOSURE",
        "decimal",
        "50.0",
        Decimal(0),
        True,
        _PCT,
        unit="percent of equity",
        read_by=("risk",),
        hint="e.g. 50",
    ),
    EnvRule(
        "INITIAL_CAPITAL",
        "decimal",
        "1000",
        Decimal(0),
        True,
        MONEY_MAX,
        unit="USDT",
        read_by=("risk", "execution"),
        hint="e.g. 1000; the NUMERIC(30, 12) columns hold less than 10^18",
    ),
    EnvRule(
        "SIGNAL_THRESHOLD",
        "decimal",
        "3.0",
        Decimal(0),
        True,
        _PCT,
        unit="percent",
        read_by=("signal",),
        hint="e.g. 3.0",
    ),
    EnvRule(
        "MIN_VOLUME",
        "decimal",
        "100000",
        Decimal(0),
        high=VOLUME_MAX,
        unit="24h quote volume in USDT",
        read_by=("screener", "signal"),
        hint="e.g. 100000",
    ),
    EnvRule(
        "MIN_ORDER_NOTIONAL",
        "decimal",
        "1",
        Decimal(0),
        high=MONEY_MAX,
        unit="USDT",
        required=False,
        read_by=("risk", "execution"),
        hint="e.g. 1",
    ),
    EnvRule(
        "ORDER_TTL_SECONDS",
        "integer",
        "300",
        Decimal(1),
        unit="seconds",
        required=False,
        read_by=("risk",),
        hint="an order still unfilled after this long expires, e.g. 300",
    ),
    EnvRule("LOG_LEVEL", "choice", "INFO", choices=LOG_LEVELS, required=False, read_by=("services",), hint="INFO"),
    # Written by `init` after it checked whether the exchange answers; `rebuild` uses it unless --feed
    # says otherwise and never switches on its own. Unset (an older .env): the playbook's default_feed.
    EnvRule("CDB_FEED", "choice", None, choices=FEEDS, required=False, read_by=("cdb-ops",), hint="live or replay"),
    # What validate's end-to-end probe wrote is deleted once it is older than this.
    EnvRule(
        "CDB_PROBE_RETENTION_HOURS",
        "decimal",
        "24",
        Decimal(0),
        True,
        Decimal(24 * 366),
        unit="hours",
        required=False,
        read_by=("cdb-ops",),
        hint="e.g. 24",
    ),
    # How long a rebuild that swaps risk or execution waits for in-flight orders before it gives up
    # (nothing swapped, the books' states given back; docs/upgrades.md).
    EnvRule(
        "CDB_DRAIN_TIMEOUT",
        "integer",
        "60",
        Decimal(1),
        high=Decimal(3600),
        unit="seconds",
        required=False,
        read_by=("cdb-ops",),
        hint="e.g. 60",
    ),
)
# Retention of the time-series tables (cdb_common.retention; docs/retention.md says why these defaults).
# The account's own history (signals, risk events, orders, trades, positions, daily PnL) has no such key:
# it is never deleted. Whole days: the cutoff is measured on the table's own clock, see the docs.
_RETENTION_MAX_DAYS = Decimal(3650)
_RETENTION = (
    EnvRule(
        "MARKET_SNAPSHOT_RETENTION_DAYS",
        "integer",
        "7",
        Decimal(1),
        high=_RETENTION_MAX_DAYS,
        unit="days",
        required=False,
        read_by=("screener",),
        hint="e.g. 7; the live feed writes ~150 MB a day, so 30 days are ~4.5 GB",
    ),
    EnvRule(
        "PORTFOLIO_SNAPSHOT_RETENTION_DAYS",
        "integer",
        "90",
        Decimal(1),
        high=_RETENTION_MAX_DAYS,
        unit="days",
        required=False,
        read_by=("execution",),
        hint="e.g. 90; each book's newest snapshot is always kept",
    ),
    EnvRule(
        "OPS_RUN_RETENTION_DAYS",
        "integer",
        "90",
        Decimal(1),
        high=_RETENTION_MAX_DAYS,
        unit="days",
        required=False,
        read_by=("cdb-ops",),
        hint="e.g. 90",
    ),
    # How often a service looks for rows past their retention, and how many it deletes per transaction.
    EnvRule(
        "RETENTION_INTERVAL_SECONDS",
        "integer",
        "3600",
        Decimal(1),
        high=Decimal(86400),
        unit="seconds",
        required=False,
        read_by=("screener", "execution"),
        hint="e.g. 3600",
    ),
    EnvRule(
        "RETENTION_BATCH_ROWS",
        "integer",
        "2000",
        Decimal(10),
        high=Decimal(100_000),
        unit="rows per transaction",
        required=False,
        read_by=("screener", "execution", "cdb-ops"),
        hint="e.g. 2000; smaller batches hold their row locks for less time",
    ),
)
# Scheduled backups and restore drills (the backup service, `cdb-ops backup`; docs/backups.md).
_BACKUPS = (
    EnvRule(
        "BACKUP_SCHEDULE",
        "cron",
        "30 3 * * *",
        required=False,
        read_by=("backup", "cdb-ops"),
        hint="cron syntax in UTC, e.g. 30 3 * * * (daily at 03:30) or @hourly",
    ),
    EnvRule(
        "RESTORE_DRILL_SCHEDULE",
        "cron",
        "0 5 * * 0",
        required=False,
        read_by=("backup", "cdb-ops"),
        hint="cron syntax in UTC, e.g. 0 5 * * 0 (Sundays at 05:00)",
    ),
    EnvRule(
        "BACKUP_KEEP_DAILY",
        "integer",
        "7",
        Decimal(0),
        high=Decimal(3660),
        unit="days",
        required=False,
        read_by=("backup", "cdb-ops"),
        hint="e.g. 7: the newest backup of each of the last 7 days with one",
    ),
    EnvRule(
        "BACKUP_KEEP_WEEKLY",
        "integer",
        "4",
        Decimal(0),
        high=Decimal(520),
        unit="weeks",
        required=False,
        read_by=("backup", "cdb-ops"),
        hint="e.g. 4",
    ),
    EnvRule(
        "BACKUP_KEEP_MONTHLY",
        "integer",
        "6",
        Decimal(0),
        high=Decimal(1200),
        unit="months",
        required=False,
        read_by=("backup", "cdb-ops"),
        hint="e.g. 6",
    ),
    EnvRule(
        "BACKUP_SECOND_DIR",
        "path",
        None,
        required=False,
        read_by=("backup", "cdb-ops"),
        hint="a folder inside the project (a mounted NAS or a symlink to one), e.g. nas/cdb",
    ),
)
# Alert thresholds (images/prometheus/rules/, docs/alerting.md): every service exports them as the gauge
# cdb_alert_threshold{key=...} (cdb_common.metrics), so a rule compares a metric with the value in .env
# and no number is written twice. The risk limits the rules use are MAX_DAILY_DRAWDOWN and
# MAX_TOTAL_EXPOSURE themselves.
_ALERTS = (
    EnvRule(
        "ALERT_FEED_STALE_SECONDS",
        "integer",
        "120",
        Decimal(10),
        high=Decimal(86400),
        unit="seconds",
        required=False,
        read_by=("services", "prometheus"),
        hint="e.g. 120; above FEED_SILENCE_SECONDS (30) plus a reconnect, so the daily rotation never fires",
    ),
    EnvRule(
        "ALERT_STREAM_LAG_ENTRIES",
        "integer",
        "5000",
        Decimal(1),
        unit="stream entries",
        required=False,
        read_by=("services", "prometheus"),
        hint="e.g. 5000: entries not yet delivered to a consumer group, while not shrinking",
    ),
    EnvRule(
        "ALERT_STREAM_PENDING_ENTRIES",
        "integer",
        "1000",
        Decimal(1),
        unit="stream entries",
        required=False,
        read_by=("services", "prometheus"),
        hint="e.g. 1000: delivered but unacknowledged entries (a consumer reads up to 500 at once)",
    ),
    EnvRule(
        "ALERT_MEMORY_PERCENT",
        "decimal",
        "90",
        Decimal(1),
        high=_PCT,
        unit="percent of the container's mem_limit",
        required=False,
        read_by=("services", "prometheus"),
        hint="e.g. 90",
    ),
    EnvRule(
        "ALERT_DISK_PERCENT",
        "decimal",
        "80",
        Decimal(1),
        high=_PCT,
        unit="percent of the filesystem used",
        required=False,
        read_by=("services", "prometheus"),
        hint="e.g. 80",
    ),
    EnvRule(
        "ALERT_DRAWDOWN_PERCENT",
        "decimal",
        "80",
        Decimal(1),
        high=_PCT,
        unit="percent of MAX_DAILY_DRAWDOWN",
        required=False,
        read_by=("services", "prometheus"),
        hint="e.g. 80: warn at 4 % when MAX_DAILY_DRAWDOWN is 5",
    ),
    EnvRule(
        "ALERT_EXPOSURE_PERCENT",
        "decimal",
        "95",
        Decimal(1),
        high=_PCT,
        unit="percent of MAX_TOTAL_EXPOSURE",
        required=False,
        read_by=("services", "prometheus"),
        hint="e.g. 95: exposure this close to its cap means new entries shrink or are refused",
    ),
    EnvRule(
        "ALERT_RESTARTS",
        "integer",
        "1",
        Decimal(1),
        high=Decimal(100),
        unit="restarts within 15 minutes",
        required=False,
        read_by=("services", "prometheus"),
        hint="e.g. 1: any restart; a rebuild that recreates a service counts once too",
    ),
)
ALERT_KEYS = tuple(r.key for r in _ALERTS)
# The notifier (images/notifier; docs/notifications.md). NOTIFY_URLS and NOTIFY_HEARTBEAT_URL are secrets
# of kind "urls": never shown, reaching the container only as files, but the trader's own (never generated)
# and optional (unset: no destination / no heartbeat).
_NOTIFY = (
    EnvRule(
        "NOTIFY_URLS",
        "urls",
        None,
        required=False,
        read_by=("notifier", "cdb-ops"),
        hint="Apprise URLs, comma-separated, e.g. tgram://BOT_TOKEN/CHAT_ID,ntfys://ntfy.sh/my-topic",
    ),
    EnvRule(
        "NOTIFY_HEARTBEAT_URL",
        "urls",
        None,
        required=False,
        read_by=("notifier",),
        hint="one http(s) URL called every NOTIFY_HEARTBEAT_SECONDS, e.g. https://hc-ping.com/UUID",
    ),
    EnvRule(
        "NOTIFY_EVENTS",
        "events",
        notifyrules.DEFAULT_TEXT,
        required=False,
        read_by=("notifier",),
        hint="type:mode pairs, types " + "/".join(notifyrules.EVENT_TYPES) + ", modes on/silent/off, e.g. fill:off",
    ),
    EnvRule(
        "NOTIFY_RATE_PER_MINUTE",
        "integer",
        "20",
        Decimal(1),
        high=Decimal(600),
        unit="messages per minute and destination",
        required=False,
        read_by=("notifier",),
        hint="e.g. 20; the rest is summed up in one message",
    ),
    EnvRule(
        "NOTIFY_TIMEOUT_SECONDS",
        "integer",
        "10",
        Decimal(1),
        high=Decimal(120),
        unit="seconds",
        required=False,
        read_by=("notifier",),
        hint="e.g. 10: connect and read timeout of one send",
    ),
    EnvRule(
        "NOTIFY_SUMMARY_SCHEDULE",
        "cron",
        "5 0 * * *",
        required=False,
        read_by=("notifier",),
        hint="cron syntax in UTC, e.g. 5 0 * * * (00:05, the 24 h before); summary:off in NOTIFY_EVENTS stops it",
    ),
    EnvRule(
        "NOTIFY_HEARTBEAT_SECONDS",
        "integer",
        "300",
        Decimal(30),
        high=Decimal(86400),
        unit="seconds",
        required=False,
        read_by=("notifier",),
        hint="e.g. 300",
    ),
)
RULES: dict[str, EnvRule] = {r.key: r for r in (*_RULES, *_RETENTION, *_BACKUPS, *_ALERTS, *_NOTIFY)}
SECRET_KEYS = tuple(r.key for r in RULES.values() if r.kind == "secret")
# every value that is never shown (the generated secrets plus the trader's own secret URLs)
PRIVATE_KEYS = SECRET_KEYS + tuple(r.key for r in RULES.values() if r.kind == "urls")


@dataclass(frozen=True)
class Relation:
    """`low` must not exceed `high` (both decimal rules): a limit that contradicts another."""

    low: str
    high: str
    why: str

    @property
    def fix(self) -> str:
        return f"lower {self.low} or raise {self.high} so that {self.low} <= {self.high}"


RELATIONS = (
    Relation("MAX_POSITION_SIZE", "MAX_TOTAL_EXPOSURE", "one position cannot be larger than the whole exposure"),
)


def _value(values: dict[str, str], key: str) -> Decimal:
    raw = values.get(key) or RULES[key].default or "0"
    return Decimal(raw)


def relation_problem(rel: Relation, values: dict[str, str]) -> str | None:
    """What contradicts, for values each valid on its own (unset ones take their default)."""
    low, high = _value(values, rel.low), _value(values, rel.high)
    if low > high:
        return f"{rel.low} ({low}) is above {rel.high} ({high}): {rel.why}"
    return None


def problem(rule: EnvRule, value: str) -> str | None:
    """What is wrong with `value` for `rule` (never echoing a secret), or None when it is fine."""
    if rule.kind == "secret":
        if value in LEAKED_PASSWORDS:
            return "this password was published in the rebuild memo and must not be used"
        if len(value) < SECRET_MIN_LENGTH:
            return f"too short (at least {SECRET_MIN_LENGTH} characters)"
        if any(c in value for c in "\n\r\"'$`\\ "):
            return "contains quotes, spaces, backslashes, $ or backticks"
        return None
    if rule.kind == "urls":
        return notifyrules.urls_problem(value)  # names the item by position, never its text
    if rule.kind == "events":
        return notifyrules.modes_problem(value)
    if rule.kind == "choice":
        known = {c.upper() for c in rule.choices}
        return None if value.upper() in known else f"{value!r} is not one of {', '.join(rule.choices)}"
    if rule.kind == "cron":
        return cron.problem(value)
    if rule.kind == "path":
        return path_problem(value)
    if rule.kind == "text":
        return None if re.match(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$", value) else f"{value!r} is not a plain name"
    try:
        number = Decimal(value)
    except InvalidOperation:
        return f"{value!r} is not a number"
    if not number.is_finite():
        return f"{value!r} is not a finite number"
    if rule.kind == "integer" and number != number.to_integral_value():
        return f"{value!r} is not a whole number"
    if rule.low is not None and (number < rule.low or (rule.low_open and number == rule.low)):
        return f"{value} is too small (must be {'above' if rule.low_open else 'at least'} {rule.low})"
    if rule.high is not None and number > rule.high:
        return f"{value} is too large (at most {rule.high})"
    return None


def bounds(rule: EnvRule) -> str:
    """'> 0 and <= 100' — for a fix that says what to write."""
    parts = []
    if rule.low is not None:
        parts.append(f"{'>' if rule.low_open else '>='} {rule.low}")
    if rule.high is not None:
        parts.append(f"<= {rule.high}")
    return " and ".join(parts)


def path_problem(value: str) -> str | None:
    """A folder named relative to the project that stays inside it (containers mount only those)."""
    parts = value.replace("\\", "/").split("/")
    if value.startswith("/"):
        return f"{value!r} is absolute; name the folder relative to the project (mount or symlink the NAS there)"
    if ".." in parts or not value.strip() or any(c in value for c in " \t\n$`\"'"):
        return f"{value!r} is not a plain folder inside the project"
    return None
