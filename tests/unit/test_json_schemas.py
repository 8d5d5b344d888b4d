"""`--json` is a contract: json_schemas/*.schema.json (JSON Schema 2020-12) describe every command's output.
Here, without Docker: every schema is a valid schema, its enums match the code, and the error shape
(plus what doctor, validate and init print without an engine) matches what the CLI really prints.
tests/integration/test_json_schemas.py checks every command's real output on the engine."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
import typing
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

import cdb_ops
from tests.helpers import no_exchange

REPO = Path(__file__).resolve().parents[2]
SCHEMAS_DIR = REPO / "json_schemas"
DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"
# file name -> the `command` values it describes
COMMAND_SCHEMAS: dict[str, set[str]] = {
    "init": {"init"},
    "plan": {"plan"},
    "rebuild": {"rebuild", "run", "down"},
    "status": {"status"},
    "validate": {"validate"},
    "doctor": {"doctor"},
    "logs": {"logs"},
    "backup": {"backup"},
    "restore": {"restore"},
    "drill": {"drill"},
    "schema": {"schema status", "schema migrate"},
    "portfolio": {"portfolio"},
    "trades": {"trades"},
    "report": {"report"},
    "trading": {"trading status", "trading halt", "trading reduce", "trading resume"},
    "journal": {"journal"},
    "rollback": {"rollback"},
    "error": {
        "init", "plan", "rebuild", "run", "down", "status", "validate", "doctor", "logs", "backup", "drill", "restore",
        "schema status", "schema migrate", "portfolio", "trades", "report",
        "trading status", "trading halt", "trading reduce", "trading resume", "journal", "rollback",
    },
}  # fmt: skip


# -- helpers (tests/integration/test_json_schemas.py imports these) --------------------------------


@cache
def load_schema(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SCHEMAS_DIR / f"{name}.schema.json").read_text())
    return data


def closed(schema: Any, root: bool = True) -> Any:
    """The schema with every described object closed (`additionalProperties: false` at the top level
    and wherever the schema lists properties and says nothing about others; free-form objects such as
    `facts` and `details` say `additionalProperties: true` and stay open). The published schemas stay
    open — fields may be added — but our output must not carry a field the schema does not document."""
    if isinstance(schema, list):
        return [closed(s, False) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: closed(v, False) for k, v in schema.items()}
    if root or (out.get("type") == "object" and "properties" in out and "additionalProperties" not in out):
        out["additionalProperties"] = False
    return out


def problems(name: str, doc: Any, *, documented: bool = True) -> list[str]:
    """Why `doc` does not match json_schemas/<name>.schema.json (empty: it does). With `documented`, also
    every field of `doc` must be described by the schema."""
    schema = load_schema(name)
    errors: list[str] = []
    for s in (schema, closed(schema)) if documented else (schema,):
        v = Draft202012Validator(s, format_checker=Draft202012Validator.FORMAT_CHECKER)
        errors += [f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message[:300]}" for e in v.iter_errors(doc)]
    return sorted(set(errors))


def schema_for(command: str, failed: bool = False) -> str:
    if failed:
        return "error"
    return next(n for n, cmds in COMMAND_SCHEMAS.items() if n != "error" and command in cmds)


# -- the schemas themselves ----------------------------------------------------------------------


def test_one_schema_per_command_and_a_readme():
    assert sorted(p.name for p in SCHEMAS_DIR.glob("*.schema.json")) == sorted(
        f"{n}.schema.json" for n in COMMAND_SCHEMAS
    )
    readme = (SCHEMAS_DIR / "README.md").read_text()
    for name in COMMAND_SCHEMAS:
        assert f"{name}.schema.json" in readme, f"json_schemas/README.md does not document {name}.schema.json"
    assert "schema_version" in readme


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "$ref"] + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


@pytest.mark.parametrize("name", sorted(COMMAND_SCHEMAS))
def test_schema_is_valid_draft_2020_12(name):
    schema = load_schema(name)
    Draft202012Validator.check_schema(schema)  # raises SchemaError with the offending keyword
    assert schema["$schema"] == DRAFT_2020_12
    assert schema["title"] and schema["description"]
    assert schema["type"] == "object"
    # fields may be added at the top level; what exists now is required
    assert schema.get("additionalProperties", True) is not False
    assert {"schema_version", "command"} <= set(schema["required"])
    assert set(schema["required"]) <= set(schema["properties"])
    assert schema["properties"]["schema_version"] == {
        "const": 1,
        "description": "bumped only on incompatible changes; fields may be added without a bump",
    }
    cmd = schema["properties"]["command"]
    assert (set(cmd["enum"]) if "enum" in cmd else {cmd["const"]}) == COMMAND_SCHEMAS[name]
    for ref in _refs(schema):  # every reference is local and resolves
        assert ref.startswith("#/$defs/"), ref
        assert ref.removeprefix("#/$defs/") in schema["$defs"], ref
    # every described object requires all it describes (the output has all of it today), except in
    # free-form objects (details, facts) and for fields documented as "only when ..."
    for node in _objects(schema):
        if node.get("additionalProperties") is True:
            continue
        for field in set(node["properties"]) - set(node.get("required", [])):
            assert node["properties"][field].get("description", "").startswith("only when"), (name, field)


def _objects(node: Any) -> list[dict[str, Any]]:
    """Every subschema that describes an object's properties (if/then clauses excluded)."""
    out: list[dict[str, Any]] = []
    if isinstance(node, dict):
        if node.get("type") == "object" and "properties" in node:
            out.append(node)
        for k, v in node.items():
            if k not in ("if", "then", "else"):
                out += _objects(v)
    elif isinstance(node, list):
        for v in node:
            out += _objects(v)
    return out


