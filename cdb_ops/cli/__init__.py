"""The command line: one module per command (or group), a session built once per invocation.

`main()` imports the full application only when it needs it: a running warm server (`cdb_ops.cli.warm`)
takes the whole command, so nothing heavy is imported here at all; otherwise `status` in its plain
forms is answered by `cli.quick` without typer, pydantic or docker-py (and falls back to the full
command otherwise)."""

from __future__ import annotations

import sys


def main() -> None:
    args = sys.argv[1:]
    from cdb_ops.cli.warm.client import delegate

    rc = delegate(args)
    if rc is None:
        rc = dispatch(args)
    sys.exit(rc)


def dispatch(args: list[str]) -> int:
    """One command, in this process: what `cdb-ops ARGS` prints and its exit code. The warm server's
    worker calls exactly this."""
    if args[:1] == ["status"]:
        from cdb_ops.cli.quick import quick_status

        try:
            rc = quick_status(args[1:])
        except KeyboardInterrupt:
            rc = 130
        if rc is not None:
            return rc
    from cdb_ops.cli.app import run

    return run(args)


__all__ = ["dispatch", "main"]
