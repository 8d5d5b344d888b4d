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
from cdb_ops.fsutil import decode_utf8, read_bytes

_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_LEADING_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*")
# control characters other than tab: a form feed, NUL or escape in a value is a copy-paste accident
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u0085\u2028\u2029]")


@dataclass(frozen=True)
class EnvLine:
    key: str
    value: str
    line: int


def _leading_key(line: str) -> str:
    """'POSTGRES_PASSWORD' of 'POSTGRES_PASSWORD: s3cret' — what a message may name of a broken line: only
    a name the rules table knows. Anything else on a broken line may be (part of) a password: the rest
    of a value that ran over two lines, a secret pasted on its own line."""
    m = _LEADING_KEY_RE.match(line)
    return f" (it starts with {m.group(0)!r})" if m and m.group(0) in RULES else ""


# A quoted value: the quote, the value, the same quote, then nothing but blanks and an optional `# comment`
# (dotenv and Compose read `KEY="v"  # rotated` as v). Non-greedy, so the first closing quote that only a
# comment follows ends the value.
_QUOTED_RE = re.compile(r"""^(?P<q>["'])(?P<value>.*?)(?P=q)[ \t]*(?:#.*)?$""")


def _unclosed_quote_end(lines: list[str], start: int, quote: str) -> int:
    """The index of the line that closes a quote left open on lines[start], or `start` when none does
    within the next 20 lines: those lines are the rest of one value, reported once, never shown."""
    for j in range(start + 1, min(start + 21, len(lines))):
        if quote in lines[j]:
            return j
    return start


def parse_env_text(text: str, path: Path) -> dict[str, EnvLine]:
    """KEY=VALUE lines; `#` comments, blank lines, `export `, single/double quotes (a `# comment` may
    follow the closing quote). Refuses the rest.

    A message names the key and the line, never the value or the rest of a broken line: on a line
    that is not KEY=VALUE, anything after the key may be a password. Lines end at '\n' only (a form
    feed or U+2028 is a character in a value, refused below, not a new line that shifts every number).
    A quote left open runs on to the line that closes it: those lines are one refused value, named by
    its key and lines, never parsed as settings of their own (their text is the rest of a secret)."""
    out: dict[str, EnvLine] = {}
    errors: list[ConfigError] = []
    f = str(path)
    lines = text.split("\n")
    skip_to = -1
    for i, raw in enumerate(lines):
        n = i + 1
        if i <= skip_to:
            continue
        line = raw.removesuffix("\r").strip(" \t")
        if not line or line.startswith("#"):
            continue
        if line.startswith("export ") or line.startswith("export\t"):
            line = line[len("export") :].strip(" \t")
        if "=" not in line:
            errors.append(
                ConfigError(
                    f"not a KEY=VALUE line{_leading_key(line)}",
                    "write KEY=value (an '=' between the name and the value, one setting per line)",
                    file=f,
                    line=n,
                )
            )
            continue
        key, value = (p.strip(" \t") for p in line.split("=", 1))
        if not _KEY_RE.match(key):
            shown = f" {key!r}" if key in RULES else _leading_key(key)
            errors.append(
                ConfigError(
                    f"invalid key{shown}",
                    "keys are letters, digits and _, not starting with a digit (KEY=value)",
                    file=f,
                    line=n,
                )
            )
            continue
        if value[:1] in ("'", '"'):
            quote = value[0]
            m = _QUOTED_RE.match(value)
            if m is None:
                end = _unclosed_quote_end(lines, i, quote) if quote not in value[1:] else i
                where = f"lines {n}-{end + 1}" if end > i else "this line"
                errors.append(
                    ConfigError(
                        f"{key}: the {quote} opened on this line is not closed on it"
                        + (f" (the value runs over {where})" if end > i else ""),
                        f"write the whole value of {key} on line {n} between two {quote} ({key}={quote}...{quote}, "
                        "a `# comment` may follow); a value cannot span lines",
                        file=f,
                        line=n,
                    )
                )
                skip_to = end
                continue
            value = m.group("value")
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        if _CONTROL_RE.search(value):
            errors.append(
                ConfigError(
                    f"{key}: the value holds a control character (a form feed, NUL, escape or line separator)",
                    f"retype the value of {key} on line {n}; copy-pasting from a document brings these along",
                    file=f,
                    line=n,
                )
            )
            continue
        if key in out:
            errors.append(
                ConfigError(f"{key} is set twice (first on line {out[key].line})", "keep one", file=f, line=n)
            )
        out[key] = EnvLine(key, value, n)
    if errors:
        raise ConfigErrors(errors) if len(errors) > 1 else errors[0]
    return out


def parse_env_file(path: Path) -> dict[str, EnvLine]:
    """`.env` read the safe way (a regular file, bounded, UTF-8; a symlink's target is never shown)."""
    missing = "run `cdb-ops init` to write one with generated secrets (or copy .env.example to .env)"
    data = read_bytes(path, ".env file", limit=1024 * 1024, missing_fix=missing)
    return parse_env_text(decode_utf8(data, path, "save the file as UTF-8 (plain ASCII values are safest)"), path)


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
