"""`cdb-ops schema status|migrate`: the versioned SQL migrations in schema/."""

from __future__ import annotations

import typer

from cdb_ops.cli.options import JsonOpt, ProjectDir


def schema_status(ctx: typer.Context, project_dir: ProjectDir = None, json_output: JsonOpt = False) -> None:
    """Which migrations are applied, pending or changed; which tables exist in public."""
    from cdb_ops.cli.session import open_read
    from cdb_ops.db.migrations import Migrator
    from cdb_ops.errors import ExitCode
    from cdb_ops.load.endpoints import postgres_conninfo

    s = open_read(ctx, "schema status", json_output, project_dir)
    migrator = Migrator(postgres_conninfo(s.desired, s.settings), s.project.schema_dir)
    states = migrator.status()
    s.out.schema_status("schema status", states, migrator.public_tables())
    if any(st.state in ("changed", "missing") for st in states):
        raise typer.Exit(int(ExitCode.CONFIG))


def schema_migrate(ctx: typer.Context, project_dir: ProjectDir = None, json_output: JsonOpt = False) -> None:
    """Apply pending migrations (each once, in order, in its own transaction)."""
    from cdb_ops.cli.session import open_run
    from cdb_ops.db.migrations import Migrator
    from cdb_ops.load.endpoints import postgres_conninfo

    s = open_run(ctx, "schema migrate", json_output, project_dir)
    with Migrator(postgres_conninfo(s.desired, s.settings), s.project.schema_dir).session() as migrator:
        applied = migrator.migrate()
        states, tables = migrator.status(), migrator.public_tables()
    if not json_output:
        s.out.console.print(
            f"applied {len(applied)} migration(s)"
            + (": " + ", ".join(f"{m.version:03d}_{m.name}" for m in applied) if applied else "")
        )
    s.out.schema_status("schema migrate", states, tables, applied)


def register(app: typer.Typer) -> None:
    schema_app = typer.Typer(help="Versioned SQL migrations in schema/: status and migrate.", no_args_is_help=True)
    schema_app.command("status")(schema_status)
    schema_app.command("migrate")(schema_migrate)
    app.add_typer(schema_app, name="schema")
