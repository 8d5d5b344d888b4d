"""The one table of `.env` settings: name, type, default, bounds, unit and who reads each.

Both sides read this table and nothing else: cdb-ops validates `.env` against it before it changes
anything (with file, line and fix), and the services' config applies the same bounds when they start.
Standard library only, so a service image needs nothing more than cdb_common."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

SECRET_MIN_LENGTH = 16
# Passwords published in the user's memo: treat them as burnt, never use or accept them.
LEAKED_PASSWORDS = frozenset({"cdb_secure_password_2025", "Jannek2025!"})
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@dataclass(frozen=True)
class EnvRule:
    key: str
    kind: str  # "text" | "secret" | "decimal" | "choice"
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
_RULES = (
    EnvRule("POSTGRES_DB", "text", hint="e.g. claire_de_binare", read_by=("postgres", "services", "cdb-ops")),
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
        unit="USDT",
        read_by=("risk", "execution"),
        hint="e.g. 1000",
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
        unit="24h quote volume in USDT",
        read_by=("screener", "signal"),
        hint="e.g. 100000",
    ),
    EnvRule(
        "MIN_ORDER_NOTIONAL",
        "decimal",
        "1",
        Decimal(0),
        unit="USDT",
        required=False,
        read_by=("risk", "execution"),
        hint="e.g. 1",
    ),
    EnvRule("LOG_LEVEL", "choice", "INFO", choices=LOG_LEVELS, required=False, read_by=("services",), hint="INFO"),
)
RULES: dict[str, EnvRule] = {r.key: r for r in _RULES}
SECRET_KEYS = tuple(r.key for r in _RULES if r.kind == "secret")


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
    if rule.kind == "choice":
        return None if value.upper() in rule.choices else f"{value!r} is not one of {', '.join(rule.choices)}"
    if rule.kind == "text":
        return None if re.match(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$", value) else f"{value!r} is not a plain name"
    try:
        number = Decimal(value)
    except InvalidOperation:
        return f"{value!r} is not a number"
    if not number.is_finite():
        return f"{value!r} is not a finite number"
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
