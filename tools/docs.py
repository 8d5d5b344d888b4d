"""The generated parts of docs/: the command reference (from the CLI itself), the `.env` table (from
the one rules table, cdb_common.envrules) and the module map (every module's first docstring line).

    python tools/docs.py          # rewrite every generated block in place
    python tools/docs.py --check  # exit 1 naming each stale block (tests/unit/test_docs.py runs this)

A generated block sits between `<!-- generated: NAME -->` and `<!-- end: NAME -->` in a docs file; the
text around it is written by hand."""

from __future__ import annotations

import ast
import os
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "images" / "common")]

DOCS = REPO / "docs"
BLOCK_RE = re.compile(r"(<!-- generated: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- end: (?P=name) -->)", re.S)
# where the module map looks: the CLI package and the services' sources (not tests, not bench)
MODULE_ROOTS = ("cdb_ops", "images")


def _walk_commands(cmd: Any, ctx: Any, path: list[str]) -> Iterator[tuple[list[str], str]]:
    # typer vendors its own click: its Context class is found through the command, not imported
    yield path, cmd.get_help(ctx)
    if hasattr(cmd, "list_commands"):
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            if sub is None or sub.hidden:
                continue
            sub_ctx = type(ctx)(sub, info_name=name, parent=ctx, terminal_width=100, max_content_width=100)
            yield from _walk_commands(sub, sub_ctx, [*path, name])


def cli_reference() -> str:
    """Every command's `--help`, as `cdb-ops … --help` prints it at 100 columns."""
    from cdb_ops.cli.app import command

    root = command()
    ctx = root.context_class(root, info_name="cdb-ops", terminal_width=100, max_content_width=100)
    parts = []
    for path, text in _walk_commands(root, ctx, ["cdb-ops"]):
        title = " ".join(path)
        parts.append(f"### `{title}`\n\n```text\n{text.rstrip()}\n```\n")
    return "\n".join(parts)


def env_table() -> str:
    """The `.env` keys: type, default, bounds, unit and who reads each, from cdb_common.envrules."""
    from cdb_common import envrules

    rows = ["| key | kind | default | allowed | read by | required |", "|---|---|---|---|---|---|"]
    for rule in envrules.RULES.values():
        allowed = []
        if rule.choices:
            allowed.append(" / ".join(rule.choices))
        if rule.low is not None:
            allowed.append(f"{'>' if rule.low_open else '≥'} {rule.low}")
        if rule.high is not None:
            allowed.append(f"≤ {rule.high}")
        if rule.kind == "secret":
            allowed.append(f"≥ {envrules.SECRET_MIN_LENGTH} characters, not a published password")
        unit = f" ({rule.unit})" if rule.unit else ""
        rows.append(
            f"| `{rule.key}` | {rule.kind}{unit} | {rule.default if rule.default is not None else '—'} | "
            f"{', '.join(allowed) or 'any'} | {', '.join(rule.read_by) or '—'} | {'yes' if rule.required else 'no'} |"
        )
    return "\n".join(rows) + "\n"


def _first_doc_line(path: Path) -> str:
    try:
        doc = ast.get_docstring(ast.parse(path.read_text()))
    except SyntaxError:
        doc = None
    if not doc:
        return "(no module docstring)"
    first = doc.strip().split("\n\n")[0]
    return " ".join(first.split()).replace("|", "\\|")


def module_map() -> str:
    """Every Python module of the CLI and the services, grouped by folder, with its first docstring line."""
    out: list[str] = []
    for root in MODULE_ROOTS:
        files = sorted(
            p
            for p in (REPO / root).rglob("*.py")
            if "__pycache__" not in p.parts and not any(part.startswith(".") for part in p.parts)
        )
        folders: dict[str, list[Path]] = {}
        for f in files:
            folders.setdefault(str(f.parent.relative_to(REPO)), []).append(f)
        for folder in sorted(folders):
            out.append(f"\n**`{folder}/`**\n\n| module | what it holds |\n|---|---|")
            for f in folders[folder]:
                out.append(f"| `{f.name}` | {_first_doc_line(f)} |")
    return "\n".join(out).lstrip("\n") + "\n"


GENERATORS: dict[str, Callable[[], str]] = {
    "cli-reference": cli_reference,
    "env-table": env_table,
    "module-map": module_map,
}


def render(text: str) -> str:
    def fill(m: re.Match[str]) -> str:
        body = GENERATORS[m.group("name")]()
        return f"{m.group(1)}{body}{m.group(4)}"

    return BLOCK_RE.sub(fill, text)


def stale_blocks() -> list[str]:
    stale = []
    for doc in sorted(DOCS.glob("*.md")):
        text = doc.read_text()
        for m in BLOCK_RE.finditer(text):
            want = GENERATORS[m.group("name")]()
            if m.group("body") != want:
                stale.append(f"{doc.relative_to(REPO)}: block {m.group('name')}")
    return stale


def main(argv: list[str]) -> int:
    os.environ.setdefault("COLUMNS", "100")
    if "--check" in argv:
        stale = stale_blocks()
        for s in stale:
            print(f"stale: {s} — run `python tools/docs.py`", file=sys.stderr)
        return 1 if stale else 0
    for doc in sorted(DOCS.glob("*.md")):
        text = doc.read_text()
        new = render(text)
        if new != text:
            doc.write_text(new)
            print(f"wrote {doc.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
