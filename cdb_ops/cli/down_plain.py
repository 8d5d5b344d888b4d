"""`cdb-ops down` without typer, pydantic, docker-py or rich — the same run, started in a tenth of the time.

The full `down` spends ~0.5 s loading the playbook models and docker-py before its first SIGTERM; this
path reads the stack's outline from the cache the last full `down` wrote under `.cdb/` (valid while no
input file changed), lists the stack's containers over the engine's Unix socket and stops and removes
them with the cleanup phase's own algorithm (apply/stopping.py) — dependents first, each gracefully —
under the same run lock, with the same steps, the same record in `.cdb/last_run.json` and the same
output (report/run_text.py), `--json` included.

Whenever it cannot do exactly what the full command would, it returns None and the full command runs:
a flag it does not parse (`--volumes`, `--progress`, `--verbose`), no cached outline, a warning to show,
a remote engine, a network another container still uses, a lock held, any engine error — also half-way,
since `down` is convergent: the full command observes what is left, finishes it and reports whatever is
still wrong, the one way."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from cdb_ops.cli.plain_args import parse_plain

if TYPE_CHECKING:
    from cdb_ops.engine.socket_engine import SocketEngine
    from cdb_ops.load.outline import StackOutline
    from cdb_ops.load.project import Project
    from cdb_ops.model.progress import Progress
    from cdb_ops.model.results import RunResult
    from cdb_ops.redact import Redactor


def _parse(args: list[str]) -> tuple[bool, Path | None] | None:
    """(--json, --project-dir) when `args` holds only those; None otherwise."""
    found = parse_plain(args, frozenset({"--json"}), frozenset({"--project-dir"}))
    if found is None:
        return None
    return "--json" in found, Path(found["--project-dir"][-1]) if "--project-dir" in found else None


class _HandOver(Exception):
    """The quick path stops here; the full command takes over (and reports, if anything is wrong)."""


def quick_down(args: list[str]) -> int | None:
    parsed = _parse(args)
    if parsed is None:
        return None
    json_output, project_dir = parsed
    from cdb_ops.engine.socket_reader import LeanUnavailable, local_socket
    from cdb_ops.errors import CdbError

    sock = local_socket()
    if sock is None:
        return None
    try:
        return _down(sock, json_output, project_dir)
    except (_HandOver, CdbError, LeanUnavailable, OSError, ValueError):
        return None


def _down(sock: str, json_output: bool, project_dir: Path | None) -> int:
    import uuid

    from cdb_ops.apply.lock import run_lock
    from cdb_ops.engine.socket_engine import SocketEngine
    from cdb_ops.load.envfile import parse_env_file
    from cdb_ops.load.outline import load_outline
    from cdb_ops.load.project import find_project
    from cdb_ops.model.results import RunResult
    from cdb_ops.redact import Redactor

    started = datetime.now(UTC)
    project = find_project(project_dir)
    outline = load_outline(project, "down", None)
    if outline is None or [kind for _, kind in outline.phases] != ["cleanup"]:
        raise _HandOver("no cached outline of a one-phase cleanup playbook")
    phase = outline.phases[0][0]
    values = {k: e.value for k, e in parse_env_file(project.env_file).items()}
    redact = Redactor(values[k] for k in outline.secret_keys if values.get(k))
    engine = SocketEngine(sock, timeout=30.0, cpu=False)
    result = RunResult(
        command="down",
        playbook=outline.playbook,
        run_id=str(uuid.uuid4()),
        started_at=started,
        profiles=list(outline.profiles),
        feed=outline.feed,
        phases=[phase],
    )
    project.ensure_state_dir()
    try:
        with run_lock(project.state_dir, f"down {outline.playbook} since {started:%H:%M:%S}"):
            _stop_the_stack(engine, project, outline, phase, redact, result, json_output)
    except KeyboardInterrupt:  # as the full command ends: the record says so, and how to finish
        import sys

        from cdb_ops.errors import Interrupted
        from cdb_ops.load.lastrun import save_last_run

        stop = Interrupted()
        result.finished_at = datetime.now(UTC)
        result.result, result.exit_code, result.error = "interrupted", int(stop.exit_code), stop.to_dict()
        save_last_run(project, result.to_dict())
        print(stop.message, file=sys.stderr)
        return result.exit_code
    return _report(project, result, redact, json_output)


def _stop_the_stack(
    engine: SocketEngine,
    project: Project,
    outline: StackOutline,
    phase: str,
    redact: Redactor,
    result: RunResult,
    json_output: bool,
) -> None:
    """What the cleanup phase does for `down`: every container of the stack stopped, dependents first, and
    removed, then the network; each step recorded into `result` and shown as it happens."""
    from cdb_ops.apply.rotate import pending_rotations, remember_after_removal
    from cdb_ops.apply.stopping import Doomed, how_it_stopped, stop_and_remove
    from cdb_ops.model.labels import LABEL_SERVICE, REPLACED_MARK, owned
    from cdb_ops.model.results import StepResult

    system = outline.system
    found = sorted(
        (c for c in engine.containers(label=outline.system_label) if owned(c.labels, system)), key=lambda c: c.name
    )
    net = engine.network(outline.network) if outline.network else None
    if net is not None:
        if not owned(net.get("Labels") or {}, system):
            raise _HandOver("the network is not the stack's: the full command reports it")
        ours = {c.name for c in found}
        members = {str(m.get("Name", "")) for m in (net.get("Containers") or {}).values()}
        if members - ours:
            raise _HandOver("another container still uses the network: the full command keeps it and says so")
    progress: Progress
    if json_output:
        from cdb_ops.report.progress import QuietProgress

        progress = QuietProgress()
    else:
        from cdb_ops.report.run_text import PlainProgress

        progress = PlainProgress(redact)
    progress.phase(phase, "cleanup")

    def record(
        resource: str, name: str, action: str, detail: str, seconds: float = 0.0, service: str | None = None
    ) -> None:
        step = StepResult(phase, resource, name, action, redact(detail), seconds, service)
        result.steps.append(step)
        progress.step(phase, resource, name, action, step.detail, seconds)

    facts = {c.name: c for c in found}
    reasons = {c.name: "left over from an interrupted recreate" if REPLACED_MARK in c.name else "down" for c in found}
    pending = pending_rotations(project)

    def removed(gone: Doomed, code: int | None, took: float) -> None:
        if outline.postgres_volume is not None and gone.service == outline.postgres_volume[0]:
            # as the cleanup phase does: what the data volume's password was set from, for the next start
            service, volume = outline.postgres_volume
            labels = engine.volume_labels(volume)
            if labels is not None:
                remember_after_removal(project, volume, labels, facts[gone.name].labels, service in pending)
        record("container", gone.name, "remove", f"{reasons[gone.name]}; {how_it_stopped(code)}", took, gone.service)

    doomed = [Doomed(c.name, c.labels.get(LABEL_SERVICE), c.running) for c in found]
    depends_on = {name: frozenset(deps) for name, deps in outline.depends_on}
    stop_and_remove(engine, outline.system_label, doomed, depends_on, removed)
    if net is not None:
        engine.remove_network(outline.network)
        record("network", outline.network, "remove", "down")
    if not result.steps:
        record("stack", system, "ok", "nothing to clean up")


def _report(project: Project, result: RunResult, redact: Redactor, json_output: bool) -> int:
    from cdb_ops.load.lastrun import save_last_run

    result.finished_at = datetime.now(UTC)
    result.result, result.exit_code = "ok", 0
    save_last_run(project, result.to_dict())
    if json_output:
        from cdb_ops.report.document import write_document

        write_document(redact, result.command, result.to_dict())
    else:
        from cdb_ops.report.run_text import print_run

        print_run(result, redact)
    return 0
