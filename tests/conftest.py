"""Shared test setup: integration and e2e tests need a real Docker engine. In CI a missing engine is
a failure (CI starts one via .ci/run); on a developer machine those tests are skipped with a reason."""

from __future__ import annotations

import os

import pytest


def _engine_answers() -> str | None:
    try:
        import docker

        docker.from_env(timeout=5).ping()
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means "no engine"
        return str(exc)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    needs_engine = [i for i in items if "integration" in i.keywords or "e2e" in i.keywords]
    if not needs_engine:
        return
    problem = _engine_answers()
    if problem is None:
        return
    if os.environ.get("CI"):
        raise pytest.UsageError(f"CI=true but no Docker engine answers ({problem}); .ci/run must start one")
    for item in needs_engine:
        item.add_marker(pytest.mark.skip(reason=f"no Docker engine ({problem})"))
