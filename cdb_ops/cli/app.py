"""The command line's root: the typer application, its commands, and `main()` — the one place that
turns an error into its message and exit code."""

from __future__ import annotations

import functools
import sys
import traceback
from typing import Annotated, Any

import typer
import typer.main

from cdb_ops import __version__
from cdb_ops.cli import backups, checks, converge, down, export, init, logs, planning, schema, status, trading
from cdb_ops.cli.session import Invocation
from cdb_ops.cli.warm import commands
from cdb_ops.errors import EXIT_CODE_MEANINGS, CdbError, ExitCode

# typer >= 0.25 vendors click; find its exception base through a public class instead of importing click
_ClickException: type[Exception] = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")

EXIT_TABLE = "\n".join(f"  {int(c):>3}  {m}" for c, m in EXIT_CODE_MEANINGS.items())


def _root(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    if version:
        typer.echo(f"cdb-ops {__version__}")
        raise typer.Exit(0)


def build_app() -> typer.Typer:
    app = typer.Typer(
        name="cdb-ops",
        help="Rebuild, check and report the Claire de Binare paper-trading stack through the Docker Engine API.",
        epilog=f"\b\nExit codes:\n{EXIT_TABLE}",
        no_args_is_help=True,
        rich_markup_mode=None,
        pretty_exceptions_enable=False,
        add_completion=False,
    )
    app.callback(invoke_without_command=True)(_root)
    # the order of `--help`
    for command in (
        init.init,
        planning.plan,
        converge.rebuild,
        converge.run,
        down.down,
        status.status,
        checks.validate,
        backups.backup,
        backups.restore,
        checks.doctor,
        logs.logs,
        trading.portfolio,
        trading.trades,
        trading.report,
    ):
        app.command()(command)
    schema.register(app)
    export.register(app)
    commands.register(app)
    return app


@functools.cache
def command() -> Any:
    """The click command typer makes of the app. Making it inspects every command's signature (30-40 ms
    here), so once per process; the warm server makes it before it forks (click keeps all per-run state
    in its Context, so the command object is reused as is)."""
    return typer.main.get_command(build_app())


def run(args: list[str] | None = None) -> int:
    """One invocation: the exit code, with every error shown the way the command shows its output.
    In-process callers (tests) get exactly what `cdb-ops ARGS` prints and returns."""
    inv = Invocation()
    try:
        rc = command().main(args=args, prog_name="cdb-ops", standalone_mode=False, obj=inv)
    except CdbError as err:
        inv.renderer().error(err, inv.command)
        return int(err.exit_code)
    except typer.Exit as e:
        return int(e.exit_code)
    except typer.Abort:
        return int(ExitCode.INTERRUPTED)
    except _ClickException as e:  # usage errors: unknown option, bad value, missing argument
        e.show()  # type: ignore[attr-defined]
        return int(ExitCode.USAGE)
    except KeyboardInterrupt:
        print("interrupted; run the same command again to finish", file=sys.stderr)
        return int(ExitCode.INTERRUPTED)
    except Exception:  # noqa: BLE001 - a bug: show it, exit 70
        print(inv.redact(traceback.format_exc()), file=sys.stderr)
        print("cdb-ops hit an internal error (a bug); please report the traceback above", file=sys.stderr)
        return int(ExitCode.INTERNAL)
    return int(rc or 0)


def main() -> None:
    sys.exit(run())
