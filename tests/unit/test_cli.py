"""The CLI as a user runs it: exit codes and messages for bad input, without a Docker engine."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from cdb_ops.cli import dispatch
from tests.helpers import no_exchange

REPO = Path(__file__).resolve().parents[2]


def cdb(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "DOCKER_HOST": "unix:///nonexistent/docker.sock", **(env or {})}
    full_env.pop("CDB_PROJECT_DIR", None)
    return subprocess.run(
        [sys.executable, "-m", "cdb_ops", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def _project(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "playbooks", tmp_path / "playbooks")
    no_exchange(tmp_path / "playbooks" / "stack.yaml")
    (tmp_path / "images").symlink_to(REPO / "images")
    (tmp_path / "replays").symlink_to(REPO / "replays")
    shutil.copy(REPO / ".env.example", tmp_path / ".env.example")
    return tmp_path


def test_init_writes_private_env_and_refuses_to_overwrite(tmp_path):
    p = _project(tmp_path)
    r = cdb("init", cwd=p)
    assert r.returncode == 0, r.stderr
    env = p / ".env"
    assert oct(env.stat().st_mode & 0o777) == "0o600"
    first = env.read_text()
    assert "POSTGRES_PASSWORD=" in first and "POSTGRES_PASSWORD=\n" not in first
    r = cdb("init", cwd=p)
    assert r.returncode == 6
    assert "already exists" in r.stderr and "--force" in r.stderr
    assert env.read_text() == first
    r = cdb("init", "--if-missing", cwd=p)
    assert r.returncode == 0 and "kept it" in r.stdout
    assert env.read_text() == first
    r = cdb("init", "--force", "--json", cwd=p)
    assert r.returncode == 0
    out = json.loads(r.stdout)
    backup = Path(out["backup"])
    assert backup.read_text() == first and oct(backup.stat().st_mode & 0o777) == "0o600"
    assert env.read_text() != first
    secret = next(ln for ln in first.splitlines() if ln.startswith("POSTGRES_PASSWORD=")).split("=", 1)[1]
    assert secret not in r.stdout + r.stderr


def test_bad_env_is_a_config_error_before_the_engine_is_asked(tmp_path):
    p = _project(tmp_path)
    assert cdb("init", cwd=p).returncode == 0
    env = p / ".env"
    env.write_text(env.read_text().replace("MAX_TOTAL_EXPOSURE=50.0", "MAX_TOTAL_EXPOSURE=500"))
    r = cdb("rebuild", cwd=p)
    assert r.returncode == 3, r.stderr
    assert f"{env}:" in r.stderr and "MAX_TOTAL_EXPOSURE: 500 is too large" in r.stderr
    assert "fix:" in r.stderr
    assert not (p / ".cdb").exists()  # nothing was changed, not even our state dir


def test_bad_playbook_is_a_config_error_with_line(tmp_path):
    p = _project(tmp_path)
    stack = p / "playbooks" / "stack.yaml"
    stack.write_text(stack.read_text().replace('    ports: ["6379:6379"]', '    ports: ["5432:6379"]'))
    r = cdb("plan", "--json", cwd=p)
    assert r.returncode == 3
    out = json.loads(r.stdout)
    assert out["schema_version"] == 1 and out["error"]["kind"] == "config"
    assert "host port 5432 is published by both 'postgres' and 'redis'" in out["error"]["message"]
    assert "stack.yaml:" in out["error"]["message"]


def test_engine_unreachable_has_its_own_exit_code(tmp_path):
    p = _project(tmp_path)
    assert cdb("init", cwd=p).returncode == 0
    r = cdb("rebuild", cwd=p)
    assert r.returncode == 4, r.stderr
    assert "Docker engine unreachable" in r.stderr and "docker info" in r.stderr


def test_usage_errors_exit_2(tmp_path):
    p = _project(tmp_path)
    assert cdb("rebuild", "--no-such-flag", cwd=p).returncode == 2
    assert cdb("init", cwd=p).returncode == 0
    r = cdb("rebuild", "--profile", "nope", cwd=p)
    assert r.returncode == 2 and "unknown profile 'nope'" in r.stderr


def test_outside_a_project(tmp_path):
    r = cdb("plan", cwd=tmp_path)
    assert r.returncode == 3 and "no playbooks/stack.yaml" in r.stderr


def test_help_lists_exit_codes(tmp_path):
    r = cdb("--help", cwd=tmp_path)
    assert r.returncode == 0
    for code in ("0", "1", "2", "3", "4", "5", "6", "7", "70", "130"):
        assert f"\n{code:>5}  " in r.stdout or f" {code}  " in r.stdout


def test_help_lists_every_command_with_its_own_summary():
    """`--help` lists commands from app.COMMANDS without importing them: each summary must be the
    command's own (the first paragraph of its help), or `--help` and `cdb-ops CMD --help` would disagree."""
    from cdb_ops.cli.app import COMMANDS, load_command

    for name, (_, _, summary) in COMMANDS.items():
        command = load_command(name)
        assert command.name == name
        assert " ".join((command.help or "").split("\n\n")[0].split()) == summary, name


