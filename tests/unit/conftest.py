"""A small project on disk (playbooks, .env, build contexts) for planner and phase tests."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.unit.fake_engine import FakeEngine

STACK = """\
version: 1
system: testsys
network: {name: t_net}
volumes:
  t_data: {role: database, priority: critical}
services:
  db:
    container: t_db
    role: database
    priority: critical
    image: postgres:15-alpine
    fallback_build: {context: images/db, tag: "t/db:fallback"}
    env: {POSTGRES_DB: "${POSTGRES_DB}"}
    secrets: [POSTGRES_PASSWORD]
    volumes: ["t_data:/data"]
    ports: ["15432:5432"]
    ready: {probe: docker}
  app:
    container: t_app
    role: signal
    priority: high
    image: t_app:latest
    build: {context: images/app}
    env: {MIN_VOLUME: "${MIN_VOLUME}"}
    depends_on: {db: healthy}
    ports: ["18001:8001"]
    ready: {probe: docker}
  extra:
    container: t_extra
    role: monitoring
    priority: optional
    profiles: [monitoring]
    image: t_extra:1
    ready: {probe: docker}
    volumes: ["./conf/extra.yml:/etc/extra.yml:ro"]
"""

RUNBOOK = """\
version: 1
name: rebuild
phases:
  - {name: cleanup, kind: cleanup}
  - {name: network, kind: network}
  - {name: volumes, kind: volumes}
  - {name: db, kind: services, services: [db]}
  - {name: builds, kind: images}
  - {name: start, kind: services}
"""

ENV = """\
POSTGRES_DB=claire
POSTGRES_USER=claire
POSTGRES_PASSWORD=unit-test-password-0123456789
REDIS_PASSWORD=unit-test-redis-password-0123456789
MAX_DAILY_DRAWDOWN=5.0
MAX_POSITION_SIZE=10.0
MAX_TOTAL_EXPOSURE=50.0
INITIAL_CAPITAL=1000
SIGNAL_THRESHOLD=3.0
MIN_VOLUME=100000
LOG_LEVEL=INFO
"""


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "playbooks" / "stack.yaml").write_text(STACK)
    (tmp_path / "playbooks" / "rebuild.yaml").write_text(RUNBOOK)
    (tmp_path / ".env").write_text(ENV)
    for ctx in ("db", "app"):
        d = tmp_path / "images" / ctx
        d.mkdir(parents=True)
        (d / "main.py").write_text("print('v1')\n")
        (d / "Dockerfile").write_text(f"FROM debian:bookworm-slim\n# {ctx}\nCOPY main.py \\\n  /app/main.py\n")
    (tmp_path / "schema").mkdir()
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "extra.yml").write_text("scrape_interval: 5s\n")
    return tmp_path


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine()


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path
