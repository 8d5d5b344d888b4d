"""Test projects: a copy of the real playbooks under other names and ports, so tests never touch the
user's own stack (cdb_*) and can run beside it."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import docker
import psycopg
import redis
import yaml

REPO = Path(__file__).resolve().parents[1]
PORT_OFFSET = 20000
T = TypeVar("T")


@dataclass(frozen=True)
class TestStack:
    """One test module's own copy of the stack: its `cdb.system` label, its container-name prefix and the
    offset added to every published host port, so modules (and a user's own `cdb_*` stack) never meet."""

    system: str
    prefix: str
    offset: int

    def port(self, container_port: int) -> int:
        return container_port + self.offset

    @property
    def pg_port(self) -> int:
        return self.port(5432)

    @property
    def redis_port(self) -> int:
        return self.port(6379)

    def container(self, service: str) -> str:
        """'screener_ws' -> 'cdbf_screener_ws'."""
        return f"{self.prefix}{service}"


# The one registry of test stacks: each module (and bench script) takes its names and ports from here,
# and tests/unit/test_scaffolding.py proves no two share a system, a prefix or a host port. Every host
# port stays below Linux' ephemeral range (32768-60999): a port in it can be taken at any moment by an
# outgoing connection's local end, and Docker's proxy then fails with "address already in use" (it did,
# in CI, on 127.0.0.1:54432).
STACKS: dict[str, TestStack] = {
    "rebuild": TestStack("cdb_test", "cdbt_", 20000),
    "backup": TestStack("cdb_testb", "cdbb_", 16000),
    "json_schemas": TestStack("cdb_tests", "cdbs_", 11500),
    "rotation": TestStack("cdb_rot", "cdbr_", 12500),
    "pipeline": TestStack("cdb_e2e", "cdbx_", 22000),
    "breakage": TestStack("cdb_brk", "cdbk_", 23000),
    "faults": TestStack("cdb_flt", "cdbf_", 10100),
    "lifecycle": TestStack("cdb_life", "cdbl_", 14000),
    "corners": TestStack("cdb_corners", "cdbq_", 13000),
    "books": TestStack("cdb_books", "cdbw_", 10200),
    "export": TestStack("cdb_compose", "cdbc_", 13500),
    "export_swarm": TestStack("cdb_swarm", "cdbz_", 10300),
    "hardening": TestStack("cdb_hard", "cdbd_", 10400),
    "retention": TestStack("cdb_ret", "cdbg_", 10500),
    "oom": TestStack("cdb_oom", "cdbo_", 10600),
    "exchange": TestStack("cdb_xchg", "cdbe_", 10700),
    "daemon_restart": TestStack("cdb_boot", "cdbj_", 10800),
    "process": TestStack("cdb_proc", "cdbp_", 10900),
    "backups_scheduled": TestStack("cdb_bak", "cdba_", 11100),
    "trading_controls": TestStack("cdb_ctl", "cdbu_", 11200),
    "alerting": TestStack("cdb_alert", "cdbal_", 11700),
    "notifier": TestStack("cdb_notify", "cdbnt_", 11800),
    "drained_upgrades": TestStack("cdb_drain", "cdbdr_", 11900),
    "journal": TestStack("cdb_journal", "cdbjo_", 12000),
    # bench scripts (never part of the tests, but never on a test's ports either)
    "bench": TestStack("cdb_bench", "cdbm_", 11300),
    "soak": TestStack("cdb_soak", "cdbso_", 10000),
    "scale": TestStack("cdb_scale", "cdbn_", 11400),
    "fastforward": TestStack("cdb_ffwd", "cdbv_", 11600),
}


def wait_until(what: str, check: Callable[[], T], timeout: float = 60.0, every: float = 0.25) -> T:
    """The one polling helper: call `check` until it returns something truthy (which is returned), or fail
    after `timeout` seconds naming `what` and the last value or exception seen."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = check()
            if value:
                return value
            last = value
        except Exception as exc:  # noqa: BLE001 - a check that raises is not there yet; shown if it never is
            last = exc
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f} s (last: {last!r})")
        time.sleep(every)


@dataclass
class StackFixture:
    """What a module's stack fixture needs: which stack, what to add to `.env`, how to converge it."""

    stack: TestStack
    env: dict[str, str] = field(default_factory=dict)
    rebuild_args: tuple[str, ...] = ()
    init: bool = True
    converge: bool = True

    def up(self, root: Path) -> Path:
        remove_system(self.stack.system)
        project = make_project(root, self.stack.system, self.stack.prefix, self.stack.offset, init=self.init)
        if self.env:  # each key set once: a line `init` wrote for it is replaced, not shadowed by a second
            env_file = project / ".env"
            kept = [ln for ln in env_file.read_text().splitlines() if ln.split("=", 1)[0].strip() not in self.env]
            env_file.write_text("\n".join([*kept, *(f"{k}={v}" for k, v in self.env.items())]) + "\n")
        if self.converge:
            r = cdb("rebuild", *self.rebuild_args, "--json", project=project)
            assert r.returncode == 0, f"rebuild: exit {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
        return project

    def down(self) -> None:
        remove_system(self.stack.system)

    def around(self, root: Path) -> Iterator[Path]:
        """remove -> make project -> .env -> rebuild -> yield -> remove: the body of a module's fixture."""
        try:
            yield self.up(root)
        finally:
            self.down()


def rename(text: str, prefix: str) -> str:
    """cdb_postgres -> <prefix>postgres in names and URLs (ws://cdb_market_replay), but not in paths
    inside containers (/var/log/cdb_risk), our image tags (cdb_ops/...) or the services' library."""
    return re.sub(r"((?<![\w/])|(?<=//))cdb_(?!ops/|common)", prefix, text)


# A name that cannot resolve anywhere (RFC 6761): a test project's live feed never reaches a real exchange,
# so `init`'s feed check fails at DNS and chooses replay, wherever the tests run.
NO_EXCHANGE = "wss://cdb-exchange.invalid:9443/ws/!miniTicker@arr"


def no_exchange(stack_file: Path) -> None:
    """Point a copied playbook's live feed at NO_EXCHANGE (same lines, same line numbers): `init`'s feed
    check then fails at DNS instead of reaching out to the real exchange from a test."""
    text = stack_file.read_text()
    stack_file.write_text(re.sub(r"FEED_URL: wss://\S+", f"FEED_URL: {NO_EXCHANGE}", text))


def make_project(
    root: Path, system: str = "cdb_test", prefix: str = "cdbt_", offset: int = PORT_OFFSET, *, init: bool = True
) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "playbooks").mkdir(exist_ok=True)
    stack = yaml.safe_load(rename((REPO / "playbooks" / "stack.yaml").read_text(), prefix))
    stack["system"] = system
    stack["default_feed"] = "replay"  # tests never reach out to the exchange: the replay server feeds them
    for svc in stack["services"].values():
        svc["ports"] = [_shift(p, offset) for p in svc.get("ports", [])]
        if str(svc.get("env", {}).get("FEED_URL", "")).startswith("wss://"):
            svc["env"]["FEED_URL"] = NO_EXCHANGE
    (root / "playbooks" / "stack.yaml").write_text(yaml.safe_dump(stack, sort_keys=False))
    for book in (REPO / "playbooks").glob("*.yaml"):
        if book.name != "stack.yaml":
            shutil.copy(book, root / "playbooks" / book.name)
    for folder in ("images", "replays"):
        if (REPO / folder).exists() and not (root / folder).exists():
            (root / folder).symlink_to(REPO / folder)
    if not (root / "schema").exists():
        shutil.copytree(REPO / "schema", root / "schema")
    else:  # a project kept between runs (the bench's): the migrations added since, edited ones kept
        for migration in (REPO / "schema").iterdir():
            if not (root / "schema" / migration.name).exists():
                shutil.copy(migration, root / "schema" / migration.name)
    shutil.copy(REPO / ".env.example", root / ".env.example")
    if init and not (root / ".env").exists():
        r = cdb("init", project=root)
        assert r.returncode == 0, r.stderr
    return root


