"""`.env`'s syntax: KEY=VALUE lines read with their line numbers, refused with the file, the line and the fix
— and never a fragment of a value. What `load.settings` validates, and all the quick `status` path needs
(it reads no rule beyond the key names, so it skips the settings' types, bounds and secret generation)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

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


def _known(key: str) -> bool:
    """Whether the rules table names `key` (imported only for a broken line: reading a good .env, as every
    `status` does, needs no rules)."""
    from cdb_common.envrules import RULES

    return key in RULES


def _leading_key(line: str) -> str:
    """'POSTGRES_PASSWORD' of 'POSTGRES_PASSWORD: s3cret' — what a message may name of a broken line: only
    a name the rules table knows. Anything else on a broken line may be (part of) a password: the rest
    of a value that ran over two lines, a secret pasted on its own line."""
    m = _LEADING_KEY_RE.match(line)
    return f" (it starts with {m.group(0)!r})" if m and _known(m.group(0)) else ""


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
            shown = f" {key!r}" if _known(key) else _leading_key(key)
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
