"""The few arguments the quick paths (`cli/status_plain.py`, `cli/down_plain.py`) read without typer: the
flags and options each names, in the forms typer accepts (`--opt value`, `--opt=value`). Anything else
— another option, `--help`, a missing value — is None, and the full command parses it and says what is
wrong."""

from __future__ import annotations


def parse_plain(args: list[str], flags: frozenset[str], options: frozenset[str]) -> dict[str, list[str]] | None:
    """Each given flag and option mapped to its values (a flag: [""]); None when `args` holds anything else."""
    found: dict[str, list[str]] = {}
    i = 0
    while i < len(args):
        a = args[i]
        name, eq, value = a.partition("=")
        if a in flags:
            found.setdefault(a, []).append("")
        elif name in options:
            if not eq:
                if i + 1 >= len(args) or args[i + 1].startswith("-"):
                    return None
                i += 1
                value = args[i]
            if not value:
                return None
            found.setdefault(name, []).append(value)
        else:
            return None
        i += 1
    return found