def _shift(port: str, offset: int) -> str:
    parts = str(port).split(":")
    parts[-2] = str(int(parts[-2]) + offset)
    return ":".join(parts)


def cdb(
    *args: str, project: Path, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    full_env["CDB_PROJECT_DIR"] = str(project)
    return subprocess.run(
        [sys.executable, "-m", "cdb_ops", *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def cdb_json(*args: str, project: Path, expect: int | None = 0) -> dict[str, Any]:
    r = cdb(*args, "--json", project=project)
    if expect is not None:
        assert r.returncode == expect, f"exit {r.returncode}\nstdout: {r.stdout[-3000:]}\nstderr: {r.stderr[-3000:]}"
    return json.loads(r.stdout)


def cdb_exit_json(*args: str, project: Path) -> tuple[int, dict[str, Any]]:
    """`cdb-ops ARGS --json`'s exit code and document, whatever the exit code (for tests of failures)."""
    r = cdb(*args, "--json", project=project)
    try:
        return r.returncode, json.loads(r.stdout)
    except json.JSONDecodeError:
        raise AssertionError(
            f"`cdb-ops {' '.join(args)} --json` printed no JSON (exit {r.returncode}):\n{r.stderr}"
        ) from None


def env_values(project: Path) -> dict[str, str]:
    out = {}
    for line in (project / ".env").read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            k, v = line.split("=", 1)
            out[k] = v
    return out


def pg_connect(
    project: Path, port: int, *, password: str | None = None, autocommit: bool = True, **options: Any
) -> psycopg.Connection[Any]:
    """A connection to a test project's Postgres on its published port, as the user in its .env (`options`:
    more connection parameters, e.g. application_name)."""
    env = env_values(project)
    return psycopg.connect(
        host="127.0.0.1",
        port=port,
        user=env["POSTGRES_USER"],
        password=password if password is not None else env["POSTGRES_PASSWORD"],
        dbname=env["POSTGRES_DB"],
        connect_timeout=5,
        autocommit=autocommit,
        **options,
    )


def redis_connect(project: Path, port: int, **options: Any) -> redis.Redis:
    """A client of a test project's Redis on its published port, with the password in its .env (`options`:
    more client parameters, e.g. decode_responses, socket_timeout)."""
    return redis.Redis(host="127.0.0.1", port=port, password=env_values(project)["REDIS_PASSWORD"], **options)


def remove_system(system: str) -> None:
    """Remove every container, network and volume labelled with `system` (test teardown)."""
    client = docker.from_env()
    label = f"cdb.system={system}"
    # the low-level list (no inspect per container): one that goes away meanwhile is no error
    for c in client.api.containers(all=True, filters={"label": label}):
        with contextlib.suppress(docker.errors.NotFound):
            client.api.remove_container(c["Id"], force=True, v=True)
    for n in client.networks.list(filters={"label": label}):
        _remove_network(n)
    for v in client.volumes.list(filters={"label": label}):
        v.remove(force=True)


def _remove_network(network: Any) -> None:
    """Remove a test network. The engine may still hold an endpoint of a container it has just removed
    ("has active endpoints", seen once in CI after a restore): disconnect what it still lists and retry
    for a bounded time rather than fail the teardown on the daemon's lag."""
    deadline = time.monotonic() + 20
    while True:
        try:
            network.remove()
            return
        except docker.errors.NotFound:
            return
        except docker.errors.APIError as e:
            if "active endpoints" not in str(e) or time.monotonic() > deadline:
                raise
        with contextlib.suppress(docker.errors.NotFound):
            network.reload()
            for endpoint in network.attrs.get("Containers") or {}:
                with contextlib.suppress(docker.errors.APIError):
                    network.disconnect(endpoint, force=True)
        time.sleep(0.5)


def publish_signal(project: Path, stack: TestStack, symbol: str, side: str, price: str, book: str = "replay") -> str:
    """One signal of `book`, stored and published on cdb:signals as the signal engine does (the signals row,
    then the stream entry); its id. For a symbol the replay never plays, the decision on it is the test's alone."""
    signal_id, now = str(uuid.uuid4()), int(time.time() * 1000)
    with pg_connect(project, stack.pg_port) as conn:
        conn.execute(
            """INSERT INTO signals (signal_id, symbol, side, price, change_pct, window_seconds, quote_volume,
                                    threshold_pct, confidence, tick_time, is_probe, portfolio)
               VALUES (%s, %s, %s, %s, 3, 60, 1000000, 3, 1, to_timestamp(%s / 1000.0), false, %s)""",
            (signal_id, symbol, side, Decimal(price), now, book),
        )
    event = {
        "event_id": signal_id, "symbol": symbol, "side": side, "price": price, "change_pct": "3",
        "window_seconds": 60, "quote_volume": "1000000", "threshold_pct": "3", "confidence": "1",
        "tick_id": str(uuid.uuid4()), "tick_time": now, "received_at": now, "produced_at": now,
        "is_probe": False, "portfolio": book,
    }  # fmt: skip
    client = redis_connect(project, stack.redis_port)
    try:
        client.xadd("cdb:signals", {"data": json.dumps(event)})
    finally:
        client.close()
    return signal_id
