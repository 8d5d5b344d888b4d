"""Every bad input, through the real CLI in-process (issue 15): a clear refusal that names the file and
line and the fix, shows no secret, changes nothing, and never crashes or hangs.

Each case breaks one thing in a fresh copy of the project and runs one command twice — as typed and
with `--json` — with the engine unreachable (DOCKER_HOST is a dead unix socket in the temp dir), so a
case that got past validation would exit 4. For each run: the exit code; `file:line` (and the fix)
in the message; every file under the temp dir hashed before and after (nothing written, no `.cdb/`);
no secret value (the .env passwords, a custom secret, the content a symlinked .env points at) in
stdout, stderr or the JSON; and the JSON run's stdout is exactly one document valid against
json_schemas/error.schema.json. `cdb_ops.cli.app.run` is `main()` without `sys.exit`, so the corpus runs
in-process and takes a few seconds: `python3 -m pytest tests/unit/test_bad_input_corpus.py -q`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import jsonschema
import pytest

from cdb_ops.cli.app import run
from tests.helpers import no_exchange
from tests.unit.conftest import ENV

REPO = Path(__file__).resolve().parents[2]
STACK_TEXT = (REPO / "playbooks" / "stack.yaml").read_text()
ERROR_SCHEMA = jsonschema.Draft202012Validator(json.loads((REPO / "json_schemas" / "error.schema.json").read_text()))
# the .env `cdb-ops init` writes holds GRAFANA_PASSWORD too (logs selects every profile, monitoring's too)
FULL_ENV = ENV + "GRAFANA_PASSWORD=unit-test-grafana-password-0123456789\n"
PASSWORDS = [ln.split("=", 1)[1] for ln in FULL_ENV.splitlines() if "PASSWORD=" in ln]
CUSTOM_SECRET = "custom-api-key-value-0123456789"
SYMLINK_CONTENT = "content-of-the-file-env-points-at-4711"
NO_ENGINE = 4


@dataclass
class Proj:
    """The temp project a case breaks; `where` is the file:line the message must name (relative)."""

    root: Path
    where: str | None = None
    secrets: list[str] = field(default_factory=list)

    @property
    def stack(self) -> Path:
        return self.root / "playbooks" / "stack.yaml"

    def edit_stack(self, old: str, new: str, needle: str | None = None) -> str:
        text = self.stack.read_text()
        assert old in text, old
        text = text.replace(old, new, 1)
        self.stack.write_text(text)
        if needle is not None:
            self.where = f"playbooks/stack.yaml:{line_of(text, needle)}"
        return text

    def env_line(self, raw: str, key: str | None = None) -> None:
        """Replace KEY's line of .env by `raw` (or append it); the message must name that line."""
        key = key or raw.split("=", 1)[0]
        lines = [ln for ln in FULL_ENV.splitlines() if not ln.startswith(key + "=")]
        lines.append(raw)
        write_private(self.root / ".env", "\n".join(lines) + "\n")
        self.where = f".env:{len(lines)}"

    def fifo(self, rel: str) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if os.path.lexists(path):
            path.unlink()
        os.mkfifo(path)
        return path

    def loop(self, rel: str) -> Path:
        path = self.root / rel
        if os.path.lexists(path):
            path.unlink()
        path.symlink_to(path.name)  # points at itself
        return path


def line_of(text: str, needle: str) -> int:
    found = [n for n, line in enumerate(text.split("\n"), start=1) if needle in line]
    assert found, f"{needle!r} not in the text"
    return found[0]


def write_private(path: Path, text: str | bytes) -> None:
    if os.path.lexists(path):
        path.unlink()
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    path.chmod(0o600)


def make_project(tmp_path: Path) -> Proj:
    root = tmp_path / "project"
    (root / "playbooks").mkdir(parents=True)
    for name in ("stack.yaml", "rebuild.yaml"):
        shutil.copy(REPO / "playbooks" / name, root / "playbooks" / name)
    no_exchange(root / "playbooks" / "stack.yaml")
    shutil.copytree(REPO / "schema", root / "schema")
    (root / "images").symlink_to(REPO / "images")
    (root / "replays").symlink_to(REPO / "replays")
    shutil.copy(REPO / ".env.example", root / ".env.example")
    write_private(root / ".env", FULL_ENV)
    return Proj(root, secrets=list(PASSWORDS))