def _imported(*args: str, cwd: Path) -> set[str]:
    """Every module a fresh process has loaded once it ran `cdb-ops ARGS` (sys.modules, so modules
    imported through importlib count too, unlike -X importtime's list)."""
    env = {**os.environ, "DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    env.pop("CDB_PROJECT_DIR", None)
    code = (
        "import json, sys; from cdb_ops.cli import dispatch; dispatch(sys.argv[1:]); "
        "print(json.dumps(sorted(sys.modules)), file=sys.stderr)"
    )
    r = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    return set(json.loads(r.stderr.splitlines()[-1]))


def test_a_command_imports_only_what_it_uses(tmp_path):
    heavy = {"docker", "pydantic", "psycopg", "redis", "httpx", "yaml", "rich"}
    others = {f"cdb_ops.cli.{m}" for m in ("converge", "down", "checks", "trading", "logs", "export", "init")}
    for args in (["--help"], ["--version"]):
        loaded = _imported(*args, cwd=tmp_path)
        assert "cdb_ops" in loaded, args  # (the measurement saw the package at all)
        assert not heavy & loaded, (args, heavy & loaded)
        assert not others & loaded, (args, others & loaded)
    assert "typer" not in _imported("--version", cwd=tmp_path)
    loaded = _imported("status", "--help", cwd=tmp_path)  # its own module, no other command's
    assert "cdb_ops.cli.status" in loaded and not others & loaded, others & loaded


HEAVY = ("typer", "rich", "pydantic", "docker", "requests", "yaml", "psycopg", "redis", "httpx")


def _heavy_after_importing(modules: list[str], cwd: Path) -> list[str]:
    """The heavy libraries a fresh interpreter has loaded after importing `modules`."""
    code = f"import json, sys; import {', '.join(modules)}; print(json.dumps(sorted(sys.modules)))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=cwd)
    assert r.returncode == 0, r.stderr
    return sorted({m.split(".")[0] for m in json.loads(r.stdout)} & set(HEAVY))


def test_the_status_path_imports_no_typer_rich_pydantic_or_docker(tmp_path):
    """The quick status path (cli/status_plain.py and what it imports), in this very interpreter: a fresh import
    of it must not pull in the libraries that make a command slow to start."""
    modules = ["cdb_ops.cli.status_plain", "cdb_ops.engine.socket_reader", "cdb_ops.engine.cgroups"]
    modules += ["cdb_ops.load.outline", "cdb_ops.load.settings", "cdb_ops.views.status"]
    modules += ["cdb_ops.report.status_text", "cdb_ops.report.document"]
    assert _heavy_after_importing(modules, tmp_path) == []


def test_the_down_path_imports_no_typer_rich_pydantic_or_docker(tmp_path):
    """The same for the quick `down` (cli/down_plain.py and everything it imports as it runs)."""
    modules = ["cdb_ops.cli.down_plain", "cdb_ops.engine.socket_engine", "cdb_ops.apply.stopping"]
    modules += ["cdb_ops.apply.lock", "cdb_ops.apply.rotate", "cdb_ops.load.outline", "cdb_ops.load.envfile"]
    modules += ["cdb_ops.load.lastrun", "cdb_ops.model.results", "cdb_ops.model.labels"]
    modules += ["cdb_ops.report.run_text", "cdb_ops.report.progress", "cdb_ops.report.document"]
    assert _heavy_after_importing(modules, tmp_path) == []


def test_ctrl_c_in_a_quick_path_ends_the_command_with_its_exit_code(monkeypatch, capsys):
    import cdb_ops.cli.down_plain as down_plain

    def interrupted(args: list[str]) -> int | None:
        raise KeyboardInterrupt

    monkeypatch.setattr(down_plain, "quick_down", interrupted)
    assert dispatch(["down"]) == 130
    assert "run the same command again" in capsys.readouterr().err


def test_read_commands_do_not_read_what_only_a_run_needs(tmp_path):
    """A build context that cannot be read, or a broken migration, stops `rebuild` before the engine is
    asked (exit 3, naming the file), but not `portfolio` or `status`: they go on to the engine or the
    database (here: neither answers, exit 4 or 1)."""
    p = _project(tmp_path)
    shutil.copytree(REPO / "schema", p / "schema")
    assert cdb("init", cwd=p).returncode == 0
    stack = p / "playbooks" / "stack.yaml"
    stack.write_text(stack.read_text().replace("context: images/redis,", "context: images/no-such-folder,"))
    for args in (["portfolio"], ["status"], ["status", "--json"], ["trades"], ["schema", "status"]):
        r = cdb(*args, cwd=p)
        assert r.returncode in (1, 4) and "no-such-folder" not in r.stderr, (args, r.stderr)
    r = cdb("rebuild", cwd=p)
    assert r.returncode == 3 and "images/no-such-folder" in r.stderr, r.stderr
    stack.write_text(stack.read_text().replace("context: images/no-such-folder,", "context: images/redis,"))
    first = sorted((p / "schema").glob("*.sql"))[0]
    first.write_bytes(b"\xff\xfe not utf-8")
    r = cdb("portfolio", cwd=p)
    assert r.returncode == 1 and "cannot read the paper account" in r.stderr, r.stderr
    r = cdb("rebuild", cwd=p)
    assert r.returncode == 3 and first.name in r.stderr, r.stderr
    # `down` applies no migration: the broken file does not stop it (here it reaches for the engine)
    r = cdb("down", cwd=p)
    assert r.returncode == 4, r.stderr


def _leaving(body: str) -> subprocess.CompletedProcess[str]:
    code = f"import atexit, sys, threading, time\nfrom cdb_ops.cli import leave\n{body}"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)


