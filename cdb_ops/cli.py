"""The command line: parse, call the core, render, choose the exit code. Nothing else lives here."""

from __future__ import annotations

import os
import sys
import time
import traceback
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from cdb_ops import __version__
from cdb_ops.desired import DesiredStack, resolve
from cdb_ops.engine import DockerEngine
from cdb_ops.errors import EXIT_CODE_MEANINGS, CdbError, Conflict, ExitCode, NeedsConfirmation, UsageError
from cdb_ops.phases import RunOptions
from cdb_ops.planner import plan_stack
from cdb_ops.playbook import RunbookSpec, StackSpec, load_runbook
from cdb_ops.progress import ConsoleProgress, JsonLinesProgress, Progress, QuietProgress
from cdb_ops.project import Project, find_project
from cdb_ops.render import Renderer
from cdb_ops.runner import execute, load_last_run
from cdb_ops.settings import Redactor, Settings, load_settings, render_env_from_example
from cdb_ops.stackinfo import postgres_conninfo
from cdb_ops.status import gather

# typer >= 0.25 vendors click; find its exception base through a public class instead of importing click
_ClickException: type[Exception] = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")

EXIT_TABLE = "\n".join(f"  {int(c):>3}  {m}" for c, m in EXIT_CODE_MEANINGS.items())

app = typer.Typer(
    name="cdb-ops",
    help="Rebuild, check and report the Claire de Binare paper-trading stack through the Docker Engine API.",
    epilog=f"\b\nExit codes:\n{EXIT_TABLE}",
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    add_completion=False,
)
schema_app = typer.Typer(help="Versioned SQL migrations in schema/: status and migrate.", no_args_is_help=True)
app.add_typer(schema_app, name="schema")


class ProgressMode(StrEnum):
    auto = "auto"
    plain = "plain"
    json = "json"
    none = "none"


@dataclass
class _Session:
    """What the error handler in main() needs to know about the running command."""

    command: str = ""
    json: bool = False
    redact: Redactor | None = None


_session = _Session()

