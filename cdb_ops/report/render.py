"""The one renderer: every command's result becomes either a rich table (stdout) or JSON with a
`schema_version`. The JSON mirrors the table, built from the same data, never in two places."""

from __future__ import annotations

from typing import Any

from rich.console import Console, Group
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from cdb_ops.checks.backups import backup_lines
from cdb_ops.checks.notify import notify_lines
from cdb_ops.errors import CdbError
from cdb_ops.model.plan import Plan
from cdb_ops.model.results import CheckResult, Finding, MigrationState, RunResult
from cdb_ops.model.status import StatusRow
from cdb_ops.redact import Redactor
from cdb_ops.report.document import status_payload, write_document
from cdb_ops.report.styles import ACTION_STYLE
from cdb_ops.report.units import human_bytes as _human_bytes
from cdb_ops.report.units import human_duration as _human_duration
from cdb_ops.views.status import disk_lines, trading_lines


class Renderer:
    def __init__(self, json_output: bool, redact: Redactor | None = None, console: Console | None = None):
        self.json = json_output
        self.redact = redact or Redactor()
        if console is None:
            console = Console(highlight=False, emoji=False, soft_wrap=False)
            if not console.is_terminal:  # a pipe or a file: wide enough that ids and paths stay on one line
                console = Console(highlight=False, emoji=False, soft_wrap=False, width=160)
        self.console = console

    def document(self, command: str, payload: dict[str, Any]) -> None:
        """One JSON document on stdout, with `schema_version` and `command`, redacted."""
        write_document(self.redact, command, payload)

    # -- plan
    def plan(self, plan: Plan, profiles: list[str], feed: str | None) -> None:
        if self.json:
            self.document(
                "plan",
                {
                    "profiles": profiles,
                    "feed": feed,
                    "pending": len(plan.pending),
                    "conflicts": len(plan.conflicts),
                    "changes": [c.to_dict() for c in plan.changes],
                },
            )
            return
        table = Table(title=f"plan ({', '.join(profiles)}{', feed ' + feed if feed else ''})", title_justify="left")
        for col in ("resource", "name", "action", "why"):
            table.add_column(col, overflow="fold")
        for c in plan.changes:
            style = ACTION_STYLE.get(c.action, "white")
            table.add_row(c.resource, c.name, f"[{style}]{c.action}[/{style}]", escape(self.redact(c.reason)))
        self.console.print(table)
        if plan.conflicts:
            self.console.print(f"[bold red]{len(plan.conflicts)} conflict(s)[/bold red]: rebuild would refuse to run")
        elif plan.pending:
            self.console.print(f"{len(plan.pending)} change(s); `cdb-ops rebuild` applies them")
        else:
            self.console.print("[green]nothing to change[/green]: the stack is converged")

    # -- rebuild / run
    def run(self, result: RunResult) -> None:
        if self.json:
            self.document(result.command, result.to_dict())
            return
        table = Table(title=f"{result.command}: {result.playbook}", title_justify="left")
        for col in ("phase", "resource", "name", "action", "detail", "time"):
            table.add_column(col, overflow="fold")
        for s in result.steps:
            style = ACTION_STYLE.get(s.action, "white")
            table.add_row(
                s.phase,
                s.resource,
                s.name,
                f"[{style}]{s.action}[/{style}]",
                s.detail,
                f"{s.seconds:.1f}s" if s.seconds >= 0.05 else "",
            )
        self.console.print(table)
        if result.checks:
            self.checks(result.checks)
        took = (result.finished_at - result.started_at).total_seconds() if result.finished_at else 0.0
        if result.result == "ok":
            n = len(result.changed)
            what = f"{n} change(s)" if n else "nothing changed (already converged)"
            self.console.print(f"[green]✓ {result.playbook} ok[/green] in {took:.1f}s — {what}")
        else:
            self.console.print(f"[red]✗ {result.playbook} {result.result}[/red] after {took:.1f}s")

    # -- status
    def status(
        self,
        rows: list[StatusRow],
        last_run: dict[str, Any] | None,
        disk: dict[str, Any] | None = None,
        backups: dict[str, Any] | None = None,
        trading: dict[str, Any] | None = None,
        notifications: dict[str, Any] | None = None,
    ) -> None:
        if self.json:
            self.document("status", status_payload(rows, last_run, disk, backups, trading, notifications))
            return
        self.console.print(self.status_view(rows, last_run, disk, backups, trading, notifications))

    def status_view(
        self,
        rows: list[StatusRow],
        last_run: dict[str, Any] | None,
        disk: dict[str, Any] | None = None,
        backups: dict[str, Any] | None = None,
        trading: dict[str, Any] | None = None,
        notifications: dict[str, Any] | None = None,
    ) -> Group:
        """The status table and its footer as one renderable (printed once, or refreshed by --watch)."""
        table = Table(title="cdb-ops status", title_justify="left")
        for col in ("service", "container", "state", "health", "uptime", "restarts", "ports", "cpu", "memory", "image"):
            table.add_column(col, overflow="fold")
        for r in rows:
            # Text cells, not markup strings: names are shown as they are, and rich parses no markup
            health_style = {"healthy": "green", "unhealthy": "red", "starting": "yellow"}.get(r.health or "", "dim")
            table.add_row(
                Text(r.service),
                Text(r.container),
                Text(
                    "\n".join([r.state, *filter(None, r.exit_note.split(" · "))]),  # one part a line
                    style="green" if r.state == "running" and not r.exit_note else "red",
                ),
                Text(r.health or "-", style=health_style),
                Text(_human_duration(r.uptime_seconds)),
                Text(str(r.restarts), style="yellow" if r.restarts else ""),
                Text("\n".join(r.ports) or "-"),
                Text("-" if r.cpu_percent is None else f"{r.cpu_percent:.1f}%"),
                Text(_human_bytes(r.memory_bytes)),
                Text(r.image),
            )
        total = sum(r.memory_bytes or 0 for r in rows)
        footer = [Text(f"memory total: {_human_bytes(total)}")]
        if last_run:
            style = "green" if last_run.get("result") == "ok" else "red"
            error = last_run.get("error") or {}
            footer.append(
                Text.from_markup(
                    f"last {last_run.get('command')}: [{style}]{last_run.get('result')}[/{style}] at "
                    f"{last_run.get('finished_at') or last_run.get('started_at')} "
                    f"({last_run.get('changed', 0)} change(s))"
                    + (f" — {escape(error.get('message', '').splitlines()[0])}" if error.get("message") else "")
                )
            )
            if last_run.get("command") in ("rebuild", "run") and last_run.get("feed"):
                feed = last_run["feed"]
                footer.append(
                    Text(f"trading book: {feed} ({'live paper' if feed == 'live' else 'replay'}; the feed of the "
                         "last rebuild) — `cdb-ops portfolio`")
                )  # fmt: skip
        else:
            footer.append(Text("no rebuild recorded yet", style="dim"))
        footer += [Text.assemble(*parts) for parts in trading_lines(trading)]
        footer += [Text(line, style="dim" if disk is None else "") for line in disk_lines(disk)]
        footer += [Text(line) for line in backup_lines(backups)]
        footer += [Text(line) for line in notify_lines(notifications)]
        return Group(table, *footer)

    # -- validate
    def checks(self, results: list[CheckResult], run_id: str | None = None, recorded: bool | None = None) -> None:
        counts = {k: sum(r.status == k for r in results) for k in ("pass", "warn", "fail", "skip")}
        verdict = "fail" if counts["fail"] else "pass"
        if self.json:
            self.document(
                "validate",
                {
                    "result": verdict,
                    "counts": counts,
                    "run_id": run_id,
                    "recorded_in_ops_runs": recorded,
                    "checks": [r.to_dict() for r in results],
                },
            )
            return
        table = Table(title="cdb-ops validate", title_justify="left")
        for col in ("check", "result", "detail", "remedy"):
            table.add_column(col, overflow="fold")
        for r in results:
            style = ACTION_STYLE.get(r.status, "white")
            table.add_row(
                r.name,
                f"[{style}]{r.status}[/{style}]",
                escape(self.redact(r.detail)),
                escape(self.redact(r.remedy)) if r.status in ("fail", "warn") else "",
            )
        self.console.print(table)
        summary = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
        style = "red" if counts["fail"] else "green"
        self.console.print(f"[{style}]{'✗' if counts['fail'] else '✓'} {summary}[/{style}]")

    # -- doctor
    def findings(self, found: list[Finding]) -> None:
        problems = sum(f.verdict == "problem" for f in found)
        if self.json:
            self.document("doctor", {"problems": problems, "findings": [f.to_dict() for f in found]})
            return
        table = Table(title="cdb-ops doctor", title_justify="left")
        for col in ("check", "verdict", "diagnosis", "fix"):
            table.add_column(col, overflow="fold")
        for f in found:
            style = {"ok": "green", "problem": "bold red", "skip": "dim"}[f.verdict]
            table.add_row(
                f.name, f"[{style}]{f.verdict}[/{style}]", escape(self.redact(f.diagnosis)), escape(self.redact(f.fix))
            )
        self.console.print(table)
        for f in found:
            tail = f.facts.get("log_tail")
            if f.verdict == "problem" and tail:
                self.console.print(f"[bold]{f.name}[/bold] — last log lines:")
                for line in tail[-10:]:
                    self.console.print(f"  {escape(self.redact(str(line)))}", soft_wrap=True)
        self.console.print(
            "[green]✓ no problems found[/green]" if not problems else f"[red]✗ {problems} problem(s)[/red]"
        )

    # -- schema
    def schema_status(
        self, command: str, states: list[MigrationState], tables: list[str], applied: list[MigrationState] | None = None
    ) -> None:
        if self.json:
            self.document(
                command,
                {
                    "migrations": [s.to_dict() for s in states],
                    "public_tables": tables,
                    "pending": sum(s.state == "pending" for s in states),
                    "applied": [f"{m.version:03d}_{m.name}" for m in applied or []],
                },
            )
            return
        table = Table(title="schema migrations", title_justify="left")
        for col in ("version", "name", "state", "applied at", "checksum"):
            table.add_column(col)
        for s in states:
            style = {"applied": "green", "pending": "yellow"}.get(s.state, "bold red")
            table.add_row(
                f"{s.version:03d}",
                s.name,
                f"[{style}]{s.state}[/{style}]",
                s.applied_at.strftime("%Y-%m-%d %H:%M:%S") if s.applied_at else "-",
                s.checksum[:12],
            )
        self.console.print(table)
        self.console.print(f"tables in public: {len(tables)} ({', '.join(tables)})")

    # -- errors
    def error(self, err: CdbError, command: str) -> None:
        if self.json:
            self.document(command, {"error": err.to_dict()})
            return
        err_console = Console(stderr=True, highlight=False, emoji=False, soft_wrap=True)
        err_console.print(f"[bold red]error:[/bold red] {escape(self.redact(err.message))}")
        if err.remedy:
            err_console.print(f"[bold]fix:[/bold] {escape(self.redact(err.remedy))}")

    def warn(self, text: str) -> None:
        """A warning on stderr (with --json too: stdout stays one document)."""
        Console(stderr=True, highlight=False, emoji=False, soft_wrap=True).print(
            f"[bold yellow]warning:[/bold yellow] {escape(self.redact(text))}"
        )

    def message(self, command: str, text: str, **fields: Any) -> None:
        if self.json:
            self.document(command, {"message": text} | fields)
        else:
            self.console.print(self.redact(text))
