"""Service configuration: environment variables plus `*_FILE` secret files, typed and validated once.

Secrets come from a file named by `<NAME>_FILE` (what the stack mounts read-only); the plain `<NAME>`
value is only a fallback for local runs. Secret values never appear in `repr`, logs or errors.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from cdb_common.envrules import LOG_LEVELS, RULES


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable and the fix."""


def read_secret(env: Mapping[str, str], name: str, default: str = "") -> str:
    """Return secret `name`: the content of the file in `<name>_FILE` wins over plain `<name>`."""
    path = env.get(f"{name}_FILE", "").strip()
    if path:
        try:
            with open(path, encoding="utf-8") as handle:
                # Secret files usually end with a newline that is not part of the password.
                return handle.read().rstrip("\r\n")
        except OSError as exc:
            raise ConfigError(f"{name}_FILE={path} cannot be read ({exc.strerror}); mount the secret file") from None
    return env.get(name, default)


def env_str(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name, "").strip()
    return value if value else default


def env_int(env: Mapping[str, str], name: str, default: int, *, minimum: int | None = None) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer") from None
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name}={value} must be >= {minimum}")
    return value


def env_decimal(
    env: Mapping[str, str], name: str, default: str, *, minimum: Decimal | None = None, positive: bool = False
) -> Decimal:
    """Read a Decimal (money, percentages); floats never enter the trading path. A `.env` setting's
    default and bounds come from the one table cdb-ops validates against too (cdb_common.envrules)."""
    rule = RULES.get(name)
    raw = env.get(name, "").strip() or (rule.default if rule and rule.default is not None else default)
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
    if not value.is_finite():
        raise ConfigError(f"{name}={raw!r} must be a finite number")
    if positive and value <= 0:
        raise ConfigError(f"{name}={raw} must be > 0")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name}={raw} must be >= {minimum}")
    if rule is not None:
        if rule.low is not None and (value < rule.low or (rule.low_open and value == rule.low)):
            raise ConfigError(f"{name}={raw} must be {'>' if rule.low_open else '>='} {rule.low}")
        if rule.high is not None and value > rule.high:
            raise ConfigError(f"{name}={raw} must be <= {rule.high}")
    return value


def env_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}={raw!r} must be 1/0, true/false, yes/no or on/off")


@dataclass(frozen=True)
class PostgresSettings:
    host: str
    port: int
    dbname: str
    user: str
    password: str = field(repr=False)

    def conninfo(self) -> dict[str, Any]:
        """Keyword arguments for psycopg.connect; keepalives notice a dead server within ~30 s."""
        return {
            "host": self.host,
            "port": self.port,
            "dbname": self.dbname,
            "user": self.user,
            "password": self.password,
            "connect_timeout": 5,
            "application_name": "cdb",
            "keepalives": 1,
            "keepalives_idle": 10,
            "keepalives_interval": 5,
            "keepalives_count": 3,
        }


@dataclass(frozen=True)
class RedisSettings:
    host: str
    port: int
    password: str = field(repr=False)


@dataclass(frozen=True)
class TradingLimits:
    """The memo's `.env` knobs, as the services read them (percentages are in %, money in USDT)."""

    max_daily_drawdown_pct: Decimal
    max_position_size_pct: Decimal
    max_total_exposure_pct: Decimal
    initial_capital: Decimal
    signal_threshold_pct: Decimal
    min_volume: Decimal
    min_order_notional: Decimal


@dataclass(frozen=True)
class Settings:
    service: str
    http_port: int
    log_level: str
    postgres: PostgresSettings
    redis: RedisSettings
    limits: TradingLimits
    env: Mapping[str, str] = field(repr=False, compare=False)

    def get(self, name: str, default: str = "") -> str:
        """Service-specific raw setting (typed by the service that reads it)."""
        return env_str(self.env, name, default)


def load_trading_limits(env: Mapping[str, str]) -> TradingLimits:
    return TradingLimits(
        max_daily_drawdown_pct=env_decimal(env, "MAX_DAILY_DRAWDOWN", "5.0", positive=True),
        max_position_size_pct=env_decimal(env, "MAX_POSITION_SIZE", "10.0", positive=True),
        max_total_exposure_pct=env_decimal(env, "MAX_TOTAL_EXPOSURE", "50.0", positive=True),
        initial_capital=env_decimal(env, "INITIAL_CAPITAL", "1000", positive=True),
        signal_threshold_pct=env_decimal(env, "SIGNAL_THRESHOLD", "3.0", positive=True),
        min_volume=env_decimal(env, "MIN_VOLUME", "100000", minimum=Decimal(0)),
        min_order_notional=env_decimal(env, "MIN_ORDER_NOTIONAL", "1", minimum=Decimal(0)),
    )


def load_settings(service: str, default_port: int, env: Mapping[str, str] | None = None) -> Settings:
    """Build the settings of `service` from `env` (default: the process environment)."""
    env = dict(os.environ if env is None else env)
    log_level = env_str(env, "LOG_LEVEL", "INFO").upper()
    if log_level not in LOG_LEVELS:
        raise ConfigError(f"LOG_LEVEL={log_level!r} must be one of {', '.join(LOG_LEVELS)}")
    return Settings(
        service=service,
        http_port=env_int(env, "HTTP_PORT", default_port, minimum=1),
        log_level=log_level,
        postgres=PostgresSettings(
            host=env_str(env, "POSTGRES_HOST", "cdb_postgres"),
            port=env_int(env, "POSTGRES_PORT", 5432, minimum=1),
            dbname=env_str(env, "POSTGRES_DB", "database_claire_de_binare"),
            user=env_str(env, "POSTGRES_USER", "claire"),
            password=read_secret(env, "POSTGRES_PASSWORD"),
        ),
        redis=RedisSettings(
            host=env_str(env, "REDIS_HOST", "cdb_redis"),
            port=env_int(env, "REDIS_PORT", 6379, minimum=1),
            password=read_secret(env, "REDIS_PASSWORD"),
        ),
        limits=load_trading_limits(env),
        env=env,
    )