def tree(top: Path) -> dict[str, str]:
    """Every entry under `top` — links as links, FIFOs by kind (never opened) — with its content hash."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                out[path] = "link:" + os.readlink(path)
            elif stat.S_ISREG(st.st_mode):
                out[path] = hashlib.sha256(Path(path).read_bytes()).hexdigest() + f":{st.st_mode:o}"
            else:
                out[path] = f"kind:{stat.S_IFMT(st.st_mode)}"
    return out


# -- the cases ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    id: str
    setup: Callable[[Proj], object]
    expect: str  # a text the message must hold
    args: tuple[str, ...] = ("plan",)
    code: int = 3
    json: bool = True  # run it with --json too (export compose has no --json)


REPLAY = ("plan", "--feed", "replay")
SIG_PORTS = '    ports: ["8001:8001"]'
RISK_PORTS = '    ports: ["8002:8002"]'
SIG_IMAGE = "    image: cdb_signal:latest"
PG_HEALTH_INTERVAL = "      interval: 5s\n      timeout: 3s\n      retries: 10\n      start_period: 10s"
SIG_SECRETS = '    secrets: [POSTGRES_PASSWORD, REDIS_PASSWORD]\n    ports: ["8001:8001"]'
SIG_ENV = "      HTTP_PORT: 8001\n"
REPLAY_BUILD = "    build: {context: images, dockerfile: images/market_replay/Dockerfile}"


def stack_case(id: str, old: str, new: str, needle: str, expect: str, **kw: object) -> Case:
    return Case(id, lambda p: p.edit_stack(old, new, needle), expect, **kw)  # type: ignore[arg-type]


def env_case(id: str, raw: str, expect: str, key: str | None = None) -> Case:
    return Case(id, lambda p: p.env_line(raw, key), expect)


def _custom_secret(p: Proj, value: str, interpolate: bool = False) -> None:
    """signal gets a secret of its own, API_KEY, set to `value` in .env."""
    p.edit_stack(SIG_SECRETS, SIG_SECRETS.replace("REDIS_PASSWORD]", "REDIS_PASSWORD, API_KEY]"))
    p.env_line(f"API_KEY={value}")
    p.secrets.append(value)
    if interpolate:
        p.edit_stack(SIG_ENV, SIG_ENV + "      API_KEY_COPY: ${API_KEY}\n", "API_KEY_COPY")


def _env_symlink(p: Proj) -> None:
    other = p.root.parent / "elsewhere.txt"
    other.write_text(f"this is not a .env file\n{SYMLINK_CONTENT}\nneither is this\n")
    (p.root / ".env").unlink()
    (p.root / ".env").symlink_to(other)
    p.secrets.append(SYMLINK_CONTENT)
    p.where = ".env:1"


def _split_quote(p: Proj) -> None:
    lines = [ln for ln in FULL_ENV.splitlines() if not ln.startswith("REDIS_PASSWORD=")]
    lines += ['REDIS_PASSWORD="first-half-of-it-0123', 'second-half-of-it-4567"', "MIN_VOLUME_X=1"]
    write_private(p.root / ".env", "\n".join(lines) + "\n")
    p.secrets += ["first-half-of-it-0123", "second-half-of-it-4567"]
    p.where = f".env:{len(lines) - 2}"


def _secret_lines(p: Proj, key: str, lines: list[str], fragments: list[str], at: int = 0) -> None:
    """KEY's line replaced by `lines` (a value run over several lines, a secret pasted on a line of its
    own): no fragment of it may be shown, whatever shape the broken lines have."""
    kept = [ln for ln in FULL_ENV.splitlines() if not ln.startswith(key + "=")]
    write_private(p.root / ".env", "\n".join(kept + lines) + "\n")
    p.secrets += fragments
    p.where = f".env:{len(kept) + 1 + at}"


def _after_u2028_comment(p: Proj) -> None:
    """A U+2028 in a comment is no new line for an editor: the bad value is named at its real line."""
    lines = ["# pasted from a memo\u2028 (the separator is invisible)", *FULL_ENV.splitlines()]
    lines = [ln if not ln.startswith("MIN_VOLUME=") else "MIN_VOLUME=lots" for ln in lines]
    write_private(p.root / ".env", "\n".join(lines) + "\n")
    p.where = f".env:{line_of(chr(10).join(lines), 'MIN_VOLUME=lots')}"


def _after_unclosed_quote(p: Proj) -> None:
    """The line after an unclosed quote is a line of its own: a later broken line keeps its number."""
    lines = ['POSTGRES_DB="claire', *[ln for ln in FULL_ENV.splitlines() if not ln.startswith("POSTGRES_DB=")]]
    lines = [ln if not ln.startswith("SIGNAL_THRESHOLD=") else "SIGNAL_THRESHOLD 3.0" for ln in lines]
    write_private(p.root / ".env", "\n".join(lines) + "\n")
    p.where = f".env:{line_of(chr(10).join(lines), 'SIGNAL_THRESHOLD 3.0')}"


def _yaml_after_u2028(p: Proj) -> None:
    """A U+2028 in a comment is no line break for an editor nor for cdb-ops: a later error keeps its line."""
    p.edit_stack("    role: database", "    role: database   # pasted\u2028 from a memo")
    p.edit_stack(SIG_PORTS, '    ports: ["8001:abc"]', "8001:abc")


def _no_value(old: str, key_line: str) -> Callable[[Proj], None]:
    """`old` replaced by `key_line` (a key with nothing after its colon); the message must name that line."""

    def setup(p: Proj) -> None:
        text = p.edit_stack(old, key_line)
        p.where = f"playbooks/stack.yaml:{text.split(chr(10)).index(key_line.rstrip(chr(10))) + 1}"

    return setup


def _yaml_u2029_in_comment_line(p: Proj) -> None:
    p.edit_stack("    role: database", "    role: database\n    # whole-line comment\u2029 pasted")
    p.edit_stack(SIG_PORTS, "    ports: [8001.5]", "8001.5")


def _yaml_bytes(p: Proj) -> None:
    text = STACK_TEXT.replace("    role: signal", "    role: sig\udce9nal").encode("utf-8", "surrogateescape")
    write_private(p.stack, text)
    p.where = f"playbooks/stack.yaml:{line_of(STACK_TEXT, '    role: signal')}:14"


def _stack_is(kind: str) -> Callable[[Proj], None]:
    def setup(p: Proj) -> None:
        p.stack.unlink()
        if kind == "folder":
            p.stack.mkdir()
        elif kind == "loop":
            p.loop("playbooks/stack.yaml")
        elif kind == "dangling":
            p.stack.symlink_to("nowhere.yaml")
        elif kind == "fifo":
            p.fifo("playbooks/stack.yaml")
        elif kind == "huge":
            with open(p.stack, "wb") as f:
                f.truncate(17 * 1024 * 1024)  # sparse: instant to make, far beyond any playbook
        p.where = "playbooks/stack.yaml"

    return setup


def _env_is(kind: str) -> Callable[[Proj], None]:
    def setup(p: Proj) -> None:
        env = p.root / ".env"
        env.unlink()
        if kind == "loop":
            p.loop(".env")
        elif kind == "dangling":
            env.symlink_to("gone.env")
        elif kind == "fifo":
            p.fifo(".env")
        elif kind == "device":
            env.symlink_to("/dev/zero")
        elif kind == "huge":
            with open(env, "wb") as f:
                f.truncate(3 * 1024 * 1024)
        elif kind == "latin1":
            write_private(env, FULL_ENV.encode() + "NOTE=caf\xe9\n".encode("latin-1"))
            p.where = f".env:{len(FULL_ENV.splitlines()) + 1}:9"
            return
        p.where = ".env"

    return setup


def _migration(name: str, content: bytes | None = b"SELECT 1;\n", kind: str = "file") -> Callable[[Proj], None]:
    def setup(p: Proj) -> None:
        path = p.root / "schema" / name
        if kind == "folder":
            path.mkdir()
        elif kind == "fifo":
            p.fifo(f"schema/{name}")
        elif kind == "loop":
            p.loop(f"schema/{name}")
        elif kind == "dangling":
            path.symlink_to("nothing.sql")
        else:
            path.write_bytes(content or b"")
        p.where = f"schema/{name}"
        if name.startswith("004_"):  # two files numbered 004: the later in name order is named
            p.where = "schema/004_ops_runs.sql"

    return setup


def _in_context(setup_file: Callable[[Path], None]) -> Callable[[Proj], None]:
    """market_replay builds from a context of its own (a copy inside the project) holding a bad file.
    The whole context is hashed (COPY .), so the bad file is reached and must be handled."""

    def setup(p: Proj) -> None:
        ctx = p.root / "ctx"
        ctx.mkdir()
        (ctx / "Dockerfile").write_text("FROM debian:bookworm-slim\nCOPY . /app\n")
        (ctx / "main.py").write_text("print('hi')\n")
        setup_file(ctx)
        p.edit_stack(REPLAY_BUILD, "    build: {context: ctx}")

    return setup


def _replay_dockerfile(kind: str) -> Callable[[Proj], None]:
    def setup(p: Proj) -> None:
        ctx = p.root / "ctx"
        ctx.mkdir()
        df = ctx / "Dockerfile"
        if kind == "folder":
            df.mkdir()
        elif kind == "fifo":
            os.mkfifo(df)
        elif kind == "latin1":
            df.write_bytes(b"FROM debian\n# caf\xe9\n")
            p.where = "ctx/Dockerfile:2:6"
        elif kind == "ignore-fifo":
            df.write_text("FROM debian\nCOPY . /app\n")
            os.mkfifo(ctx / ".dockerignore")
            p.where = "ctx/.dockerignore"
        p.edit_stack(REPLAY_BUILD, "    build: {context: ctx}")
        p.where = p.where or "ctx/Dockerfile"

    return setup


def _mount(kind: str) -> Callable[[Proj], None]:
    def setup(p: Proj) -> None:
        if kind == "fifo":
            p.fifo("conf/pipe")
        else:
            (p.root / "conf").mkdir()
            p.loop("conf/pipe")
        p.edit_stack(
            '    volumes: ["./replays:/replays:ro"]',
            '    volumes: ["./replays:/replays:ro", "./conf/pipe:/etc/pipe:ro"]',
            "./conf/pipe",
        )

    return setup


def _feed_cycle(p: Proj) -> None:
    text = p.edit_stack(REPLAY_BUILD, REPLAY_BUILD + "\n    depends_on: {screener: started}")
    feeds = line_of(text, "  replay:")
    p.where = f"playbooks/stack.yaml:{line_of(text[text.index('  replay:') :], '    depends_on:') + feeds - 1}"


def _folder_arg(p: Proj) -> None:
    (p.root / "backups" / "a-folder.dump").mkdir(parents=True)
    p.where = "backups/a-folder.dump"


def _fifo_arg(p: Proj) -> None:
    p.fifo("backups/pipe.dump")
    p.where = "backups/pipe.dump"


def _no_example(p: Proj) -> None:
    (p.root / ".env.example").unlink()
    (p.root / ".env").unlink()
    p.where = ".env.example"


def _bad_example(p: Proj) -> None:
    text = (p.root / ".env.example").read_text().replace("MIN_VOLUME=100000", "MIN_VOLUME=plenty")
    (p.root / ".env.example").write_text(text)
    p.where = f".env.example:{line_of(text, 'MIN_VOLUME=plenty')}"


def _env_folder(p: Proj) -> None:
    (p.root / ".env").unlink()
    (p.root / ".env").mkdir()
    p.where = ".env"


def _existing_output(p: Proj) -> None:
    (p.root / "compose.yaml").write_text("# mine, keep it\n")


CASES = [
    # -- playbook: images, durations, NULs, env names, addresses, ports, paths ------------------------
    stack_case("image-with-space", SIG_IMAGE, "    image: cdb signal:latest", "cdb signal", "image reference"),
    stack_case("image-capitals", SIG_IMAGE, "    image: CDB_Signal:latest", "CDB_Signal", "lower-case"),
    stack_case("image-empty", SIG_IMAGE, '    image: ""', 'image: ""', "must not be empty"),
    stack_case("image-empty-tag", SIG_IMAGE, "    image: 'cdb_signal:'", "cdb_signal:'", "image reference"),
    stack_case("image-bad-digest", SIG_IMAGE, "    image: cdb_signal@sha256:xyz", "@sha256", "image reference"),
    stack_case(
        "fallback-tag-capitals",
        'tag: "cdb_ops/redis:7-fallback"',
        'tag: "CDB/Redis:7"',
        "CDB/Redis",
        "lower-case",
    ),
    stack_case("interval-inf", "      interval: 5s\n", "      interval: .inf\n", ".inf", "finite"),
    stack_case("interval-nan", "      interval: 5s\n", "      interval: .nan\n", ".nan", "finite"),
    stack_case("interval-1e400", "      interval: 5s\n", "      interval: 1e400\n", "1e400", "a duration like"),
    stack_case("interval-below-1ms", "      interval: 5s\n", "      interval: 0.0001s\n", "0.0001s", "1ms"),
    stack_case("interval-centuries", "      interval: 5s\n", "      interval: 9999999h\n", "9999999h", "292"),
    stack_case(
        "ready-timeout-inf",
        "ready: {probe: postgres, timeout: 120s}",
        "ready: {probe: postgres, timeout: .inf}",
        "probe: postgres",
        "finite",
    ),  # fmt: skip
    stack_case("retries-huge", "      retries: 10\n", "      retries: 99999999999\n", "99999999999", "retries"),
    stack_case(
        "healthcheck-cmd-alone",
        '      test: ["CMD-SHELL", "pg_isready',
        '      test: ["CMD-SHELL"]\n      x-old: ["',
        'CMD-SHELL"]',
        "needs the command",
    ),  # fmt: skip
    stack_case("nul-in-env-value", SIG_ENV, SIG_ENV + '      NOTE: "a\\0b"\n', "NOTE:", "NUL"),
    stack_case("nul-in-command", "      - sh\n      - -c\n", '      - "s\\0h"\n      - -c\n', "s\\0h", "NUL"),
    stack_case("env-key-with-equals", SIG_ENV, SIG_ENV + '      "A=B": x\n', '"A=B"', "'='"),
    stack_case("env-key-with-space", SIG_ENV, SIG_ENV + '      "MY VAR": x\n', '"MY VAR"', "spaces"),
    stack_case("feed-env-key-with-equals", '{FEED_URL: "ws://', '{"FEED=URL": "ws://', "FEED=URL", "'='"),
    stack_case("bind-not-an-address", "bind: 127.0.0.1 ", "bind: 127.0.0.256 ", "127.0.0.256", "not an IP"),
    stack_case("bind-empty", "bind: 127.0.0.1 ", 'bind: "" ', 'bind: ""', "not an IP"),
    stack_case("bind-hostname", "bind: 127.0.0.1 ", "bind: localhost ", "bind: localhost", "not an IP"),
    stack_case("port-bind-bad", SIG_PORTS, '    ports: ["127.0.0.256:8001:8001"]', "127.0.0.256", "not an IP"),
    stack_case("port-bind-empty", SIG_PORTS, '    ports: [":8001:8001"]', '":8001', "not an IP"),
    Case(
        "same-port-all-and-loopback",
        lambda p: (
            p.edit_stack(SIG_PORTS, '    ports: ["0.0.0.0:8001:8001"]'),
            p.edit_stack(RISK_PORTS, '    ports: ["127.0.0.1:8001:8002"]', "127.0.0.1:8001:8002"),
        ),
        "0.0.0.0 / :: include every address",
    ),
    Case(
        "same-port-v6-any-and-default",
        lambda p: (
            p.edit_stack(SIG_PORTS, '    ports: [{host: 8001, container: 8001, bind: "::"}]'),
            p.edit_stack(RISK_PORTS, '    ports: ["8001:8002"]', '"8001:8002"'),
        ),
        "published by both",
    ),
    stack_case(
        "mount-escapes-project",
        '    volumes: ["./replays:/replays:ro"]',
        '    volumes: ["../../etc:/host-etc:ro"]',
        "../../etc",
        "leaves the project",
    ),
    stack_case(
        "mount-absolute",
        '    volumes: ["./replays:/replays:ro"]',
        '    volumes: ["/etc:/host-etc:ro"]',
        "/etc:/host-etc",
        "relative to the project",
    ),
    stack_case(
        "mount-target-relative",
        '    volumes: ["./replays:/replays:ro"]',
        "    volumes: [{source: ./replays, target: replays}]",
        "target: replays",
        "should match pattern",
    ),
    stack_case("context-escapes", REPLAY_BUILD, "    build: {context: ../..}", "context: ../..", "leaves the project"),
    stack_case("context-absolute", REPLAY_BUILD, "    build: {context: /}", "context: /}", "relative to the project"),
    stack_case(
        "dockerfile-escapes",
        REPLAY_BUILD,
        "    build: {context: images, dockerfile: ../Dockerfile}",
        "../Dockerfile",
        "leaves the project",
    ),
    stack_case(
        "volume-name-with-space",
        "  cdb_grafana_data:    {role: monitoring",
        '  "grafana data":    {role: monitoring',
        "grafana data",
        "should match pattern",
    ),
    stack_case("service-name-with-space", "  grafana:\n", '  "graf ana":\n', '"graf ana"', "should match pattern"),
    stack_case(
        "secret-name-lower-case",
        "    secrets: [GRAFANA_PASSWORD]",
        '    secrets: ["grafana password"]',
        '"grafana password"',
        "should match pattern",
    ),
    stack_case("ready-path-relative", "path: /-/ready", "path: -/ready", "path: -/ready", "should match pattern"),
    Case("feed-dependency-cycle", _feed_cycle, "dependency cycle with feed 'replay'"),
    Case(
        "feed-dependency-cycle-export",
        _feed_cycle,
        "dependency cycle",
        ("export", "compose", "--feed", "replay"),
        json=False,
    ),  # fmt: skip
    # -- checks that need no engine run before the first engine call, for every command ------------------
    stack_case(
        "feed-self-dependency",
        "screener: {market_replay: healthy}",
        "screener: {screener: healthy}",
        "screener: {screener: healthy}",
        "makes service 'screener' depend on itself",
        args=REPLAY,
    ),
    stack_case(
        "feed-self-dependency-validate",
        "screener: {market_replay: healthy}",
        "screener: {market_replay: healthy, screener: started}",
        "screener: started",
        "depend on itself",
        args=("validate",),
    ),
    stack_case(
        "feed-self-dependency-down",
        "screener: {market_replay: healthy}",
        "screener: {screener: healthy}",
        "screener: {screener: healthy}",
        "depend on itself",
        args=("portfolio",),
    ),
    Case("feed-empty-plan", lambda p: None, "--feed is empty", ("plan", "--feed", ""), code=2),
    Case("feed-blank-rebuild", lambda p: None, "--feed is empty", ("rebuild", "--feed", "  "), code=2),
    Case("feed-empty-validate", lambda p: None, "--feed is empty", ("validate", "--feed", ""), code=2),
    # -- with --json, every error is one JSON document, also before the command's own code runs ------------
    stack_case(
        "logs-json-port-twice",
        RISK_PORTS,
        '    ports: ["8001:8002"]',
        '"8001:8002"',
        "published by both",
        args=("logs",),
    ),
    Case("usage-unknown-option-json", lambda p: None, "No such option: --bogus", ("status", "--bogus"), code=2),
    Case("usage-bad-value-json", lambda p: None, "--tail", ("logs", "--tail", "zero"), code=2),
    Case("usage-unknown-phase-json", lambda p: None, "nosuch", ("rebuild", "--phase", "nosuch"), code=2),
    # -- playbook files that are not what they seem ---------------------------------------------------
    Case("stack-is-a-folder", _stack_is("folder"), "is a folder, not a playbook file"),
    Case("stack-symlink-loop", _stack_is("loop"), "symlink loop"),
    Case("stack-dangling-symlink", _stack_is("dangling"), "which does not exist"),
    Case("stack-is-a-fifo", _stack_is("fifo"), "named pipe"),
    Case("stack-huge", _stack_is("huge"), "larger than 16 MiB"),
    Case("stack-not-utf8-line-col", _yaml_bytes, "not UTF-8"),
    Case("yaml-line-after-u2028", _yaml_after_u2028, "host:container"),
    Case("yaml-u2029-in-a-comment-line", _yaml_u2029_in_comment_line, '"HOST:CONTAINER"'),
    stack_case(
        "yaml-u2028-in-a-value",
        "    role: database",
        '    role: "data\u2028base"',
        "data\u2028",
        "U+2028 LINE SEPARATOR",
    ),
    stack_case("yaml-u0085-in-a-key", "    role: database", "    ro\x85le: database", "ro\x85", "U+0085 NEXT LINE"),
    # -- a key written without a value: one problem, and what to write -------------------------------------
    Case("yaml-empty-env-value", _no_value(SIG_ENV, "      HTTP_PORT:\n"), "HTTP_PORT has no value"),
    Case("yaml-empty-image", _no_value(SIG_IMAGE, "    image:"), "image has no value"),
    Case("yaml-empty-ports", _no_value(SIG_PORTS, "    ports:"), "ports has no value"),
    # -- a port in a syntax no port has: the port syntax, not "write a mapping" ------------------------------
    stack_case("port-as-float", SIG_PORTS, "    ports: [8001.5]", "8001.5", '"HOST:CONTAINER"'),
    stack_case("port-as-bool", SIG_PORTS, "    ports: [true]", "[true]", '"HOST:CONTAINER"'),
    stack_case("port-as-list", SIG_PORTS, "    ports: [[8001, 8001]]", "[[8001", '"HOST:CONTAINER"'),
    stack_case("yaml-unclosed-quote", "    role: signal", '    role: "signal', 'role: "signal', "only closes on line"),
    stack_case("yaml-unclosed-bracket", SIG_PORTS, '    ports: ["8001:8001"', 'ports: ["8001:8001"', "expected"),
    Case(
        "runbook-symlink-loop",
        lambda p: (p.loop("playbooks/rebuild.yaml"), setattr(p, "where", "playbooks/rebuild.yaml")),
        "symlink loop",
    ),
    Case("mount-is-a-fifo", _mount("fifo"), "named pipe", REPLAY),
    Case("mount-symlink-loop", _mount("loop"), "symlink loop", REPLAY),
    stack_case(
        "context-missing",
        REPLAY_BUILD,
        "    build: {context: images/nothing}",
        "images/nothing",
        "not a folder",
        args=REPLAY,
    ),  # fmt: skip
    Case("dockerfile-is-a-folder", _replay_dockerfile("folder"), "is a folder, not a Dockerfile", REPLAY),
    Case("dockerfile-is-a-fifo", _replay_dockerfile("fifo"), "named pipe", REPLAY),
    Case("dockerfile-not-utf8", _replay_dockerfile("latin1"), "not UTF-8", REPLAY),
    Case("dockerignore-is-a-fifo", _replay_dockerfile("ignore-fifo"), "named pipe", REPLAY),
    # -- custom secrets -------------------------------------------------------------------------------
    Case(
        "custom-secret-interpolated",
        lambda p: _custom_secret(p, CUSTOM_SECRET, interpolate=True),
        "interpolates the secret API_KEY",
    ),  # fmt: skip
    Case("custom-secret-too-short", lambda p: _custom_secret(p, "k3y-tiny"), "API_KEY: too short"),
    Case("custom-secret-leaked-1", lambda p: _custom_secret(p, "Jannek2025!"), "API_KEY: this password was published"),
    Case("custom-secret-leaked-2", lambda p: _custom_secret(p, "cdb_secure_password_2025"), "was published"),
    Case(
        "custom-secret-with-space", lambda p: _custom_secret(p, "has a space 0123456789abc"), "contains quotes, spaces"
    ),  # fmt: skip
    # -- .env -----------------------------------------------------------------------------------------
    env_case(
        "colon-instead-of-equals",
        f"POSTGRES_PASSWORD: {PASSWORDS[0]}",
        "(it starts with 'POSTGRES_PASSWORD')",
        "POSTGRES_PASSWORD",
    ),  # fmt: skip
    env_case("space-instead-of-equals", f"REDIS_PASSWORD {PASSWORDS[1]}", "not a KEY=VALUE line", "REDIS_PASSWORD"),
    env_case(
        "colon-then-equals", f"POSTGRES_PASSWORD:{PASSWORDS[0]}=x", "invalid key (it starts with", "POSTGRES_PASSWORD"
    ),  # fmt: skip
    env_case("form-feed-in-value", f"REDIS_PASSWORD={PASSWORDS[1][:10]}\f{PASSWORDS[1][10:]}", "control character"),
    env_case("nul-in-value", f"POSTGRES_PASSWORD={PASSWORDS[0][:8]}\0{PASSWORDS[0][8:]}", "control character"),
    env_case("u2028-in-value", f"REDIS_PASSWORD={PASSWORDS[1][:8]}\u2028{PASSWORDS[1][8:]}", "control character"),
    env_case("escape-in-value", "POSTGRES_DB=claire\x1b[0m", "control character"),
    env_case("unclosed-single-quote", f"POSTGRES_PASSWORD='{PASSWORDS[0]}", "is not closed"),
    env_case("lone-quote", 'POSTGRES_PASSWORD="', "is not closed"),
    env_case("key-with-space", "MY KEY=value", "invalid key", "MY KEY"),
    # -- a secret's value over several lines, or on a line of its own: no part of it is ever shown --------
    Case(
        "secret-continuation-with-equals",
        lambda p: _secret_lines(
            p,
            "POSTGRES_PASSWORD",
            ['POSTGRES_PASSWORD="Kq7-first-part', 'Zx9=second-part"'],
            ["Kq7", "Zx9", "second-part"],
        ),
        "is not closed on it (the value runs over lines",
    ),
    Case(
        "secret-continuation-looks-like-a-key",
        lambda p: _secret_lines(
            p, "REDIS_PASSWORD", ["REDIS_PASSWORD='Wv8-part-one", "SECONDPARTTOKEN42'"], ["SECONDPARTTOKEN42", "Wv8"]
        ),
        "is not closed on it",
    ),
    Case(
        "secret-continuation-three-lines",
        lambda p: _secret_lines(
            p, "POSTGRES_PASSWORD", ['POSTGRES_PASSWORD="Aa1-one', "Bb2_two", 'Cc3-three"'], ["Aa1", "Bb2_two", "Cc3"]
        ),
        "lines",
    ),
    Case(
        "secret-pasted-on-its-own-line",
        lambda p: _secret_lines(
            p,
            "REDIS_PASSWORD",
            ["REDIS_PASSWORD=", "Qm4_lonely_secret_token"],
            ["Qm4_lonely_secret_token", "Qm4"],
            at=1,
        ),
        "not a KEY=VALUE line",
    ),
    Case(
        "secret-never-closed",
        lambda p: _secret_lines(
            p, "POSTGRES_PASSWORD", ["POSTGRES_PASSWORD='Yt5-never-closed", "Ju6_next_token"], ["Yt5", "Ju6_next_token"]
        ),
        "is not closed",
    ),
    env_case("export-without-value", "export POSTGRES_PASSWORD", "not a KEY=VALUE line", "POSTGRES_PASSWORD"),
    env_case(
        "position-above-exposure", "MAX_POSITION_SIZE=60", "MAX_POSITION_SIZE (60) is above MAX_TOTAL_EXPOSURE"
    ),  # fmt: skip
    env_case("capital-beyond-numeric", "INITIAL_CAPITAL=1e18", "INITIAL_CAPITAL: 1e18 is too large"),
    env_case("capital-19-digits", "INITIAL_CAPITAL=1000000000000000000", "is too large"),
    env_case("volume-beyond-numeric", "MIN_VOLUME=1e30", "MIN_VOLUME: 1e30 is too large"),
    env_case("notional-beyond-numeric", "MIN_ORDER_NOTIONAL=1e19", "MIN_ORDER_NOTIONAL: 1e19 is too large"),
    env_case("leaked-postgres-password", "POSTGRES_PASSWORD=cdb_secure_password_2025", "was published"),
    Case("split-quote-over-two-lines", _split_quote, "is not closed"),
    Case("line-after-u2028-comment", _after_u2028_comment, "MIN_VOLUME: 'lots' is not a number"),
    Case(
        "line-after-unclosed-quote", _after_unclosed_quote, "not a KEY=VALUE line (it starts with 'SIGNAL_THRESHOLD')"
    ),  # fmt: skip
    Case("env-symlink-to-other-file", _env_symlink, "not a KEY=VALUE line"),
    Case("env-symlink-loop", _env_is("loop"), "symlink loop"),
    Case("env-dangling-symlink", _env_is("dangling"), "which does not exist"),
    Case("env-is-a-fifo", _env_is("fifo"), "named pipe"),
    Case("env-is-a-device", _env_is("device"), "is a device"),
    Case("env-huge", _env_is("huge"), "larger than 1 MiB"),
    Case("env-not-utf8-line-col", _env_is("latin1"), "not UTF-8"),
    # -- schema/ ---------------------------------------------------------------------------------------
    Case("migration-is-a-folder", _migration("099_x.sql", kind="folder"), "is a folder, not a migration file"),
    Case("migration-duplicate-number", _migration("004_again.sql"), "version 004 is also used by 004_again.sql"),
    Case("migration-upper-case-suffix", _migration("099_more.SQL"), "not NNN_description.sql"),
    Case("migration-bad-name", _migration("5_short.sql"), "not NNN_description.sql"),
    Case("migration-capitals", _migration("099_Add-Column.sql"), "not NNN_description.sql"),
    Case("migration-empty", _migration("099_empty.sql", b""), "the migration is empty"),
    Case("migration-only-comments", _migration("099_todo.sql", b"-- TODO\n-- later\n"), "the migration is empty"),
    Case("migration-not-utf8", _migration("099_latin.sql", b"SELECT 1;\n-- caf\xe9\n"), "not UTF-8"),
    Case("migration-is-a-fifo", _migration("099_pipe.sql", kind="fifo"), "named pipe"),
    Case("migration-symlink-loop", _migration("099_loop.sql", kind="loop"), "symlink loop"),
    Case("migration-dangling-symlink", _migration("099_gone.sql", kind="dangling"), "which does not exist"),
    Case("migration-run-on-bad-schema", _migration("004_again.sql"), "also used by", ("rebuild", "--phase", "schema")),
    # -- command-line arguments -------------------------------------------------------------------------
    Case("rebuild-unknown-phase", lambda p: None, "unknown phase 'nosuch'", ("rebuild", "--phase", "nosuch"), 2),
    Case("run-unknown-phase", lambda p: None, "unknown phase", ("run", "rebuild", "--phase", "x"), 2),
    Case("logs-since-garbage", lambda p: None, "--since 'garbage'", ("logs", "--since", "garbage"), 2),
    Case("logs-since-overflow", lambda p: None, "before the year 1", ("logs", "--since", "99999999999h"), 2),
    Case("logs-unknown-service", lambda p: None, "unknown service 'nosuch'", ("logs", "nosuch"), 2),
    Case("plan-unknown-profile", lambda p: None, "unknown profile 'nosuch'", ("plan", "--profile", "nosuch"), 2),
    Case("plan-unknown-feed", lambda p: None, "unknown feed 'paper'", ("plan", "--feed", "paper"), 2),
    Case("logs-since-bad-date", lambda p: None, "neither a duration nor a time", ("logs", "--since", "2026-13-45"), 2),
    Case("restore-a-folder", _folder_arg, "is a folder, not a backup file", ("restore", "backups/a-folder.dump")),
    Case("restore-a-fifo", _fifo_arg, "named pipe", ("restore", "backups/pipe.dump")),
    Case(
        "restore-missing",
        lambda p: setattr(p, "where", "backups/x.dump"),
        "does not exist",
        ("restore", "backups/x.dump"),
    ),  # fmt: skip
    Case(
        "run-a-folder",
        lambda p: (p.root / "playbooks" / "more").mkdir(),
        "is a folder, not a playbook file",
        ("run", "playbooks/more/"),
    ),  # fmt: skip
    Case(
        "run-missing-playbook",
        lambda p: setattr(p, "where", "playbooks/nosuch.yaml"),
        "file not found",
        ("run", "nosuch"),
    ),  # fmt: skip
    Case(
        "export-into-a-folder",
        lambda p: (p.root / "out").mkdir(),
        "is a folder",
        ("export", "compose", "-o", "out"),
        2,
        json=False,
    ),  # fmt: skip
    Case(
        "export-into-missing-folder",
        lambda p: None,
        "does not exist",
        ("export", "compose", "-o", "no/such/c.yaml"),
        2,
        json=False,
    ),  # fmt: skip
    Case(
        "export-onto-existing-file",
        _existing_output,
        "exists; not overwriting it",
        ("export", "compose", "-o", "compose.yaml"),
        6,
        json=False,
    ),  # fmt: skip
    Case("init-without-example", _no_example, "file not found", ("init",)),
    Case("init-force-env-is-a-folder", _env_folder, "is a folder, not a .env file", ("init", "--force")),
    Case("init-bad-example-value", _bad_example, "MIN_VOLUME: 'plenty' is not a number", ("init", "--force")),
    Case("init-if-missing-env-fifo", _env_is("fifo"), "named pipe", ("init", "--if-missing")),
]


@pytest.fixture
def dead_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """DOCKER_HOST: a unix socket that was bound and closed — nothing listens there."""
    path = tmp_path / "dead.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    s.close()
    monkeypatch.setenv("DOCKER_HOST", f"unix://{path}")
    return path


def invoke(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = run(args)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_refused_cleanly(case, tmp_path, monkeypatch, capsys, dead_engine):
    p = make_project(tmp_path)
    case.setup(p)
    monkeypatch.setenv("CDB_PROJECT_DIR", str(p.root))
    monkeypatch.chdir(p.root)
    before = tree(tmp_path)
    runs = [list(case.args)] + ([[*case.args, "--json"]] if case.json else [])
    for args in runs:
        code, out, err = invoke(args, capsys)
        assert code == case.code, f"{args}: exit {code}\n{out}\n{err}"
        assert "Traceback" not in out + err
        for secret in p.secrets:
            assert secret not in out + err, f"a secret value is shown by {args}"
        if "--json" in args:
            doc = json.loads(out)  # exactly one document: json.loads refuses anything after it
            ERROR_SCHEMA.validate(doc)
            message, remedy = doc["error"]["message"], doc["error"]["remedy"]
            assert remedy, doc
        else:
            message = remedy = err
            assert "fix:" in err, err
        assert case.expect in message, message
        if p.where is not None:
            assert f"{p.root}/{p.where}" in message, message
        assert tree(tmp_path) == before, f"{args} changed files although it refused"
        assert not (p.root / ".cdb").exists()


def test_the_corpus_is_large_enough():
    assert len(CASES) >= 80


# -- what is accepted, and how --------------------------------------------------------------------------


def test_a_world_readable_env_is_used_with_a_warning_and_the_fix(tmp_path, monkeypatch, capsys, dead_engine):
    """Decision: a warning, not a refusal. `cp .env.example .env` gives 0644, and refusing would stop every
    command of a user who followed the README's first step; the warning names the fix on every run."""
    p = make_project(tmp_path)
    (p.root / ".env").chmod(0o644)
    monkeypatch.setenv("CDB_PROJECT_DIR", str(p.root))
    code, out, err = invoke(["plan", "--json"], capsys)
    assert code == NO_ENGINE
    assert f"chmod 600 {p.root}/.env" in err and "0644" in err
    assert json.loads(out)["error"]["kind"] == "engine_unavailable"  # stdout is still one document


