"""`cdb-ops status` in plain Python: no typer, pydantic or docker-py. The stack's outline comes from the
cache under `.cdb/` (valid while no input file changed), the containers from one list call and
concurrent inspects over the engine's Unix socket. Whenever that cannot answer exactly as the full
command would (a flag it does not parse, no cache, a warning to show, a remote engine, an error) it
returns None and the full command runs — and reports whatever is wrong, the one way."""

from __future__ import annotations

from pathlib import Path

from cdb_ops.cli.plain_args import parse_plain


def _parse(args: list[str]) -> tuple[bool, Path | None, list[str] | None] | None:
    """(--json, --project-dir, --profile…) when `args` holds only those; None otherwise."""
    found = parse_plain(args, frozenset({"--json"}), frozenset({"--project-dir", "--profile"}))
    if found is None:
        return None
    project_dir = Path(found["--project-dir"][-1]) if "--project-dir" in found else None
    return "--json" in found, project_dir, found.get("--profile")


def quick_status(args: list[str]) -> int | None:
    parsed = _parse(args)
    if parsed is None:
        return None
    json_output, project_dir, profiles = parsed
    from cdb_ops.engine.cgroups import load_samples, save_samples
    from cdb_ops.engine.socket_reader import LeanUnavailable, SocketReader, local_socket
    from cdb_ops.errors import CdbError
    from cdb_ops.load.outline import load_outline
    from cdb_ops.load.project import find_project

    sock = local_socket()
    if sock is None:
        return None
    try:
        project = find_project(project_dir)
        outline = load_outline(project, "rebuild", profiles)
        if outline is None:
            return None
        from cdb_ops.load.envfile import parse_env_file
        from cdb_ops.load.lastrun import load_last_run
        from cdb_ops.redact import Redactor
        from cdb_ops.views.status import gather

        values = {k: e.value for k, e in parse_env_file(project.env_file).items()}
        redact = Redactor(values[k] for k in outline.secret_keys if values.get(k))
        from cdb_ops.views.status import books_conninfo, trading_in_background

        trading_now = trading_in_background(books_conninfo(outline, values))  # while the engine answers
        samples = project.state_dir / "cpu-samples.json"
        reader = SocketReader(sock, earlier=load_samples(samples))
        rows = gather(reader, outline)
        if any(r.state == "running" and r.memory_bytes is None for r in rows):
            return None  # cgroups not readable here: the full command asks the stats endpoint
        save_samples(samples, reader.latest)
        last_run = load_last_run(project)
        from cdb_ops.load.diskhistory import load_history
        from cdb_ops.views.status import disk_summary

        disk = disk_summary(load_history(project.state_dir))  # the latest sample: a small file, no measuring
        from cdb_ops.checks.backups import backup_summary

        backups = backup_summary(project.root, outline.system, values)
        trading = trading_now()  # one statement through libpq, run alongside the engine's answers
        from cdb_ops.checks.notify import notify_summary

        notifications = notify_summary(rows)
    except (CdbError, LeanUnavailable, OSError, ValueError):  # ValueError: a bad schedule, the full path says where
        return None
    if json_output:
        from cdb_ops.report.document import status_payload, write_document

        write_document(redact, "status", status_payload(rows, last_run, disk, backups, trading, notifications))
    else:
        from cdb_ops.report.status_text import print_status

        if not print_status(rows, last_run, disk, backups, trading, notifications):
            from cdb_ops.report.render import Renderer

            Renderer(False, redact).status(rows, last_run, disk, backups, trading, notifications)
    return 0