def test_shared_definitions_are_identical():
    """Each schema file stands alone; the definitions they share must not drift apart."""
    assert load_schema("rebuild")["$defs"]["error"] == load_schema("error")["$defs"]["error"]
    assert load_schema("rebuild")["$defs"]["check"] == load_schema("validate")["$defs"]["check"]
    assert load_schema("status")["$defs"]["trading_state"] == load_schema("trading")["$defs"]["trading_state"]
    backup = load_schema("backup")
    fields = {k: v for k, v in backup["properties"].items() if k not in ("schema_version", "command", "message")}
    assert load_schema("restore")["$defs"]["backup"]["properties"] == fields
    assert load_schema("restore")["$defs"]["backup"]["required"] == [k for k in backup["required"] if k in fields]


def _literal(tp: Any) -> set[str]:
    return set(typing.get_args(tp))


def test_enums_match_the_code():
    """A new action, status or error kind in cdb_ops/ must show up in the schemas (and README)."""
    from cdb_ops import errors
    from cdb_ops.model import plan as planner
    from cdb_ops.model import results

    assert set(load_schema("plan")["$defs"]["change"]["properties"]["action"]["enum"]) == _literal(planner.Action)
    assert set(load_schema("plan")["$defs"]["change"]["properties"]["resource"]["enum"]) == _literal(planner.Resource)
    assert set(load_schema("validate")["$defs"]["check"]["properties"]["status"]["enum"]) == _literal(results.Status)
    assert set(load_schema("doctor")["$defs"]["finding"]["properties"]["verdict"]["enum"]) == _literal(results.Verdict)
    state = typing.get_type_hints(results.MigrationState)["state"]
    assert set(load_schema("schema")["$defs"]["migration"]["properties"]["state"]["enum"]) == _literal(state)

    exit_codes = sorted(int(c) for c in errors.ExitCode)
    assert load_schema("rebuild")["properties"]["exit_code"]["enum"] == exit_codes
    assert load_schema("error")["$defs"]["error"]["properties"]["exit_code"]["enum"] == exit_codes[1:]

    def subclasses(cls: type[errors.CdbError]) -> list[type[errors.CdbError]]:
        return [cls] + [s for sub in cls.__subclasses__() for s in subclasses(sub)]

    assert errors.BuildFailed in subclasses(errors.CdbError)  # the engine's kinds are registered too
    in_code = {c.kind: int(c.exit_code) for c in subclasses(errors.CdbError)}
    in_code["interrupted"] = int(errors.ExitCode.INTERRUPTED)  # runner.execute's error on Ctrl-C
    in_code["internal"] = int(errors.ExitCode.INTERNAL)  # runner.execute's record of a crash (a bug)
    assert cdb_ops.JSON_SCHEMA_VERSION == 1
    err = load_schema("error")["$defs"]["error"]
    in_schema = {
        kind: rule["then"]["properties"]["exit_code"]["const"]
        for rule in err["allOf"]
        for kind in rule["if"]["properties"]["kind"]["enum"]
    }
    assert set(err["properties"]["kind"]["enum"]) == set(in_schema)
    assert in_schema == in_code


