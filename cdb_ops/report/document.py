"""JSON documents without the table machinery (rich): what `status --json` prints, importable on its
own so the quick status path stays light. `Renderer` prints the same documents."""

from __future__ import annotations

import json
import sys
from typing import Any

from cdb_ops import JSON_SCHEMA_VERSION
from cdb_ops.model.status import StatusRow
from cdb_ops.redact import Redactor

_LAST_RUN_KEYS = (
    "command",
    "playbook",
    "result",
    "exit_code",
    "started_at",
    "finished_at",
    "changed",
    "profiles",
    "feed",
)


def write_document(redact: Redactor, command: str, payload: dict[str, Any]) -> None:
    """One JSON document on stdout, with `schema_version` and `command`, redacted."""
    doc = {"schema_version": JSON_SCHEMA_VERSION, "command": command} | payload
    sys.stdout.write(redact(json.dumps(doc, indent=2, default=str)) + "\n")
    sys.stdout.flush()


def status_payload(
    rows: list[StatusRow],
    last_run: dict[str, Any] | None,
    disk: dict[str, Any] | None = None,
    backups: dict[str, Any] | None = None,
    trading: dict[str, Any] | None = None,
    notifications: dict[str, Any] | None = None,
) -> dict[str, Any]:
    last = None
    if last_run:
        last = {k: last_run.get(k) for k in _LAST_RUN_KEYS}
        if last_run.get("error"):
            last["error"] = last_run["error"].get("message")
    book = (last_run or {}).get("feed") if (last_run or {}).get("command") in ("rebuild", "run") else None
    return {
        "services": [r.to_dict() for r in rows],
        "last_run": last,
        "book": book,
        "disk": disk,
        "backups": backups,
        "trading": trading,
        "notifications": notifications,
    }
