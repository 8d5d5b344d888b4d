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
from pathlib import Path
from typing import Any

import docker
import psycopg
import yaml

REPO = Path(__file__).resolve().parents[1]
PORT_OFFSET = 20000


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


def env_values(project: Path) -> dict[str, str]:
    out = {}
    for line in (project / ".env").read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            k, v = line.split("=", 1)
            out[k] = v
    return out


def pg_connect(
    project: Path, port: int, *, password: str | None = None, autocommit: bool = True
) -> psycopg.Connection[Any]:
    """A connection to a test project's Postgres on its published port, as the user in its .env."""
    env = env_values(project)
    return psycopg.connect(
        host="127.0.0.1",
        port=port,
        user=env["POSTGRES_USER"],
        password=password if password is not None else env["POSTGRES_PASSWORD"],
        dbname=env["POSTGRES_DB"],
        connect_timeout=5,
        autocommit=autocommit,
    )


def remove_system(system: str) -> None:
    """Remove every container, network and volume labelled with `system` (test teardown)."""
    client = docker.from_env()
    label = f"cdb.system={system}"
    # the low-level list (no inspect per container): one that goes away meanwhile is no error
    for c in client.api.containers(all=True, filters={"label": label}):
        with contextlib.suppress(docker.errors.NotFound):
            client.api.remove_container(c["Id"], force=True, v=True)
    for n in client.networks.list(filters={"label": label}):
        n.remove()
    for v in client.volumes.list(filters={"label": label}):
        v.remove(force=True)
