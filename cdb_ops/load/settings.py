"""`.env`: read with line numbers, validate as typed settings, and keep secrets out of every output.

The names, types and bounds are the one table the services read too (`cdb_common.envrules`)."""

from __future__ import annotations

import re
import secrets as _secrets
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from cdb_common.envrules import RULES, SECRET_KEYS, EnvRule, bounds, problem

from cdb_ops.errors import ConfigError, ConfigErrors

_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class EnvLine:
    key: str
    value: str
    line: int


def parse_env_file(path: Path) -> dict[str, EnvLine]:
    """KEY=VALUE lines; `#` comments, blank lines, `export `, single/double quotes. Refuses the rest."""
    try:
        text = path.read_text(encoding="utf-8-sig")  # -sig: Notepad saves a BOM
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"not UTF-8 text ({exc.reason} at byte {exc.start})",
            "save the file as UTF-8 (plain ASCII values are safest)",
            file=str(path),
        ) from None
    except IsADirectoryError:
        raise ConfigError(
            "is a folder, not a file", "remove the folder and run `cdb-ops init`", file=str(path)
        ) from None
    except FileNotFoundError:
        raise ConfigError(
            "file not found",
            "run `cdb-ops init` to write one with generated secrets (or copy .env.example to .env)",
            file=str(path),
        ) from None
    out: dict[str, EnvLine] = {}
    errors: list[ConfigError] = []
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").strip()
        if "=" not in line:
            errors.append(ConfigError(f"not a KEY=VALUE line: {raw[:40]!r}", "write KEY=value", file=str(path), line=n))
            continue
        key, value = (p.strip() for p in line.split("=", 1))
        if not _KEY_RE.match(key):
            errors.append(ConfigError(f"invalid key {key!r}", "keys are letters, digits and _", file=str(path), line=n))
            continue
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        if key in out:
            errors.append(
                ConfigError(f"{key} is set twice (first on line {out[key].line})", "keep one", file=str(path), line=n)
            )
        out[key] = EnvLine(key, value, n)
    if errors:
        raise ConfigErrors(errors) if len(errors) > 1 else errors[0]
    return out


@dataclass(frozen=True)
class Settings:
    """The validated `.env`. `values` holds every key (including ones only the playbook uses)."""

    path: Path
    values: dict[str, str]
    lines: dict[str, int] = field(default_factory=dict)

    def secret_values(self) -> list[str]:
        return [self.values[k] for k in SECRET_KEYS if self.values.get(k)]

    def get(self, key: str, default: str | None = None) -> str | None:
        return self.values.get(key, default)

    def decimal(self, key: str) -> Decimal:
        return Decimal(self.values[key])


def load_settings(path: Path) -> Settings:
    entries = parse_env_file(path)
    errors: list[ConfigError] = []
    f = str(path)
    for key, rule in RULES.items():
        entry = entries.get(key)
        if entry is None or entry.value == "":
            if rule.required:
                fix = f"add a line {key}=..." + (f" ({rule.help})" if rule.help else "")
                if rule.kind == "secret":
                    fix = f"add {key}=<a long random string>, or run `cdb-ops init --force` to regenerate .env"
                errors.append(ConfigError(f"{key} is missing", fix, file=f))
            continue
        wrong = problem(rule, entry.value)
        if wrong:
            # never echo a secret's value back, even a wrong one
            errors.append(ConfigError(f"{key}: {wrong}", _fix_for(key, rule), file=f, line=entry.line))
    if errors:
        raise ConfigErrors(errors) if len(errors) > 1 else errors[0]
    return Settings(path, {k: e.value for k, e in entries.items()}, {k: e.line for k, e in entries.items()})


def _fix_for(key: str, rule: EnvRule) -> str:
    if rule.kind == "secret":
        return f"set {key} to a new random value, e.g. `cdb-ops init --force` writes fresh secrets"
    if rule.kind == "choice":
        return f"use one of {', '.join(rule.choices)}"
    if rule.kind == "text":
        return "letters, digits and _, starting with a letter"
    return f"write a number {bounds(rule)}" + (f" ({rule.help})" if rule.help else "")


def generate_secret() -> str:
    return _secrets.token_urlsafe(32)


def render_env_from_example(example: str) -> str:
    """.env.example with every empty secret filled by a fresh random value."""
    out = []
    for raw in example.splitlines():
        key, sep, value = raw.partition("=")
        if sep and key.strip() in SECRET_KEYS and value.strip() in ("", "change-me"):
            raw = f"{key.strip()}={generate_secret()}"
        out.append(raw)
    return "\n".join(out) + "\n"