# -- the CLI's real output, without an engine --------------------------------------------------


def cdb(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    env.pop("CDB_PROJECT_DIR", None)
    return subprocess.run(
        [sys.executable, "-m", "cdb_ops", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def _project(root: Path, with_env: bool = True) -> Path:
    shutil.copytree(REPO / "playbooks", root / "playbooks")
    no_exchange(root / "playbooks" / "stack.yaml")
    for folder in ("images", "replays"):
        if (REPO / folder).exists():
            (root / folder).symlink_to(REPO / folder)
    shutil.copy(REPO / ".env.example", root / ".env.example")
    if with_env:
        r = cdb("init", cwd=root)
        assert r.returncode == 0, r.stderr
    return root


def _bad_env(p: Path) -> None:
    env = p / ".env"
    text = env.read_text()
    assert "MAX_TOTAL_EXPOSURE=" in text
    env.write_text("\n".join("MAX_TOTAL_EXPOSURE=500" if ln.startswith("MAX_TOTAL_EXPOSURE=") else ln
                             for ln in text.splitlines()) + "\n")  # fmt: skip


def _bad_playbook(p: Path) -> None:
    stack = p / "playbooks" / "stack.yaml"
    text = stack.read_text()
    assert '    ports: ["6379:6379"]' in text
    stack.write_text(text.replace('    ports: ["6379:6379"]', '    ports: ["5432:6379"]'))


def _unsigned_dump(p: Path) -> None:
    (p / "x.dump").write_bytes(b"PGDMP not really")


def _nothing(p: Path) -> None:
    pass


# (what is wrong, how to make it so, the command, exit code, error kind)
ERROR_CASES: list[tuple[str, Callable[[Path], None], list[str], int, str]] = [
    ("bad .env", _bad_env, ["rebuild"], 3, "config"),
    ("bad .env", _bad_env, ["status"], 3, "config"),
    ("bad playbook", _bad_playbook, ["plan"], 3, "config"),
    ("unknown profile", _nothing, ["rebuild", "--profile", "nope"], 2, "usage"),
    ("unknown service", _nothing, ["logs", "nosuch"], 2, "usage"),
    (".env exists", _nothing, ["init"], 6, "conflict"),
    ("no such backup", _nothing, ["restore", "missing.dump"], 3, "config"),
    ("backup without .sha256", _unsigned_dump, ["restore", "x.dump"], 3, "config"),
    ("engine down", _nothing, ["plan"], 4, "engine_unavailable"),
    ("engine down", _nothing, ["run", "rebuild"], 4, "engine_unavailable"),
    ("engine down", _nothing, ["status"], 4, "engine_unavailable"),
    ("engine down", _nothing, ["backup"], 4, "engine_unavailable"),
    ("stack down", _nothing, ["portfolio"], 1, "database"),
    ("stack down", _nothing, ["trades", "--rejected"], 1, "database"),
    ("stack down", _nothing, ["report", "--days", "3"], 1, "database"),
    ("stack down", _nothing, ["journal"], 1, "database"),
    ("unknown kind", _nothing, ["journal", "--kind", "deploy"], 2, "usage"),
    ("unknown feed", _nothing, ["portfolio", "--feed", "paper"], 2, "usage"),
    ("bad duration", _nothing, ["trades", "--since", "yesterday"], 2, "usage"),
    ("days out of range", _nothing, ["report", "--days", "0"], 2, "usage"),
]


@pytest.mark.parametrize(
    ("what", "setup", "args", "code", "kind"), ERROR_CASES, ids=[f"{c[2][0]}: {c[0]}" for c in ERROR_CASES]
)
def test_cli_error_output_matches_the_error_schema(tmp_path, what, setup, args, code, kind):
    p = _project(tmp_path)
    setup(p)
    r = cdb(*args, "--json", cwd=p)
    assert r.returncode == code, f"{what}: exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    doc = json.loads(r.stdout)
    assert problems("error", doc) == []
    assert doc["command"] == args[0]
    assert doc["error"]["kind"] == kind and doc["error"]["exit_code"] == r.returncode


def test_outside_a_project_the_error_shape_still_holds(tmp_path):
    r = cdb("plan", "--json", cwd=tmp_path)
    assert r.returncode == 3
    assert problems("error", json.loads(r.stdout)) == []


def test_several_config_problems_are_error_objects_too(tmp_path):
    """ConfigErrors nests one error object per problem in details.errors."""
    p = _project(tmp_path)
    stack = p / "playbooks" / "stack.yaml"
    text = stack.read_text()
    for name in ("postgres", "redis"):
        assert f"    container: cdb_{name}\n" in text
        text = text.replace(f"    container: cdb_{name}\n", f"    container: cdb_{name}\n    colour: blue\n")
    stack.write_text(text)
    r = cdb("plan", "--json", cwd=p)
    assert r.returncode == 3, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert problems("error", doc) == []
    nested = doc["error"]["details"].get("errors", [])
    assert len(nested) >= 2, doc  # the schema checked each of them against $defs/error


@pytest.mark.parametrize(("command", "code"), [("validate", 4), ("doctor", 4)])
def test_engine_down_is_reported_in_the_commands_own_shape(tmp_path, command, code):
    """validate and doctor report an unreachable engine as a failed check / a problem, not as an error."""
    p = _project(tmp_path)
    r = cdb(command, "--json", cwd=p)
    assert r.returncode == code, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert problems(command, doc) == []
    if command == "validate":
        assert doc["result"] == "fail" and doc["run_id"] is None and doc["checks"][0]["name"] == "engine"
    else:
        assert doc["problems"] == 1 and doc["findings"][0]["verdict"] == "problem"


def test_init_outputs_match_the_init_schema(tmp_path):
    p = _project(tmp_path, with_env=False)
    docs = []
    for args in (["init"], ["init", "--if-missing"], ["init", "--force"]):
        r = cdb(*args, "--json", cwd=p)
        assert r.returncode == 0, r.stderr
        docs.append(json.loads(r.stdout))
    for doc in docs:
        assert problems("init", doc) == []
    assert docs[0]["backup"] is None and docs[1]["backup"] is None and Path(docs[2]["backup"]).is_file()


# -- a schema that accepted anything would pass all of the above: show it does not ---------------


@pytest.fixture(scope="module")
def real_error(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    p = _project(tmp_path_factory.mktemp("err"))
    _bad_env(p)
    r = cdb("rebuild", "--json", cwd=p)
    assert r.returncode == 3
    doc: dict[str, Any] = json.loads(r.stdout)
    assert problems("error", doc) == []
    return doc


def _drop(path: str) -> Callable[[dict[str, Any]], None]:
    *parents, last = path.split(".")

    def f(doc: dict[str, Any]) -> None:
        for k in parents:
            doc = doc[k]
        del doc[last]

    return f


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    *parents, last = path.split(".")

    def f(doc: dict[str, Any]) -> None:
        for k in parents:
            doc = doc[k]
        doc[last] = value

    return f


ERROR_MUTATIONS: dict[str, Callable[[dict[str, Any]], None]] = {
    "no schema_version": _drop("schema_version"),
    "schema_version 2": _set("schema_version", 2),
    "unknown command": _set("command", "frobnicate"),
    "no error": _drop("error"),
    "error is a string": _set("error", "boom"),
    "no remedy": _drop("error.remedy"),
    "no details": _drop("error.details"),
    "details is a list": _set("error.details", []),
    "empty message": _set("error.message", ""),
    "unknown kind": _set("error.kind", "oops"),
    "exit code as text": _set("error.exit_code", "3"),
    "exit code not in the table": _set("error.exit_code", 9),
    "exit code 0": _set("error.exit_code", 0),
    "kind and exit code disagree": _set("error.exit_code", 4),
    "line is text": _set("error.details.line", "15"),
}


@pytest.mark.parametrize("mutation", sorted(ERROR_MUTATIONS))
def test_a_broken_error_output_no_longer_validates(real_error, mutation):
    doc = copy.deepcopy(real_error)
    ERROR_MUTATIONS[mutation](doc)
    assert problems("error", doc, documented=False), f"{mutation}: still valid"


def test_an_undocumented_field_is_caught_but_allowed_by_the_published_schema(real_error):
    doc = copy.deepcopy(real_error)
    doc["error"]["hint"] = "new"  # a field added without documenting it
    assert problems("error", doc, documented=False) == []  # consumers: fields may be added
    assert problems("error", doc) != []  # our tests: the schema must say so first
    top = copy.deepcopy(real_error) | {"took_seconds": 1.0}
    assert problems("error", top, documented=False) == []
    assert problems("error", top) != []