ProjectDir = Annotated[
    Path | None,
    typer.Option(
        "--project-dir",
        help="Project directory (holds playbooks/, .env). Default: found from cwd.",
        envvar="CDB_PROJECT_DIR",
        show_default=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output on stdout (has schema_version).")]
ProfileOpt = Annotated[
    list[str] | None, typer.Option("--profile", help="Profile to include (repeatable). Default: core.")
]
FeedOpt = Annotated[str | None, typer.Option("--feed", help="Market-data feed: live or replay.")]


def _start(command: str, json_output: bool) -> Renderer:
    _session.command, _session.json = command, json_output
    return Renderer(json_output)


@dataclass
class Loaded:
    project: Project
    book: RunbookSpec
    stack: StackSpec
    settings: Settings
    desired: DesiredStack


def _load(project_dir: Path | None, playbook: str, profiles: list[str] | None, feed: str | None) -> Loaded:
    """Everything the user wrote, validated before the engine is even contacted."""
    project = find_project(project_dir)
    book, stack = load_runbook(project.playbook(playbook))
    settings = load_settings(project.env_file)
    _session.redact = Redactor(settings.secret_values())
    desired = resolve(stack, settings, project, profiles, feed)
    return Loaded(project, book, stack, settings, desired)


def _confirm(question: str, yes: bool, details: dict[str, object]) -> None:
    """Destructive steps need --yes or a person at a terminal; without either nothing happens (exit 7)."""
    if yes:
        return
    if sys.stdin.isatty() and not _session.json:
        if typer.confirm(question, default=False):
            return
        raise NeedsConfirmation("not confirmed; nothing was changed", "answer y, or pass --yes", details=details)
    raise NeedsConfirmation(
        f"{question} — refusing without --yes (no terminal to ask); nothing was changed",
        "run it again with --yes once the details are what you want",
        details=details,
    )


def _progress(mode: ProgressMode, json_output: bool, redact: Redactor, verbose: bool) -> Progress:
    if mode == ProgressMode.json:
        return JsonLinesProgress(redact)
    if mode == ProgressMode.none or (mode == ProgressMode.auto and json_output):
        return QuietProgress()
    return ConsoleProgress(redact, verbose=verbose)


@app.callback(invoke_without_command=True)
def _root(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    if version:
        typer.echo(f"cdb-ops {__version__}")
        raise typer.Exit(0)


@app.command()
def init(
    project_dir: ProjectDir = None,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite an existing .env (the old one is backed up).")
    ] = False,
    if_missing: Annotated[bool, typer.Option("--if-missing", help="Do nothing (exit 0) when .env exists.")] = False,
    json_output: JsonOpt = False,
) -> None:
    """Write .env from .env.example with freshly generated secrets (mode 0600)."""
    out = _start("init", json_output)
    project = find_project(project_dir)
    target = project.env_file
    backup = None
    if target.exists():
        if if_missing and not force:
            load_settings(target)  # an existing file must still be valid
            out.message("init", f"{target} exists; kept it", path=str(target), backup=None)
            return
        if not force:
            raise Conflict(
                f"{target} already exists; not overwriting it",
                "keep it, or run `cdb-ops init --force` (the old file is backed up first)",
            )
        backup = target.with_name(f".env.bak-{datetime.now(UTC):%Y%m%dT%H%M%SZ}")
        backup.write_bytes(target.read_bytes())
        os.chmod(backup, 0o600)
    if not project.env_example.is_file():
        raise CdbError(f"{project.env_example} is missing", "restore it from git (`git checkout .env.example`)")
    content = render_env_from_example(project.env_example.read_text())
    tmp = target.with_name(".env.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(content)
    os.chmod(tmp, 0o600)
    tmp.replace(target)
    load_settings(target)  # what we wrote must pass our own validation
    out.message(
        "init",
        f"wrote {target} (mode 0600) with generated secrets"
        + (f"; previous file backed up to {backup.name}" if backup else ""),
        path=str(target),
        backup=str(backup) if backup else None,
    )


@app.command()
def plan(
    project_dir: ProjectDir = None,
    profile: ProfileOpt = None,
    feed: FeedOpt = None,
    remove_orphans: Annotated[bool, typer.Option("--remove-orphans", help="Plan to remove orphans.")] = False,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Plan rebuilding every built image.")] = False,
    json_output: JsonOpt = False,
) -> None:
    """Show what `rebuild` would change, resource by resource. Changes nothing."""
    out = _start("plan", json_output)
    loaded = _load(project_dir, "rebuild", profile, feed)
    out.redact = _session.redact or out.redact
    engine = DockerEngine()
    result = plan_stack(engine, loaded.desired, remove_orphans=remove_orphans, no_cache=no_cache)
    out.plan(result, list(loaded.desired.profiles), loaded.desired.feed)
    if result.conflicts:
        raise typer.Exit(int(ExitCode.CONFLICT))


def _run_playbook(
    command: str,
    playbook: str,
    project_dir: Path | None,
    profile: list[str] | None,
    feed: str | None,
    phase: list[str] | None,
    options: RunOptions,
    json_output: bool,
    progress: ProgressMode,
    verbose: bool,
) -> None:
    out = _start(command, json_output)
    loaded = _load(project_dir, playbook, profile, feed)
    redact = _session.redact or Redactor([])
    out.redact = redact
    engine = DockerEngine()
    if options.wipe_data:
        from cdb_ops.desired import LABEL_DATA

        doomed = [v.name for v in engine.volumes(loaded.desired.system_label) if v.labels.get(LABEL_DATA) == "true"]
        _confirm(
            f"--wipe-data deletes the data volumes {', '.join(doomed) or '(none exist)'} after backing them up into "
            f"{loaded.project.root / 'backups'}. Continue?",
            options.yes,
            {"would_delete_volumes": doomed, "backup_dir": str(loaded.project.root / "backups")},
        )
    result = execute(
        command=command,
        engine=engine,
        desired=loaded.desired,
        settings=loaded.settings,
        project=loaded.project,
        book=loaded.book,
        progress=_progress(progress, json_output, redact, verbose),
        options=options,
        only=phase,
    )
    out.run(result)
    if result.error and not json_output:
        err = CdbError(result.error.get("message", ""), result.error.get("remedy", ""))
        out.error(err, command)
    raise typer.Exit(result.exit_code)


PhaseOpt = Annotated[
    list[str] | None,
    typer.Option("--phase", "--only", help="Run only this phase (repeatable), e.g. --phase schema."),
]
ProgressOpt = Annotated[ProgressMode, typer.Option("--progress", help="Progress on stderr: auto, plain, json, none.")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Show build output lines.")]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Answer yes to confirmations (for scripts).")]


@app.command()
def rebuild(
    project_dir: ProjectDir = None,
    clean: Annotated[
        bool, typer.Option("--clean", help="Remove the stack's containers and network first (data volumes are kept).")
    ] = False,
    wipe_data: Annotated[
        bool,
        typer.Option(
            "--wipe-data",
            help="Also delete the data volumes — after an automatic backup (pg_dump and an "
            "archive of each volume into backups/) and a confirmation (--yes for scripts).",
        ),
    ] = False,
    profile: ProfileOpt = None,
    feed: FeedOpt = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Rebuild images without Docker's layer cache.")] = False,
    phase: PhaseOpt = None,
    remove_orphans: Annotated[
        bool, typer.Option("--remove-orphans", help="Remove stack containers the playbook no longer selects.")
    ] = False,
    json_output: JsonOpt = False,
    yes: YesOpt = False,
    progress: ProgressOpt = ProgressMode.auto,
    verbose: VerboseOpt = False,
) -> None:
    """Converge the whole stack: cleanup, network, volumes, postgres + schema, redis, builds, start.

    Idempotent: on a converged stack nothing is recreated or restarted. Re-run to finish an
    interrupted run."""
    _run_playbook(
        "rebuild",
        "rebuild",
        project_dir,
        profile,
        feed,
        phase,
        RunOptions(
            clean=clean or wipe_data, wipe_data=wipe_data, remove_orphans=remove_orphans, no_cache=no_cache, yes=yes
        ),
        json_output,
        progress,
        verbose,
    )


@app.command()
def run(
    playbook: Annotated[str, typer.Argument(help="A playbook name in playbooks/ (e.g. rebuild) or a path.")],
    project_dir: ProjectDir = None,
    profile: ProfileOpt = None,
    feed: FeedOpt = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Rebuild images without the layer cache.")] = False,
    phase: PhaseOpt = None,
    json_output: JsonOpt = False,
    yes: YesOpt = False,
    progress: ProgressOpt = ProgressMode.auto,
    verbose: VerboseOpt = False,
) -> None:
    """Run any phase playbook (rebuild is one)."""
    _run_playbook(
        "run",
        playbook,
        project_dir,
        profile,
        feed,
        phase,
        RunOptions(no_cache=no_cache, yes=yes),
        json_output,
        progress,
        verbose,
    )


@app.command()
def status(
    project_dir: ProjectDir = None,
    profile: ProfileOpt = None,
    json_output: JsonOpt = False,
    watch: Annotated[bool, typer.Option("--watch", help="Refresh every --interval seconds until Ctrl-C.")] = False,
    interval: Annotated[float, typer.Option("--interval", min=0.5, help="Seconds between refreshes.")] = 2.0,
) -> None:
    """One table of the stack's containers: state, health, uptime, restarts, ports, CPU, memory, image."""
    out = _start("status", json_output)
    loaded = _load(project_dir, "rebuild", profile, None)
    engine = DockerEngine()
    if not watch or json_output:
        out.status(gather(engine, loaded.desired), load_last_run(loaded.project))
        return
    from rich.live import Live

    def view() -> object:
        return out.status_view(gather(engine, loaded.desired), load_last_run(loaded.project))

    try:
        if not out.console.is_terminal:  # a pipe or a log: one table per refresh, nothing redrawn
            while True:
                out.console.print(view())
                sys.stdout.flush()
                time.sleep(interval)
        with Live(view(), console=out.console, auto_refresh=False) as live:  # type: ignore[arg-type]
            while True:
                time.sleep(interval)
                live.update(view(), refresh=True)  # type: ignore[arg-type]
    except KeyboardInterrupt:  # the way to leave --watch: not an error
        return


@app.command()
def validate(
    project_dir: ProjectDir = None,
    profile: ProfileOpt = None,
    feed: FeedOpt = None,
    no_probe: Annotated[bool, typer.Option("--no-probe", help="Skip the end-to-end pipeline probe.")] = False,
    probe_timeout: Annotated[float, typer.Option("--probe-timeout", min=1, help="Seconds the probe may take.")] = 30.0,
    memory_budget: Annotated[float, typer.Option("--memory-budget", min=1, help="Core memory budget in MiB.")] = 1536.0,
    json_output: JsonOpt = False,
) -> None:
    """Check the memo's success criteria: engine, network, volumes, containers, /health, Postgres
    (9 tables, migrations), Redis, logs, memory, and an end-to-end probe. Exit 0 only when nothing failed."""
    import uuid

    from cdb_ops.opsruns import record
    from cdb_ops.validate import CheckResult, ValidateOptions, run_checks

    out = _start("validate", json_output)
    loaded = _load(project_dir, "rebuild", profile, feed)
    out.redact = _session.redact or out.redact
    started = datetime.now(UTC)
    try:
        engine = DockerEngine()
    except CdbError as exc:
        out.checks([CheckResult("engine", "fail", exc.message, exc.remedy)])
        raise typer.Exit(int(exc.exit_code)) from None
    options = ValidateOptions(memory_budget_mb=memory_budget, probe=not no_probe, probe_timeout=probe_timeout)
    results = run_checks(engine, loaded.desired, loaded.settings, options)
    failed = [r.name for r in results if r.status == "fail"]
    run_id = str(uuid.uuid4())
    why_not = record(
        loaded.desired,
        loaded.settings,
        run_id=run_id,
        command="validate",
        arguments={"probe": not no_probe, "profiles": list(loaded.desired.profiles)},
        started_at=started,
        finished_at=datetime.now(UTC),
        result="failed" if failed else "ok",
        exit_code=1 if failed else 0,
        summary={
            "failed_checks": failed,
            "counts": {k: sum(r.status == k for r in results) for k in ("pass", "warn", "fail", "skip")},
        },
    )
    out.checks(results, run_id, why_not is None)
    raise typer.Exit(int(ExitCode.CHECKS_FAILED) if failed else 0)


@app.command()
def backup(
    project_dir: ProjectDir = None,
    keep: Annotated[int, typer.Option("--keep", min=1, help="How many backups of the database to keep.")] = 7,
    json_output: JsonOpt = False,
) -> None:
    """pg_dump of the stack's database (custom format) into backups/, with a .sha256 file and retention."""
    from cdb_ops.backup import backup_database

    out = _start("backup", json_output)
    loaded = _load(project_dir, "rebuild", None, None)
    b = backup_database(DockerEngine(), loaded.desired, loaded.settings, loaded.project, keep)
    out.message(
        "backup", f"wrote {b.path} ({b.size} bytes, sha256 {b.sha256[:12]}…) in {b.seconds:.1f}s", **b.to_dict()
    )


@app.command()
def restore(
    file: Annotated[Path, typer.Argument(help="A .dump file made by `cdb-ops backup` (with its .sha256).")],
    project_dir: ProjectDir = None,
    yes: YesOpt = False,
    json_output: JsonOpt = False,
) -> None:
    """Replace the database's contents with a backup: checksum verified, current state backed up first."""
    from cdb_ops.backup import backup_database, verify
    from cdb_ops.backup import restore as restore_db

    out = _start("restore", json_output)
    loaded = _load(project_dir, "rebuild", None, None)
    digest = verify(file.resolve())
    engine = DockerEngine()
    _confirm(
        f"restore replaces every table of database {loaded.settings.get('POSTGRES_DB')} with {file.name} "
        "(the current contents are backed up first). Continue?",
        yes,
        {"file": str(file), "sha256": digest, "database": loaded.settings.get("POSTGRES_DB")},
    )
    safety = backup_database(engine, loaded.desired, loaded.settings, loaded.project)
    result = restore_db(engine, loaded.desired, loaded.settings, file.resolve())
    rows = result["rows"]
    out.message(
        "restore",
        f"restored {file.name} in {result['seconds']:.1f}s; previous contents saved as "
        f"{safety.path.name}; rows: " + ", ".join(f"{k} {v}" for k, v in rows.items()),
        **result,
        safety_backup=safety.to_dict(),
    )


export_app = typer.Typer(help="Write the stack in other formats.", no_args_is_help=True)
app.add_typer(export_app, name="export")


@export_app.command("compose")
def export_compose(
    project_dir: ProjectDir = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write (default: stdout).")] = None,
    profile: ProfileOpt = None,
    feed: FeedOpt = None,
    offline: Annotated[
        bool,
        typer.Option(
            "--offline",
            help="Use the local fallback builds instead of pulling "
            "postgres/redis/prometheus (for machines without a registry).",
        ),
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing output file.")] = False,
) -> None:
    """The stack as a Compose file (health checks, depends_on conditions, secrets as files)."""
    from cdb_ops.desired import write_secret_files
    from cdb_ops.export import render

    out = _start("export compose", False)
    loaded = _load(project_dir, "rebuild", profile, feed)
    base = output.resolve().parent if output else Path.cwd()
    text = render(loaded.desired, base, offline)
    write_secret_files(loaded.desired)  # the file refers to them: they must exist for compose to start
    if output is None:
        sys.stdout.write(text)
        return
    if output.exists() and not force:
        raise Conflict(f"{output} exists; not overwriting it", "pass --force, or choose another --output")
    output.write_text(text)
    out.message("export compose", f"wrote {output} ({len(loaded.desired.services)} services)")


@app.command()
def doctor(project_dir: ProjectDir = None, profile: ProfileOpt = None, json_output: JsonOpt = False) -> None:
    """Diagnose the known risks: Docker down, failed builds, Postgres not starting, services that cannot
    reach Postgres, ports held by other processes. Each finding comes with its fix."""
    from cdb_ops import doctor as doc

    out = _start("doctor", json_output)
    loaded = _load(project_dir, "rebuild", profile, None)
    out.redact = _session.redact or out.redact
    try:
        engine = DockerEngine()
    except CdbError as exc:
        out.findings(doc.engine_down(exc.message, exc.remedy))
        raise typer.Exit(int(exc.exit_code)) from None
    findings = doc.diagnose(engine, loaded.desired, loaded.settings, loaded.project)
    out.findings(findings)
    raise typer.Exit(int(ExitCode.CHECKS_FAILED) if any(f.verdict == "problem" for f in findings) else 0)


def _since(value: str | None) -> datetime | None:
    """'10m', '2h', '30s' ago, or an ISO time."""
    if not value:
        return None
    from datetime import timedelta

    from cdb_ops.playbook import parse_duration

    try:
        return datetime.now(UTC) - timedelta(seconds=parse_duration(value))
    except ValueError:
        pass
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(
            f"--since {value!r} is neither a duration nor a time",
            "write e.g. --since 10m, --since 2h or --since 2026-11-24T09:00:00",
        ) from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


@app.command()
def logs(
    services: Annotated[list[str] | None, typer.Argument(help="Services (e.g. signal risk); default: all.")] = None,
    project_dir: ProjectDir = None,
    errors: Annotated[
        bool, typer.Option("--errors", help="Only ERROR lines (and database-connection errors).")
    ] = False,
    since: Annotated[str | None, typer.Option("--since", help="Only lines since: 10m, 2h, or an ISO time.")] = None,
    tail: Annotated[int, typer.Option("--tail", min=1, help="Lines per service (without --since).")] = 200,
    follow_: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines until Ctrl-C.")] = False,
    profile: ProfileOpt = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="JSON: one document, or JSON lines with --follow.")
    ] = False,
) -> None:
    """The stack's logs merged by time, one colour per service."""
    from rich.markup import escape

    from cdb_ops import logs as logmod

    out = _start("logs", json_output)
    loaded = _load(project_dir, "rebuild", profile or ["core", *loaded_profiles(project_dir)], None)
    redact = _session.redact or Redactor([])
    chosen = logmod.select(loaded.desired, services or [])
    colour = {s: logmod.COLOURS[i % len(logmod.COLOURS)] for i, s in enumerate(loaded.desired.services)}
    width = max(len(s) for s in chosen)
    engine = DockerEngine()

    def show(line: logmod.LogLine) -> None:
        if json_output:
            sys.stdout.write(redact(logmod.as_json_line(line)) + "\n")
            sys.stdout.flush()
            return
        c = colour[line.service]
        out.console.print(f"[{c}]{line.service:<{width}}[/{c}] | {escape(redact(line.text))}", soft_wrap=True)

    since_t = _since(since)
    if follow_:
        try:
            for line in logmod.follow(engine, chosen, since_t, errors):
                show(line)
        except KeyboardInterrupt:
            return
        return
    lines = logmod.merged(engine, chosen, since_t, tail if since_t is None else 1_000_000, errors)
    if json_output:
        out._json("logs", {"services": list(chosen), "errors_only": errors, "lines": [ln.to_dict() for ln in lines]})
        return
    for line in lines:
        show(line)


def loaded_profiles(project_dir: Path | None) -> list[str]:
    """Every profile of the stack: logs shows whatever of the stack exists."""
    from cdb_ops.playbook import load_stack

    return sorted(load_stack(find_project(project_dir).stack_file).profiles - {"core"})


@schema_app.command("status")
def schema_status(project_dir: ProjectDir = None, json_output: JsonOpt = False) -> None:
    """Which migrations are applied, pending or changed; which tables exist in public."""
    from cdb_ops.migrations import Migrator

    out = _start("schema status", json_output)
    loaded = _load(project_dir, "rebuild", None, None)
    migrator = Migrator(postgres_conninfo(loaded.desired, loaded.settings), loaded.project.schema_dir)
    states = migrator.status()
    out.schema_status("schema status", states, migrator.public_tables())
    if any(s.state in ("changed", "missing") for s in states):
        raise typer.Exit(int(ExitCode.CONFIG))


@schema_app.command("migrate")
def schema_migrate(project_dir: ProjectDir = None, json_output: JsonOpt = False) -> None:
    """Apply pending migrations (each once, in order, in its own transaction)."""
    from cdb_ops.migrations import Migrator

    out = _start("schema migrate", json_output)
    loaded = _load(project_dir, "rebuild", None, None)
    migrator = Migrator(postgres_conninfo(loaded.desired, loaded.settings), loaded.project.schema_dir)
    applied = migrator.migrate()
    if not json_output:
        out.console.print(
            f"applied {len(applied)} migration(s)"
            + (": " + ", ".join(f"{m.version:03d}_{m.name}" for m in applied) if applied else "")
        )
    out.schema_status("schema migrate", migrator.status(), migrator.public_tables(), applied)


def main() -> None:
    try:
        rc = app(standalone_mode=False)
    except CdbError as err:
        Renderer(_session.json, _session.redact).error(err, _session.command or "cdb-ops")
        sys.exit(int(err.exit_code))
    except typer.Exit as e:
        sys.exit(int(e.exit_code))
    except typer.Abort:
        sys.exit(int(ExitCode.INTERRUPTED))
    except _ClickException as e:  # usage errors: unknown option, bad value, missing argument
        e.show()  # type: ignore[attr-defined]
        sys.exit(int(ExitCode.USAGE))
    except KeyboardInterrupt:
        print("interrupted; run the same command again to finish", file=sys.stderr)
        sys.exit(int(ExitCode.INTERRUPTED))
    except Exception:  # noqa: BLE001 - a bug: show it, exit 70
        text = traceback.format_exc()
        print((_session.redact or Redactor([]))(text), file=sys.stderr)
        print("cdb-ops hit an internal error (a bug); please report the traceback above", file=sys.stderr)
        sys.exit(int(ExitCode.INTERNAL))
    sys.exit(int(rc or 0))
