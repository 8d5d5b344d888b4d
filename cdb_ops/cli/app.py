"""The command line's root: the typer application, its commands, and `run()` — the one place that
turns an error into its message and exit code.

Commands are registered lazily: the root knows each command's name, module and one-line summary
(COMMANDS), and imports a command's module — with what that module imports — only when that command
runs or its own help is asked for. `cdb-ops --help` imports no command module at all."""

from __future__ import annotations

import importlib
import sys
import traceback
from typing import Annotated, Any

import typer
import typer.core
import typer.main

from cdb_ops import __version__
from cdb_ops.cli.invocation import Invocation
from cdb_ops.errors import EXIT_CODE_MEANINGS, INTERRUPTED_MESSAGE, CdbError, ExitCode, UsageError

# typer >= 0.25 vendors click; find its exception base through a public class instead of importing click
_ClickException: type[Exception] = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")

EXIT_TABLE = "\n".join(f"  {int(c):>3}  {m}" for c, m in EXIT_CODE_MEANINGS.items())

# name -> (module under cdb_ops.cli, the function or `register` that makes it, the first paragraph of its
# help as `--help` lists it), in the order of `--help`. tests/unit/test_cli.py checks every summary against
# the command itself.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "init": (
        "init",
        "init",
        "Write .env from .env.example with freshly generated secrets (mode 0600), and CDB_FEED: live when the "
        "exchange's stream answers from the engine's network, else replay (offline, recorded frames).",
    ),
    "plan": ("plan", "plan", "Show what `rebuild` would change, resource by resource. Changes nothing."),
    "rebuild": (
        "rebuild",
        "rebuild",
        "Converge the whole stack: cleanup, network, volumes, postgres + schema, redis, builds, start.",
    ),
    "run": ("rebuild", "run", "Run any phase playbook (rebuild is one)."),
    "down": (
        "down",
        "down",
        "Stop the stack (reverse dependency order, graceful: each service gets SIGTERM and time to finish "
        "in-flight work) and remove its containers and network. Volumes stay; `rebuild` brings back the same "
        "data. Only resources labelled with the stack's system are touched.",
    ),
    "status": (
        "status",
        "status",
        "One table of the stack's containers: state, health, uptime, restarts, ports, CPU, memory, image; "
        "under it the last rebuild, each book's trading state, the disk and the backups.",
    ),
    "validate": (
        "validate",
        "validate",
        "Check the memo's success criteria: engine, network, volumes, containers, /health, Postgres (9 tables, "
        "migrations), Redis, logs, memory, and an end-to-end probe. Exit 0 only when nothing failed.",
    ),
    "backup": (
        "backup",
        "backup",
        "pg_dump of the stack's database (custom format) into backups/, verified (pg_restore --list reads it, "
        "checksums match), with a .sha256 file, a manifest of its rows and retention; the backup service runs "
        "the same on BACKUP_SCHEDULE. --drill proves the newest one restores.",
    ),
    "restore": (
        "backup",
        "restore",
        "Replace the database's contents with a backup: checksum verified, current state backed up first.",
    ),
    "doctor": (
        "doctor",
        "doctor",
        "Diagnose the known risks: Docker down, failed builds, Postgres not starting, services that cannot "
        "reach Postgres, ports held by other processes. Each finding comes with its fix.",
    ),
    "logs": ("logs", "logs", "The stack's logs merged by time, one colour per service."),
    "portfolio": (
        "portfolio",
        "portfolio",
        "Cash, equity, exposure (% of the cap), realized/unrealized PnL, today's drawdown and the breaker, "
        "headroom for the next entry, and the open positions with their marks (a stale mark is flagged).",
    ),
    "trades": (
        "trades",
        "trades",
        "Fills with side, qty, price, fee and realized PnL, and the signal and risk decision behind each.",
    ),
    "report": (
        "report",
        "report",
        "Per day and per pair: trades, win rate, realized PnL, fees; the equity curve (drawn in the terminal) "
        "with its max drawdown; with --html FILE the same as one self-contained HTML file.",
    ),
    "journal": (
        "journal",
        "journal",
        "What was live when: trading-state changes, breaker trips, rebuilds, rollbacks and restores, each with "
        "who, when, why and the image id and config hash of every service then live.",
    ),
    "trading": (
        "trading",
        "register",
        "A book's trading state: status, halt (--flatten), reduce (exits only), resume; persisted, enforced by risk.",
    ),
    "rollback": (
        "rollback",
        "rollback",
        "Put back the containers the last upgrade replaced (previous image and configuration), drained and "
        "stop-first, each book's state given back; names the backup that undoes its migrations.",
    ),
    "schema": ("schema", "register", "Versioned SQL migrations in schema/: status and migrate."),
    "export": ("export", "register", "Write the stack in other formats."),
}


