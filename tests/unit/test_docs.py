"""The documentation agrees with the code: the generated blocks of docs/ (command reference, `.env` keys,
module map) are current, every module is in the module map, the README stays a front door, and every
link between the pages leads somewhere."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"


def _docs_tool():
    spec = importlib.util.spec_from_file_location("cdb_docs_tool", REPO / "tools" / "docs.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_blocks_match_the_code() -> None:
    stale = _docs_tool().stale_blocks()
    assert stale == [], f"regenerate with `python tools/docs.py`: {stale}"


def test_every_module_is_in_the_architecture_page() -> None:
    page = (REPO / "docs" / "architecture.md").read_text()
    for root in ("cdb_ops", "images"):
        for module in (REPO / root).rglob("*.py"):
            if "__pycache__" in module.parts:
                continue
            folder = module.parent.relative_to(REPO)
            section = page.split(f"**`{folder}/`**", 1)
            assert len(section) == 2, f"docs/architecture.md has no section for {folder}/"
            table = section[1].split("\n**`", 1)[0]
            assert f"| `{module.name}` |" in table, f"docs/architecture.md does not list {module.relative_to(REPO)}"


def test_the_command_reference_names_every_command() -> None:
    from cdb_ops.cli.app import command

    page = (REPO / "docs" / "reference.md").read_text()
    root = command()
    ctx = root.context_class(root, info_name="cdb-ops")
    for name in root.list_commands(ctx):
        assert f"### `cdb-ops {name}`" in page, f"docs/reference.md misses `cdb-ops {name}`"


def test_readme_is_a_front_door() -> None:
    text = README.read_text()
    assert len(text.splitlines()) <= 200, "the README is the front door: move reference and design to docs/"
    blocks = re.findall(r"```bash\n(.*?)```", text, re.S)
    assert "cdb-ops rebuild" in blocks[0] and "pip install" in blocks[0]
    assert "pytest" in blocks[1] and "pip install" in blocks[1]
    assert not re.search(r"\b20\d\d-\d\d-\d\d\b", text), "dated measurements belong to docs/benchmarks.md"


def test_the_ci_runs_exactly_the_readmes_test_command() -> None:
    test_command = re.findall(r"```bash\n(.*?)```", README.read_text(), re.S)[1].strip().splitlines()[-1]
    ci = (REPO / ".ci" / "run").read_text()
    assert test_command.replace("python3 -m pip install -e", "python3 -m pip install -q -e") in ci


def test_links_between_pages_resolve() -> None:
    pages = [README, REPO / "CHEAT_SHEET.md", *sorted((REPO / "docs").glob("*.md"))]
    for page in pages:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" in target:
                continue
            assert (page.parent / target).exists(), f"{page.relative_to(REPO)} links to missing {target}"