def test_a_private_env_gets_no_warning(tmp_path, monkeypatch, capsys, dead_engine):
    p = make_project(tmp_path)
    monkeypatch.setenv("CDB_PROJECT_DIR", str(p.root))
    code, _out, err = invoke(["plan"], capsys)
    assert code == NO_ENGINE and "warning" not in err


@pytest.mark.parametrize(
    "line",
    [
        "POSTGRES_PASSWORD=cdb_secure_password_2025",
        'POSTGRES_PASSWORD="cdb_secure_password_2025"  # from the memo',
        "export\tPOSTGRES_PASSWORD=cdb_secure_password_2025",
        "  export   POSTGRES_PASSWORD = cdb_secure_password_2025",
        "REDIS_PASSWORD='Jannek2025!'",
    ],
)
def test_init_replaces_a_published_password_of_the_template(line, tmp_path, monkeypatch, capsys):
    """The template's secrets are public, so init generates every one of them, whatever the line's shape:
    a .env.example holding a memo password gives a valid .env, not a refusal whose fix (`init --force`)
    would refuse again, nor a .env every later command refuses."""
    p = make_project(tmp_path)
    (p.root / ".env").unlink()
    example = p.root / ".env.example"
    key = "REDIS_PASSWORD" if "REDIS" in line else "POSTGRES_PASSWORD"
    kept = [ln for ln in example.read_text().splitlines() if not ln.startswith(key + "=")]
    example.write_text("\n".join([*kept, line]) + "\n")
    monkeypatch.setenv("CDB_PROJECT_DIR", str(p.root))
    code, out, err = invoke(["init"], capsys)
    assert code == 0, err
    written = (p.root / ".env").read_text()
    assert "cdb_secure_password_2025" not in written and "Jannek2025!" not in written
    from cdb_ops.load.envfile import parse_env_text
    from cdb_ops.load.settings import check_settings

    check_settings(parse_env_text(written, p.root / ".env"), p.root / ".env")  # later commands accept it
    assert invoke(["init", "--force"], capsys)[0] == 0  # and again: no loop


