"""The layering rule of cdb_ops/ (docs/architecture.md "Layout"), checked by parsing every module's imports: a module
imports only the shared leaves, `model/`, its own layer and the layers to its left in the flow
observe -> plan -> apply -> report. A new import against the flow fails here, not in review."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "cdb_ops"

# left to right; layers of one rank (engine, db: the two adapters to the outside) do not import each other
RANK = {
    "model": 1,
    "load": 2,
    "engine": 3,
    "db": 3,
    "plan": 4,
    "checks": 5,
    "apply": 6,
    "views": 7,
    "report": 8,
    "cli": 9,
}
LEAVES = {"cdb_ops", "cdb_ops.errors", "cdb_ops.redact", "cdb_ops.fsutil", "cdb_ops.__main__"}
MAX_LINES = 400


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in RANK) else None


def _imports(path: Path) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.startswith("cdb_ops")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cdb_ops"):
            if node.module == "cdb_ops":  # `from cdb_ops import x`: x may be a module
                out += [(node.lineno, f"cdb_ops.{a.name}") for a in node.names if (PACKAGE / a.name).exists()]
                out += [(node.lineno, "cdb_ops") for a in node.names if not (PACKAGE / a.name).exists()]
            else:
                out.append((node.lineno, node.module))
    return out


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_module_belongs_to_a_layer_or_is_a_shared_leaf():
    stray = [m for m in map(_module_name, _modules()) if m not in LEAVES and _layer(m) not in RANK]
    assert stray == [], f"put these in a layer folder (docs/architecture.md, Layout): {stray}"


def _against_the_flow(path: Path, me: str) -> list[str]:
    wrong = []
    mine = _layer(me)
    for line, target in _imports(path):
        theirs = _layer(target)
        if theirs is None:
            if target not in LEAVES:
                wrong.append(f"{me}:{line} imports unknown {target}")
        elif mine is None:  # a shared leaf imports no layer (cdb_ops/__main__ may start the CLI)
            if me != "cdb_ops.__main__" or theirs != "cli":
                wrong.append(f"{me}:{line}: leaf {me} imports {target}")
        elif theirs not in (mine, "model") and RANK[theirs] >= RANK[mine]:
            wrong.append(f"{me}:{line}: {mine}/ imports {target} ({theirs}/ is not left of {mine}/)")
    return wrong


def test_imports_follow_the_flow():
    wrong = [w for path in _modules() for w in _against_the_flow(path, _module_name(path))]
    assert wrong == [], "imports against the flow:\n" + "\n".join(wrong)


def test_model_is_plain_data():
    """model/ imports nothing of cdb_ops but model/ and the root package (no layer, no errors, no I/O)."""
    for path in (PACKAGE / "model").glob("*.py"):
        for line, target in _imports(path):
            assert target == "cdb_ops" or target.startswith("cdb_ops.model"), f"{path.name}:{line} imports {target}"


def test_no_module_is_over_the_size_limit():
    big = {
        str(p.relative_to(PACKAGE.parent)): n for p in _modules() if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert big == {}, f"split these (about {MAX_LINES} lines is a module's limit): {big}"


def test_the_rule_catches_an_import_against_the_flow(tmp_path: Path):
    """The checker itself: the planner importing the apply layer, or one adapter importing the other, is
    reported; importing model/ and layers to the left is not."""
    bad = tmp_path / "bad.py"
    bad.write_text("from cdb_ops.apply.runner import execute\nimport cdb_ops.db.migrations\n")
    assert len(_against_the_flow(bad, "cdb_ops.plan.planner")) == 1  # apply/ is right of plan/; db/ left
    assert len(_against_the_flow(bad, "cdb_ops.engine.docker")) == 2
    good = tmp_path / "good.py"
    good.write_text("from cdb_ops.model.plan import Plan\nfrom cdb_ops.load.desired import DesiredStack\n")
    assert _against_the_flow(good, "cdb_ops.plan.planner") == []
    assert len(_against_the_flow(good, "cdb_ops.errors")) == 2  # a leaf imports no layer


def test_the_root_and_the_session_import_only_what_they_use():
    """Commands are registered lazily: the root (cli/__init__.py, cli/app.py) imports no command module —
    a command's module is imported by name when it runs. Phases are selected in load/, so opening a session
    imports nothing of apply/."""
    app = {t for _, t in _imports(PACKAGE / "cli" / "app.py")}
    assert app <= {"cdb_ops", "cdb_ops.errors", "cdb_ops.cli.invocation"}, app
    root = {t for _, t in _imports(PACKAGE / "cli" / "__init__.py")}
    # (cdb_ops.errors: the exit code of a Ctrl-C during the quick status, a leaf module of constants; the
    # quick `status` and `down`, which fall back to the app)
    assert root <= {
        "cdb_ops",
        "cdb_ops.cli.app",
        "cdb_ops.cli.status_plain",
        "cdb_ops.cli.down_plain",
        "cdb_ops.errors",
    }
    for name in ("session", "invocation", "options"):
        found = _imports(PACKAGE / "cli" / f"{name}.py")
        wrong = [f"{line}: {t}" for line, t in found if t.startswith("cdb_ops.apply")]
        assert wrong == [], f"cli/{name}.py imports apply/: {wrong}"


def test_a_commands_help_imports_no_session_engine_or_database():
    """`cdb-ops X --help` reads typer's declarations of X's options and nothing else: no session (the
    playbook models), no docker-py, no psycopg — each command in a fresh interpreter, as a user runs it."""
    from cdb_ops.cli.app import COMMANDS

    heavy = ("cdb_ops.cli.session", "docker", "psycopg", "redis")
    code = (
        "import contextlib, io, sys\n"
        "from cdb_ops.cli.app import run\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    rc = run(sys.argv[1:])\n"
        f"print(rc, *[m for m in {heavy!r} if m in sys.modules])\n"
    )
    loaded = {}
    for name in sorted(COMMANDS):
        out = subprocess.run([sys.executable, "-c", code, name, "--help"], capture_output=True, text=True, check=True)
        loaded[name] = out.stdout.split()
    assert {n: v for n, v in loaded.items() if v != ["0"]} == {}


def _graph() -> dict[str, set[str]]:
    """module -> the cdb_ops modules it imports (at any depth of its code: a function-level import counts too,
    `from pkg import module` resolved to the module)."""
    names = {_module_name(p) for p in _modules()}
    graph: dict[str, set[str]] = {}
    for path in _modules():
        me = _module_name(path)
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cdb_ops"):
                for a in node.names:
                    sub = f"{node.module}.{a.name}"
                    deps.add(sub if sub in names else node.module)
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name in names}
        graph[me] = {d for d in deps if d in names and d != me and not me.startswith(d + ".")} - {"cdb_ops"}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for d in sorted(graph.get(n, ())):
            if state.get(d) == 1:
                return stack[stack.index(d) :] + [d]
            if d not in state and (found := visit(d)):
                return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state and (found := visit(n)):
            return found
    return None


def test_no_import_cycle():
    """No two modules import each other, directly or around a loop (a package's __init__ importing its own
    modules is not a cycle: a module importing its package is left out)."""
    cycle = _cycle(_graph())
    assert cycle is None, " -> ".join(cycle or [])


def test_the_cycle_check_finds_one():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_a_run_imports_only_the_phase_kinds_its_playbook_uses():
    """`down` is one cleanup phase: it must not pay for the image builder or validate's checks."""
    import subprocess
    import sys

    code = (
        "import sys; from cdb_ops.apply.phases import registry, KINDS\n"
        "assert list(registry(['cleanup'])) == ['cleanup']\n"
        "assert not {'cdb_ops.apply.phases.images', 'cdb_ops.apply.phases.validate'} & set(sys.modules)\n"
        "assert list(registry()) == list(KINDS)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
