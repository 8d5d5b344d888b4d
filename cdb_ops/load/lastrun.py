"""The last run's result (`.cdb/last_run.json`), as `status` and `doctor` read it."""

from __future__ import annotations

import json
from typing import Any

from cdb_ops.fsutil import atomic_write
from cdb_ops.load.project import Project


def load_last_run(project: Project) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(project.last_run_file.read_text())
        return data
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def save_last_run(project: Project, document: dict[str, Any]) -> None:
    project.ensure_state_dir()
    atomic_write(project.last_run_file, json.dumps(document, indent=2), mode=0o644)