def test_a_command_ends_without_teardown_but_with_its_output_exit_code_and_atexit_handlers():
    """`leave` skips the interpreter's teardown; the output, the code and atexit (coverage's data, logging)
    are still delivered, in that order as Python would."""
    r = _leaving("atexit.register(lambda: print('atexit ran'))\nprint('out')\nprint('err', file=sys.stderr)\nleave(3)")
    assert (r.returncode, r.stdout, r.stderr) == (3, "out\natexit ran\n", "err\n")


def test_a_command_that_left_a_thread_running_waits_for_it_as_python_would():
    r = _leaving(
        "t = threading.Thread(target=lambda: (time.sleep(0.3), print('thread done', flush=True)))\nt.start()\nleave(4)"
    )
    assert (r.returncode, r.stdout) == (4, "thread done\n")


def test_under_a_profiler_a_command_ends_the_normal_way_so_the_profile_is_written(tmp_path):
    out = tmp_path / "cdb.prof"
    code = "import sys\nfrom cdb_ops.cli import leave\nleave(0)\n"
    script = tmp_path / "cmd.py"
    script.write_text(code)
    r = subprocess.run([sys.executable, "-m", "cProfile", "-o", str(out), str(script)], capture_output=True, timeout=30)
    assert r.returncode == 0 and out.stat().st_size > 0, r.stderr
