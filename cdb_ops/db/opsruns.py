"""Record every rebuild / validate / run in the `ops_runs` table (when, what, result), best effort:
a stack whose Postgres is down must still get its run reported on screen. A finished run also ages out
the runs older than OPS_RUN_RETENTION_DAYS (cdb_common.retention): cdb-ops is the table's only writer,
so this is where its retention runs, in small batches that never wait for a lock."""

from __future__ import annotations

import json
from typing import Any

from cdb_ops import __version__
from cdb_ops.errors import CdbError
from cdb_ops.load.desired import DesiredStack
from cdb_ops.load.endpoints import postgres_conninfo
from cdb_ops.load.settings import Settings
from cdb_ops.redact import Redactor


def record(
    desired: DesiredStack,
    settings: Settings,
    redact: Redactor,
    *,
    run_id: str,
    command: str,
    arguments: dict[str, Any],
    started_at: Any,
    finished_at: Any,
    result: str,
    exit_code: int,
    summary: dict[str, Any],
) -> str | None:
    """Insert (or complete) the run's row. Returns None on success, else why it was not recorded."""
    import psycopg

    try:
        conninfo = postgres_conninfo(desired, settings)
    except CdbError as exc:
        return exc.message
    try:
        with psycopg.connect(**conninfo, connect_timeout=3, autocommit=True) as conn:
            exists = conn.execute("SELECT to_regclass('public.ops_runs')").fetchone()
            if not exists or exists[0] is None:
                return "ops_runs does not exist yet (schema not migrated)"
            conn.execute(
                """INSERT INTO ops_runs (run_id, command, arguments, started_at, finished_at, result, exit_code,
                                         summary, tool_version)
                   VALUES (%s, %s, %s::jsonb, %s, %s, %s, %s, %s::jsonb, %s)
                   ON CONFLICT (run_id) DO UPDATE SET finished_at = EXCLUDED.finished_at,
                       result = EXCLUDED.result, exit_code = EXCLUDED.exit_code, summary = EXCLUDED.summary""",
                (
                    run_id,
                    command,
                    redact(json.dumps(arguments, default=str)),
                    started_at,
                    finished_at,
                    result,
                    exit_code,
                    redact(json.dumps(summary, default=str)),
                    __version__,
                ),
            )
            if result != "running":
                prune(conn, settings)
    except psycopg.Error as exc:
        return redact(str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__)
    return None


def prune(conn: Any, settings: Settings) -> int:
    """Delete the runs past their retention; how many. Never fails the recording: a run that cannot prune
    (a lock held, a statement cancelled) leaves it to the next run."""
    import psycopg
    from cdb_common.config import ConfigError
    from cdb_common.retention import OPS_RUNS, batch_rows, prune_sync

    keys = (OPS_RUNS.setting, "RETENTION_BATCH_ROWS")
    env = {k: settings.get(k) or "" for k in keys}
    try:
        return prune_sync(conn, OPS_RUNS, OPS_RUNS.days(env), batch_rows(env)).deleted
    except (psycopg.Error, ConfigError):
        return 0
