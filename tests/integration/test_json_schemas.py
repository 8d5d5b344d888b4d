"""Every command's real `--json` output on the engine, checked against json_schemas/<command>.schema.json:
a renamed copy of the stack (STACKS["json_schemas"]) is rebuilt once, then each
command runs against it — including the failure paths (a port held by another process, the lock held,
restore without --yes) — and every stdout must match its schema, document every field it carries, and
agree with itself (counts, exit codes). Mutating a real output must break validation."""

from __future__ import annotations

import contextlib
import copy
import fcntl
import json
import os
import select
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest
import yaml
from jsonschema import Draft202012Validator

from tests.helpers import STACKS, StackFixture, cdb
from tests.unit.test_json_schemas import load_schema, problems

pytestmark = pytest.mark.integration

STACK = STACKS["json_schemas"]


@dataclass
class Output:
    args: list[str]
    rc: int
    doc: dict[str, Any]
    schema: str


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    # not converged here: the outputs fixture runs rebuild first, as a person would
    yield from StackFixture(STACK, converge=False).around(tmp_path_factory.mktemp("jsonschemas"))


def run_json(project: Path, *args: str, expect: int | set[int] = 0, schema: str | None = None) -> Output:
    r = cdb(*args, "--json", project=project)
    allowed = {expect} if isinstance(expect, int) else expect
    if r.returncode not in allowed:  # the error and the failed checks first: the tail alone may miss them
        with contextlib.suppress(ValueError):
            doc = json.loads(r.stdout)
            failed = [c for c in doc.get("checks") or [] if c.get("status") == "fail"]
            pytest.fail(f"{args}: exit {r.returncode}\nerror: {doc.get('error')}\nfailed checks: {failed}"[:6000])
    assert r.returncode in allowed, f"{args}: exit {r.returncode}\n{r.stdout[-3000:]}\nstderr: {r.stderr[-3000:]}"
    try:
        doc = json.loads(r.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"{args}: stdout is not one JSON document:\n{r.stdout[-3000:]}\nstderr: {r.stderr[-2000:]}")
    if schema is None:
        schema = "error" if "error" in doc and "result" not in doc else _schema_of(args)
    return Output(list(args), r.returncode, doc, schema)


def _schema_of(args: tuple[str, ...]) -> str:
    return {"run": "rebuild", "schema": "schema"}.get(args[0], args[0])


def _host_port(project: Path, service: str) -> int:
    stack = yaml.safe_load((project / "playbooks" / "stack.yaml").read_text())
    return int(str(stack["services"][service]["ports"][0]).split(":")[-2])


@contextmanager
def _port_held(port: int) -> Iterator[None]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", port))
        s.listen()
        yield


