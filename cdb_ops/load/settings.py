"""`.env`: read with line numbers, validate as typed settings, and keep secrets out of every output.

The names, types and bounds are the one table the services read too (`cdb_common.envrules`)."""

from __future__ import annotations

import os
import re
import secrets as _secrets
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from cdb_common.envrules import PRIVATE_KEYS, RELATIONS, RULES, SECRET_KEYS, EnvRule, bounds, problem, relation_problem

from cdb_ops.errors import ConfigError, ConfigErrors
from cdb_ops.load.envfile import EnvLine, parse_env_file


def readable_by_others(path: Path) -> str | None:
    """A warning when other users may read the file's secrets (a copied .env.example is 0644)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    if mode & 0o077:
        return (
            f"{path} is readable by other users (mode {stat.S_IMODE(mode):04o}) and holds the stack's passwords; "
            f"fix: chmod 600 {path}"
        )
    return None


@dataclass(frozen=True)
class Settings:
    """The validated `.env`. `values` holds every key (including ones only the playbook uses)."""

    path: Path
    values: dict[str, str]
    lines: dict[str, int] = field(default_factory=dict)
    # the table's secrets plus those the playbook's services list under `secrets:`
    secret_keys: tuple[str, ...] = PRIVATE_KEYS
    warnings: tuple[str, ...] = ()

    def secret_values(self) -> list[str]:
        out = [self.values[k] for k in self.secret_keys if self.values.get(k)]
        # each of the trader's URLs on its own too (NOTIFY_URLS): one may appear without the others
        urls = [k for k in self.secret_keys if RULES.get(k) is not None and RULES[k].kind == "urls"]
        return out + [u.strip() for k in urls for u in _url_items(self.values.get(k))]

    def get(self, key: str, default: str | None = None) -> str | None:
        return self.values.get(key, default)

    def decimal(self, key: str) -> Decimal:
        return Decimal(self.values[key])


def _url_items(value: str | None) -> list[str]:
    return [u for u in (value or "").replace("\n", ",").split(",") if u.strip()]


def load_settings(path: Path, custom_secrets: Iterable[str] = ()) -> Settings:
    entries = parse_env_file(path)
    warning = readable_by_others(path)
    return check_settings(entries, path, custom_secrets, (warning,) if warning else ())


def check_settings(
    entries: dict[str, EnvLine], path: Path, custom_secrets: Iterable[str] = (), warnings: tuple[str, ...] = ()
) -> Settings:
    """Every value against the table of rules (and the secrets a service declares against the secret
    rule: long, not one of the published passwords); all problems in one refusal."""
    errors: list[ConfigError] = []
    f = str(path)
    custom = tuple(k for k in dict.fromkeys(custom_secrets) if k not in RULES)
    rules = list(RULES.values()) + [EnvRule(k, "secret", required=False) for k in custom]
    for rule in rules:
        key = rule.key
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
    if not errors:  # relations between values only once each value is valid on its own
        values = {k: e.value for k, e in entries.items()}
        for relation in RELATIONS:
            wrong = relation_problem(relation, values)
            if wrong:
                errors.append(ConfigError(wrong, relation.fix, file=f, line=_line_of(entries, relation.low)))
    if errors:
        raise ConfigErrors(errors) if len(errors) > 1 else errors[0]
    return Settings(
        path,
        {k: e.value for k, e in entries.items()},
        {k: e.line for k, e in entries.items()},
        PRIVATE_KEYS + custom,
        warnings,
    )


def _line_of(entries: dict[str, EnvLine], key: str) -> int | None:
    entry = entries.get(key)
    return entry.line if entry else None


def _fix_for(key: str, rule: EnvRule) -> str:
    if rule.kind == "secret":
        return f"set {key} to a new random value, e.g. `cdb-ops init --force` writes fresh secrets"
    if rule.kind in ("urls", "events"):
        return f"write {rule.help}"
    if rule.kind == "choice":
        return f"use one of {', '.join(rule.choices)}"
    if rule.kind == "text":
        return "letters, digits and _, starting with a letter"
    if rule.kind in ("cron", "path"):
        return f"write {rule.help}"
    return f"write a number {bounds(rule)}" + (f" ({rule.help})" if rule.help else "")


def generate_secret() -> str:
    return _secrets.token_urlsafe(32)


_TEMPLATE_KEY_RE = re.compile(r"^[ \t]*(?:export[ \t]+)?([A-Za-z_][A-Za-z0-9_]*)[ \t]*=")


def render_env_from_example(example: str, custom_secrets: Iterable[str] = ()) -> str:
    """.env.example with every secret filled by a fresh random value.

    Whatever a template holds for a secret is public (it is committed), so it is never kept — not a
    placeholder, not a published password: keeping one would make `init` write a .env it then refuses.
    Lines stay where they were, so a problem in another value is reported at its .env.example line."""
    # generated: the table's secrets and those only a playbook declares (never the trader's own URLs)
    keys = set(SECRET_KEYS) | {k for k in custom_secrets if k not in RULES}
    out = []
    for raw in example.split("\n"):
        # the key as parse_env_text reads it (blanks, `export` and a tab or several blanks after it)
        m = _TEMPLATE_KEY_RE.match(raw.removeprefix("\ufeff"))
        if m and m.group(1) in keys:
            raw = f"{m.group(1)}={generate_secret()}"
        out.append(raw.removesuffix("\r"))
    return "\n".join(out).rstrip("\n") + "\n"


def set_env_value(text: str, key: str, value: str, comment: str) -> str:
    """`text` (a .env) with `key=value`, a `# comment` line right above it: the first line for `key`
    (set or empty) is replaced, or both lines are appended."""
    lines = text.splitlines()
    note = f"# {key}: {comment}"
    for i, raw in enumerate(lines):
        if raw.strip().removeprefix("export ").split("=", 1)[0].strip() == key and "=" in raw:
            if i > 0 and lines[i - 1].startswith(f"# {key}: "):
                lines[i - 1 : i + 1] = [note, f"{key}={value}"]
            else:
                lines[i : i + 1] = [note, f"{key}={value}"]
            return "\n".join(lines) + "\n"
    return "\n".join([*lines, note, f"{key}={value}"]) + "\n"