def test_a_custom_secret_is_redacted_and_never_exported(tmp_path, monkeypatch, capsys):
    p = make_project(tmp_path)
    _custom_secret(p, CUSTOM_SECRET)
    p.edit_stack(SIG_ENV, SIG_ENV + f"      NOTE: the key is {CUSTOM_SECRET}\n")
    monkeypatch.setenv("CDB_PROJECT_DIR", str(p.root))
    monkeypatch.chdir(tmp_path)
    code, out, err = invoke(["export", "compose"], capsys)
    assert code == 0, err
    assert CUSTOM_SECRET not in out and "API_KEY_FILE: /run/secrets/api_key" in out
    assert (p.root / ".cdb" / "secrets" / "api_key").read_text() == CUSTOM_SECRET  # it reaches the container


def test_a_build_context_with_an_editor_lock_file_and_odd_names_is_hashed(tmp_path, monkeypatch, capsys, dead_engine):
    """Emacs' `.#config.py` is a dangling symlink; a FIFO, a symlink loop and a name that is not UTF-8
    are sent by the build as what they are — the hash never opens or follows them."""

    def odd_files(ctx: Path) -> None:
        (ctx / ".#config.py").symlink_to("user@host.1234:1700000000")
        os.mkfifo(ctx / "pipe")
        (ctx / "loop").symlink_to("loop")
        (ctx / os.fsdecode(b"caf\xe9.txt")).write_text("latin-1 name\n")

    p = make_project(tmp_path)
    _in_context(odd_files)(p)
    monkeypatch.setenv("CDB_PROJECT_DIR", str(p.root))
    code, out, err = invoke(["plan", "--feed", "replay"], capsys)
    assert code == NO_ENGINE, err
    assert "Traceback" not in err


