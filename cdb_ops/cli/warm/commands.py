"""`cdb-ops warm start|status|stop`: the background process that keeps cdb-ops' modules loaded (README
"Speed: the warm server")."""

from __future__ import annotations

import time

import typer

from cdb_ops.cli.warm import address, control
from cdb_ops.errors import HealthTimeout, UsageError


def _describe(found: dict) -> str:  # type: ignore[type-arg]
    up = int(time.time() - found["started_at"])
    rss = found.get("rss_bytes")
    memory = f", {rss / 2**20:.0f} MiB resident" if rss else ""
    return (
        f"pid {found['pid']}, up {up // 60}m{up % 60:02d}s, {found['modules']} modules loaded, "
        f"{found['commands_served']} command(s) served{memory}; quits after "
        f"{found['idle_timeout_seconds'] / 60:.0f} idle minutes; socket {found['socket']}"
    )


def warm_status() -> None:
    """Whether a warm server runs for this installation, and what it holds."""
    found = control.info()
    if address.disabled():
        typer.echo("warm server: off (CDB_OPS_WARM is set to turn it off); every command starts from scratch")
        if found is not None:
            typer.echo(f"one started earlier still runs — {_describe(found)}; `cdb-ops warm stop` stops it")
    elif found is None:
        typer.echo("warm server: none running; the next cdb-ops command starts one in the background")
    else:
        typer.echo(f"warm server: running — {_describe(found)}")


def warm_start() -> None:
    """Start the warm server now and wait until it answers (any command starts it anyway; this is for
    scripts and benchmarks that want the very next command warm)."""
    if address.disabled():
        raise UsageError("CDB_OPS_WARM turns the warm server off", "unset CDB_OPS_WARM (or set it to 1)")
    found = control.start()
    if found is None:
        raise HealthTimeout(
            "the warm server did not answer within 60 s",
            f"see its log in {address.runtime_dir()}; commands still run, each in its own process",
        )
    typer.echo(f"warm server: running — {_describe(found)}")


def warm_stop() -> None:
    """Stop this installation's warm server (the next command starts a fresh one unless CDB_OPS_WARM=0)."""
    found = control.stop()
    if found is None:
        typer.echo("warm server: none was running")
    else:
        typer.echo(f"warm server: stopped pid {found['pid']} after {found['commands_served']} command(s)")


def register(app: typer.Typer) -> None:
    warm_app = typer.Typer(
        help="The warm server: a background process per installation that keeps cdb-ops' modules loaded, so "
        "commands skip ~1 s of start-up. Changes nothing a command does or prints; CDB_OPS_WARM=0 turns it off.",
        no_args_is_help=True,
    )
    warm_app.command("status")(warm_status)
    warm_app.command("start")(warm_start)
    warm_app.command("stop")(warm_stop)
    app.add_typer(warm_app, name="warm")
