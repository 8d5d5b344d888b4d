"""`cdb-ops backup` and `cdb-ops restore`: pg_dump of the database, and putting one back."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from cdb_ops.cli.options import JsonOpt, ProjectDir, YesOpt


def backup(
    ctx: typer.Context,
    project_dir: ProjectDir = None,
    keep: Annotated[
        int | None,
        typer.Option(
            "--keep",
            min=1,
            help="Keep only the N newest backups of the database (default: .env's BACKUP_KEEP_DAILY/WEEKLY/MONTHLY).",
        ),
    ] = None,
    drill: Annotated[
        bool,
        typer.Option(
            "--drill",
            help="Make no backup: restore the newest verified one into a throwaway database, compare its rows "
            "per table with what the dump held, drop it, and record the result.",
        ),
    ] = False,
    json_output: JsonOpt = False,
) -> None:
    """pg_dump of the stack's database (custom format) into backups/, verified (pg_restore --list reads it,
    checksums match), with a .sha256 file, a manifest of its rows and retention; the backup service runs
    the same on BACKUP_SCHEDULE. --drill proves the newest one restores."""
    from cdb_ops.apply.backup import backup_database, drill_database
    from cdb_ops.cli.session import open_run
    from cdb_ops.engine.docker import DockerEngine
    from cdb_ops.errors import StepFailed

    s = open_run(ctx, "backup", json_output, project_dir)
    if drill:
        d = drill_database(DockerEngine(), s.desired, s.settings, s.project, s.redact)
        if not d.ok:
            what = d.error or "rows differ: " + ", ".join(
                f"{t} dump {v['dump']} restored {v['restored']}" for t, v in d.mismatches.items()
            )
            raise StepFailed(
                f"restore drill of {d.file or 'the newest backup'} failed: {what}",
                "make a new backup (`cdb-ops backup`) and drill again; keep the failed dump for inspection",
            )
        s.out.message(
            "drill",
            f"restore drill passed: {d.file} restored into a throwaway database in {d.seconds:.1f}s; "
            f"{d.tables} tables, {d.rows} rows, each table's count equal to the dump's",
            **d.to_dict(),
        )
        return
    b = backup_database(DockerEngine(), s.desired, s.settings, s.project, s.redact, keep)
    s.out.message(
        "backup",
        f"wrote {b.path} ({b.size} bytes, sha256 {b.sha256[:12]}…) in {b.seconds:.1f}s; {b.verified}",
        **b.to_dict(),
    )


def restore(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="A .dump file made by `cdb-ops backup` (with its .sha256).")],
    project_dir: ProjectDir = None,
    yes: YesOpt = False,
    json_output: JsonOpt = False,
) -> None:
    """Replace the database's contents with a backup: checksum verified, current state backed up first.

    The services that use Postgres are stopped meanwhile (dependents first) and started again, each waited
    for until ready: no lock cycle with pg_restore, and each reads the restored state at start."""
    from cdb_ops.apply.backup import backup_database, verify
    from cdb_ops.apply.backup import restore as restore_db
    from cdb_ops.cli.session import open_run
    from cdb_ops.engine.docker import DockerEngine
    from cdb_ops.errors import ConfigError
    from cdb_ops.fsutil import regular_file_problem

    s = open_run(ctx, "restore", json_output, project_dir)
    file = Path(os.path.abspath(file))
    why = regular_file_problem(file)
    if why is not None:  # a folder or a FIFO is named as what it is (verify would say "does not exist")
        raise ConfigError(
            f"{file} {why}, not a backup file", "pass a .dump file from backups/ (see `ls backups/`)", file=str(file)
        )
    digest = verify(file)
    engine = DockerEngine()
    s.confirm(
        f"restore replaces every table of database {s.settings.get('POSTGRES_DB')} with {file.name} "
        "(the current contents are backed up first). Continue?",
        yes,
        {"file": str(file), "sha256": digest, "database": s.settings.get("POSTGRES_DB")},
    )
    safety = backup_database(engine, s.desired, s.settings, s.project, s.redact)
    from cdb_ops.db import journal
    from cdb_ops.db.trading_state import who
    from cdb_ops.load.endpoints import postgres_conninfo

    before = journal.read_all(postgres_conninfo(s.desired, s.settings))  # the dump's journal replaces these
    result = restore_db(engine, s.desired, s.settings, s.redact, file)
    carried, not_journaled = journal.record_restore(
        engine,
        s.desired,
        s.settings,
        before,
        f"restored {file.name} by {who()}",
        {"file": file.name, "sha256": digest, "safety_backup": safety.path.name},
        s.redact,
    )
    rows = result["rows"]
    s.out.message(
        "restore",
        f"restored {file.name} in {result['seconds']:.1f}s; previous contents saved as "
        f"{safety.path.name}; rows: "
        + ", ".join(f"{k} {v}" for k, v in rows.items())
        + (
            f"; stopped for it and started again: {', '.join(result['services_paused'])}"
            if result["services_paused"]
            else ""
        )
        + (
            f"; journal: not recorded ({not_journaled})" if not_journaled else f"; journal: {carried} newer row(s) kept"
        ),
        **result,
        safety_backup=safety.to_dict(),
        journaled=not_journaled is None,
        not_journaled_because=not_journaled,
        journal_rows_carried_over=carried,
    )