@contextmanager
def _lock_held(project: Path) -> Iterator[None]:
    state = project / ".cdb"
    state.mkdir(mode=0o700, exist_ok=True)
    fd = os.open(state / "run.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.ftruncate(fd, 0)
        os.pwrite(fd, b"pid 1: the json schema test", 0)
        yield
    finally:
        os.close(fd)


@pytest.fixture(scope="module")
def outputs(project: Path) -> dict[str, Output]:
    """Every command once, in the order a person would run them, then the failure paths."""
    out: dict[str, Output] = {}
    out["plan (fresh)"] = run_json(project, "plan")
    out["rebuild"] = run_json(project, "rebuild")
    assert out["rebuild"].doc["result"] == "ok", out["rebuild"].doc["error"]
    out["rebuild (converged)"] = run_json(project, "rebuild")
    out["run"] = run_json(project, "run", "rebuild", "--phase", "cleanup", "--phase", "network")
    out["plan"] = run_json(project, "plan")
    out["status"] = run_json(project, "status")
    out["validate"] = run_json(project, "validate", expect={0, 1})
    out["doctor"] = run_json(project, "doctor", expect={0, 1})
    out["logs"] = run_json(project, "logs", "--tail", "5")
    out["logs --errors"] = run_json(project, "logs", "--errors")
    out["backup"] = run_json(project, "backup")
    dump = out["backup"].doc["path"]
    out["backup --drill"] = run_json(project, "backup", "--drill", schema="drill")
    assert out["backup --drill"].doc["ok"] is True, out["backup --drill"].doc
    out["restore (no --yes)"] = run_json(project, "restore", dump, expect=7)
    out["restore"] = run_json(project, "restore", dump, "--yes")
    out["portfolio"] = run_json(project, "portfolio")
    out["trades"] = run_json(project, "trades", "--rejected", "--versions")
    out["report"] = run_json(project, "report", "--days", "1")
    out["trading status"] = run_json(project, "trading", "status")
    out["trading reduce"] = run_json(project, "trading", "reduce", "--reason", "the json schema test", "--yes")
    out["trading resume (no --yes)"] = run_json(project, "trading", "resume", "--reason", "the test", expect=7)
    out["trading resume"] = run_json(project, "trading", "resume", "--reason", "the json schema test", "--yes")
    out["journal"] = run_json(project, "journal", "--since", "1h")
    out["schema status"] = run_json(project, "schema", "status")
    out["schema migrate"] = run_json(project, "schema", "migrate")
    # an upgrade (a risk limit changed: risk and execution drained, swapped) and its way back by hand
    env = project / ".env"
    env.write_text(env.read_text().replace("MAX_POSITION_SIZE=10.0", "MAX_POSITION_SIZE=9.0"))
    out["plan (drain)"] = run_json(project, "plan")
    assert any(c["action"] == "drain" for c in out["plan (drain)"].doc["changes"])
    out["rebuild (upgrade)"] = run_json(project, "rebuild")
    assert out["rebuild (upgrade)"].doc["upgrade"]["swaps"], out["rebuild (upgrade)"].doc
    out["rollback (no --yes)"] = run_json(project, "rollback", expect=7)
    out["rollback"] = run_json(project, "rollback", "--yes")
    out["init --if-missing"] = run_json(project, "init", "--if-missing")
    with _lock_held(project):
        out["rebuild (lock held)"] = run_json(project, "rebuild", expect=6)
    # a missing container whose host port another process holds: plan reports the conflict, rebuild
    # refuses in its preflight (its own shape, result failed), status shows the row as missing
    docker.from_env().containers.get(STACK.container("redis")).remove(force=True)  # ours, nobody else's
    with _port_held(_host_port(project, "redis")):
        out["plan (conflict)"] = run_json(project, "plan", expect=6)
        out["rebuild (conflict)"] = run_json(project, "rebuild", expect=6)
    out["status (after a failed run)"] = run_json(project, "status")
    return out


OUTPUTS = [
    "plan (fresh)", "rebuild", "rebuild (converged)", "run", "plan", "status", "validate", "doctor", "logs",
    "logs --errors", "backup", "backup --drill", "restore (no --yes)", "restore", "schema status", "schema migrate",
    "init --if-missing", "rebuild (lock held)", "plan (conflict)", "rebuild (conflict)",
    "status (after a failed run)", "portfolio", "trades", "report", "trading status", "trading reduce",
    "trading resume (no --yes)", "trading resume", "journal", "plan (drain)", "rebuild (upgrade)",
    "rollback (no --yes)", "rollback",
]  # fmt: skip


def test_every_schema_is_exercised(outputs):
    assert set(OUTPUTS) == set(outputs)
    used = {o.schema for o in outputs.values()}
    assert used == {p.name.removesuffix(".schema.json") for p in (Path(__file__).parents[2] / "json_schemas").iterdir()
                    if p.name.endswith(".schema.json")}  # fmt: skip


@pytest.mark.parametrize("name", OUTPUTS)
def test_real_output_matches_its_schema(outputs, name):
    o = outputs[name]
    assert problems(o.schema, o.doc) == [], f"{name} ({' '.join(o.args)}) vs json_schemas/{o.schema}.schema.json"
    _agrees_with_itself(o)


def _agrees_with_itself(o: Output) -> None:
    """What a schema cannot say: counts match the lists, the exit code matches the document."""
    d = o.doc
    if o.schema == "error":
        assert d["error"]["exit_code"] == o.rc
        typed = " ".join(o.args[:2]) if o.args[0] in ("schema", "trading") else o.args[0]
        assert d["command"] == typed
        return
    if o.schema == "plan":
        assert d["pending"] == sum(c["action"] not in ("ok", "orphan", "conflict", "keep") for c in d["changes"])
        assert d["conflicts"] == sum(c["action"] == "conflict" for c in d["changes"])
        assert o.rc == (6 if d["conflicts"] else 0)
    elif o.schema == "rebuild":
        assert d["command"] == o.args[0] and d["exit_code"] == o.rc
        assert d["changed"] == sum(s["action"] not in ("ok", "orphan", "wait", "keep") for s in d["steps"])
        assert {s["phase"] for s in d["steps"]} <= set(d["phases"])
    elif o.schema == "validate":
        for k in ("pass", "warn", "fail", "skip"):
            assert d["counts"][k] == sum(c["status"] == k for c in d["checks"])
        assert o.rc == (1 if d["counts"]["fail"] else 0)
    elif o.schema == "doctor":
        assert d["problems"] == sum(f["verdict"] == "problem" for f in d["findings"])
        assert o.rc == (1 if d["problems"] else 0)
    elif o.schema == "schema":
        assert d["pending"] == sum(m["state"] == "pending" for m in d["migrations"])
    elif o.schema == "logs":
        assert {ln["service"] for ln in d["lines"]} <= set(d["services"])


def test_the_outputs_cover_the_interesting_values(outputs):
    """The schemas' enums are exercised by real values, not only by their happy path."""
    actions = {c["action"] for n in ("plan (fresh)", "plan", "plan (conflict)") for c in outputs[n].doc["changes"]}
    assert {"create", "ok", "conflict"} <= actions
    steps = {s["action"] for s in outputs["rebuild"].doc["steps"]}
    assert {"create", "wait", "migrate"} <= steps
    failed = outputs["rebuild (conflict)"].doc
    assert failed["result"] == "failed" and failed["error"]["kind"] == "conflict"
    assert failed["error"]["details"]["conflicts"]
    assert outputs["rebuild (lock held)"].doc["error"]["kind"] == "lock_held"
    assert outputs["restore (no --yes)"].doc["error"]["kind"] == "needs_confirmation"
    rows = outputs["status (after a failed run)"].doc
    assert any(r["state"] == "missing" for r in rows["services"])
    assert rows["last_run"]["result"] == "failed" and rows["last_run"]["error"]
    assert outputs["logs"].doc["lines"], "no log lines to check"
    kinds = {e["kind"] for e in outputs["journal"].doc["entries"]}
    assert {"rebuild", "state", "restore"} <= kinds, kinds  # live sets of both kinds of writer were checked
    assert outputs["status"].doc["trading"]["books"], outputs["status"].doc["trading"]


def test_logs_follow_prints_json_lines_of_the_line_shape(project, outputs):
    """`logs --follow --json` has no envelope: one $defs/line object per line."""
    env = {**os.environ, "CDB_PROJECT_DIR": str(project)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cdb_ops", "logs", "postgres", "--follow", "--since", "1h", "--json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        assert ready, "logs --follow printed nothing within 60 s"
        first = proc.stdout.readline()  # type: ignore[union-attr]
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    logs = load_schema("logs")
    line_schema = {"$schema": logs["$schema"], "$defs": logs["$defs"], "$ref": "#/$defs/line"}
    v = Draft202012Validator(line_schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    doc = json.loads(first)
    assert [e.message for e in v.iter_errors(doc)] == []
    assert doc["service"] == "postgres"


# -- a schema that accepted anything would pass all of the above: mutate real output ---------------


def _walk(doc: Any, path: str) -> tuple[Any, Any]:
    *parents, last = [int(p) if p.lstrip("-").isdigit() else p for p in path.split(".")]
    for k in parents:
        doc = doc[k]
    return doc, last


def _set(path: str, value: Any):  # noqa: ANN202
    def f(doc: Any) -> None:
        parent, key = _walk(doc, path)
        parent[key] = value

    return f


def _drop(path: str):  # noqa: ANN202
    def f(doc: Any) -> None:
        parent, key = _walk(doc, path)
        del parent[key]

    return f


MUTATIONS = [
    ("plan (fresh)", "unknown action", _set("changes.0.action", "explode")),
    ("plan (fresh)", "unknown resource", _set("changes.0.resource", "pod")),
    ("plan (fresh)", "no pending count", _drop("pending")),
    ("plan (fresh)", "reason missing", _drop("changes.0.reason")),
    ("plan", "feed is a number", _set("feed", 3)),
    ("rebuild", "unknown step action", _set("steps.0.action", "teleport")),
    ("rebuild", "unknown result", _set("result", "done")),
    (
        "rebuild",
        "ok with an error",
        _set("error", {"kind": "error", "message": "x", "remedy": "", "exit_code": 1, "details": {}}),
    ),  # fmt: skip
    ("rebuild", "run_id not a uuid", _set("run_id", "run-1")),
    ("rebuild", "started_at not a time", _set("started_at", "yesterday")),
    ("rebuild", "no steps", _drop("steps")),
    ("rebuild", "schema_version 2", _set("schema_version", 2)),
    ("rebuild (conflict)", "failed without an error", _set("error", None)),
    ("rebuild (conflict)", "error without a remedy", _drop("error.remedy")),
    ("status", "unknown state", _set("services.0.state", "sleeping")),
    ("status", "negative restarts", _set("services.0.restarts", -1)),
    ("status", "port without a binding", _set("services.0.ports", ["5432"])),
    ("status", "no last_run", _drop("last_run")),
    ("status (after a failed run)", "missing but with uptime", _set("services.-1.uptime_seconds", 3.0)),
    ("validate", "unknown check status", _set("checks.0.status", "maybe")),
    ("validate", "count as text", _set("counts.fail", "0")),
    ("validate", "pass with a failure", _set("counts.fail", 1)),
    ("validate", "check without facts", _drop("checks.0.facts")),
    ("doctor", "unknown verdict", _set("findings.0.verdict", "fine")),
    ("doctor", "no findings", _set("findings", [])),
    ("logs", "ts not a time", _set("lines.0.ts", "yesterday")),
    ("logs", "errors_only as text", _set("errors_only", "no")),
    ("backup", "short sha256", _set("sha256", "abc")),
    ("backup", "negative size", _set("size", -1)),
    ("restore", "negative row count", _set("rows.orders", -1)),
    ("restore", "a table missing", _drop("rows.trades")),
    ("restore", "unknown backup kind", _set("safety_backup.kind", "tarball")),
    ("restore (no --yes)", "wrong exit code for the kind", _set("error.exit_code", 1)),
    ("schema status", "unknown migration state", _set("migrations.0.state", "done")),
    ("schema status", "checksum not hex", _set("migrations.0.checksum", "XYZ")),
    ("schema status", "applied without a time", _set("migrations.0.applied_at", None)),
    ("schema migrate", "wrong command", _set("command", "migrate")),
    ("init --if-missing", "path is a number", _set("path", 5)),
    ("init --if-missing", "no backup field", _drop("backup")),
]


@pytest.mark.parametrize(("name", "what", "mutate"), MUTATIONS, ids=[f"{n}: {w}" for n, w, _ in MUTATIONS])
def test_a_mutated_real_output_no_longer_validates(outputs, name, what, mutate):
    o = outputs[name]
    assert problems(o.schema, o.doc) == []
    doc = copy.deepcopy(o.doc)
    if name == "status (after a failed run)":  # the missing row last
        doc["services"].sort(key=lambda r: r["state"] == "missing")
    mutate(doc)
    assert problems(o.schema, doc, documented=False), f"{name}: still valid after '{what}'"


def test_an_added_field_is_allowed_but_must_be_documented(outputs):
    doc = copy.deepcopy(outputs["plan"].doc)
    doc["changes"][0]["estimate_seconds"] = 1.0
    assert problems("plan", doc, documented=False) == []  # a consumer's view: fields may be added
    assert problems("plan", doc) != []  # ours: add it to json_schemas/plan.schema.json first