def load_command(name: str) -> Any:
    """The click command (or group) `name`, its module imported now. A command function gets the settings
    the root gives its commands (no rich markup); a group's module registers it with `register(app)`."""
    module_name, attr, _ = COMMANDS[name]
    target = getattr(importlib.import_module(f"cdb_ops.cli.{module_name}"), attr)
    holder = typer.Typer(rich_markup_mode=None, add_completion=False)
    if attr == "register":
        target(holder)
    else:
        holder.command(name)(target)
    return typer.main.get_group(holder).commands[name]


class LazyGroup(typer.core.TyperGroup):
    """The root group: commands from COMMANDS, each made when first asked for."""

    def list_commands(self, ctx: Any) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        return load_command(cmd_name) if cmd_name in COMMANDS else None

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        """The command list of `--help` from the summaries, so listing imports no command module."""
        limit = formatter.width - 6 - max(len(n) for n in COMMANDS)
        rows = [(n, typer.core.TyperCommand(n, help=s).get_short_help_str(limit)) for n, (_, _, s) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _root(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    if version:
        typer.echo(f"cdb-ops {__version__}")
        raise typer.Exit(0)


def command() -> Any:
    """The root click group (cheap: no command module is imported to make it)."""
    app = typer.Typer(
        name="cdb-ops",
        cls=LazyGroup,
        help="Rebuild, check and report the Claire de Binare paper-trading stack through the Docker Engine API.",
        epilog=f"\b\nExit codes:\n{EXIT_TABLE}",
        no_args_is_help=True,
        rich_markup_mode=None,
        pretty_exceptions_enable=False,
        add_completion=False,
    )
    app.callback(invoke_without_command=True)(_root)
    return typer.main.get_command(app)


def run(args: list[str] | None = None) -> int:
    """One invocation: the exit code, with every error shown the way the command shows its output.
    In-process callers (tests) get exactly what `cdb-ops ARGS` prints and returns."""
    argv = sys.argv[1:] if args is None else list(args)
    # Known before the command's own code runs: an error raised while its options are still being read
    # (a usage error, a playbook its option defaults read) is shown the way the command shows its output,
    # so `--json` always gets exactly one JSON document on stdout.
    words = argv[: argv.index("--")] if "--" in argv else argv
    inv = Invocation(command=next((w for w in words if not w.startswith("-")), "cdb-ops"), json="--json" in words)
    try:
        rc = command().main(args=argv, prog_name="cdb-ops", standalone_mode=False, obj=inv)
    except CdbError as err:
        inv.renderer().error(err, inv.command)
        return int(err.exit_code)
    except typer.Exit as e:
        return int(e.exit_code)
    except typer.Abort:
        return int(ExitCode.INTERRUPTED)
    except _ClickException as e:  # usage errors: unknown option, bad value, missing argument
        # shown like every other error (error:, fix:; one JSON document with --json)
        problem = UsageError(e.format_message(), f"see `cdb-ops {inv.command} --help`")  # type: ignore[attr-defined]
        inv.renderer().error(problem, inv.command)
        return int(ExitCode.USAGE)
    except KeyboardInterrupt:
        print(INTERRUPTED_MESSAGE, file=sys.stderr)
        return int(ExitCode.INTERRUPTED)
    except Exception:  # noqa: BLE001 - a bug: show it, exit 70
        print(inv.redact(traceback.format_exc()), file=sys.stderr)
        print("cdb-ops hit an internal error (a bug); please report the traceback above", file=sys.stderr)
        return int(ExitCode.INTERNAL)
    return int(rc or 0)


def main() -> None:
    sys.exit(run())
