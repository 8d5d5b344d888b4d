"""The command line: one module per command (or group), a session built once per invocation.

`main()` imports the full application only when it needs it: `status` in its plain forms is answered
by `cli.quick` without typer, pydantic or docker-py (and falls back to the full command otherwise)."""

from __future__ import annotations

import sys


def main() -> None:
    args = sys.argv[1:]
    if args[:1] == ["status"]:
        from cdb_ops.cli.quick import quick_status

        try:
            rc = quick_status(args[1:])
        except KeyboardInterrupt:
            rc = 130
        if rc is not None:
            sys.exit(rc)
    from cdb_ops.cli.app import main as full_main

    full_main()


__all__ = ["main"]