def test_a_wrong_cdb_project_dir_is_named_as_the_cause(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CDB_PROJECT_DIR", str(tmp_path / "nowhere"))
    code, _out, err = invoke(["plan"], capsys)
    assert code == 3
    assert f"CDB_PROJECT_DIR={tmp_path / 'nowhere'} is not a cdb-ops project (does not exist)" in err
    assert "unset CDB_PROJECT_DIR" in err


@pytest.mark.parametrize(
    "line",
    [
        f'POSTGRES_PASSWORD="{PASSWORDS[0]}"  # rotated',
        f"POSTGRES_PASSWORD='{PASSWORDS[0]}' # rotated on 2026-12-01",
        f'POSTGRES_PASSWORD="{PASSWORDS[0]}"\t#tab before the comment',
        f'POSTGRES_PASSWORD="{PASSWORDS[0]}"#no blank before the comment',
    ],
)
def test_a_quoted_value_may_carry_an_inline_comment(line, tmp_path, monkeypatch, capsys, dead_engine):
    """dotenv and Compose read `KEY="value"  # comment` as the quoted value: so does cdb-ops (the command
    then gets past its configuration checks and stops only at the dead engine, exit 4)."""
    from cdb_ops.load.envfile import parse_env_text

    assert parse_env_text(line, Path(".env"))["POSTGRES_PASSWORD"].value == PASSWORDS[0]
    p = make_project(tmp_path)
    p.env_line(line, "POSTGRES_PASSWORD")
    monkeypatch.setenv("CDB_PROJECT_DIR", str(p.root))
    code, out, err = invoke(["plan"], capsys)
    assert code == 4, err
    assert PASSWORDS[0] not in out + err


def test_a_line_separator_inside_a_playbook_comment_is_accepted(tmp_path, monkeypatch, capsys, dead_engine):
    p = make_project(tmp_path)
    p.edit_stack("    role: database", "    role: database   # pasted\u2028 from a memo\u2029 too")
    monkeypatch.setenv("CDB_PROJECT_DIR", str(p.root))
    code, out, err = invoke(["plan"], capsys)
    assert code == 4, err  # past the playbook's checks: only the engine is missing
