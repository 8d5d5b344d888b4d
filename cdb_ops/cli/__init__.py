"""The command line: one module per command (or group), a session opened once per invocation.

Every command runs in its own process and leaves nothing behind. `main()` imports only what the
command needs: `--version` is answered here; `status` in its plain forms by `cli.status_plain` and `down` by
`cli.down_plain` (no typer, rich, pydantic or docker-py; each falls back to the full command otherwise);
anything else goes through `cli.app`, which imports only the module of the command that runs. A
command's module imports its session, engine and views inside the command function, so `cdb-ops X
--help` needs typer and the option declarations alone (tests/unit/test_layers.py runs every command's
--help to hold that)."""

from __future__ import annotations

import sys


def main() -> None:
    # A command run many times a day: without its bytecode cache each run compiles every module it imports
    # again (`status` +44 % instructions, bench/startup.py). Machines that set PYTHONDONTWRITEBYTECODE
    # globally would never let Python keep that cache, so the command keeps it anyway — next to the
    # sources, as Python does by default. Only here, in the command's own process: importing cdb_ops as a
    # library leaves the setting alone.
    sys.dont_write_bytecode = False
    leave(dispatch(sys.argv[1:]))


def leave(code: int) -> None:
    """End the process once the command is done, without the interpreter's teardown: freeing the objects
    of the ~700 modules a run command loads, one by one, takes 0.1–0.17 s of every command on a small
    machine and does nothing a finished command needs (mypy ends the same way: `util.hard_exit`). What the
    teardown does that matters is done first: atexit handlers (logging's flush, `coverage run`'s data)
    and the output flushed. The normal exit stays while a thread that is not a daemon still runs (it waits
    for it) and under a profiler or tracer (`python -m cProfile -m cdb_ops …` writes its stats afterwards)."""
    import threading

    others = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    if sys.getprofile() is not None or sys.gettrace() is not None or any(t.is_alive() for t in others):
        sys.exit(code)
    import atexit
    import contextlib
    import os

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe (`cdb-ops logs | head`): read enough
            stream.flush()
    os._exit(code)


def dispatch(args: list[str]) -> int:
    """One command, in this process: what `cdb-ops ARGS` prints and its exit code."""
    if args == ["--version"]:
        from cdb_ops import __version__

        print(f"cdb-ops {__version__}")
        return 0
    if args[:1] in (["status"], ["down"]):
        rc = _quick(args)
        if rc is not None:
            return rc
    from cdb_ops.cli.app import run

    return run(args)


def _quick(args: list[str]) -> int | None:
    """The quick path of `status` or `down` (None: it hands over to the full command)."""
    try:
        if args[0] == "status":
            from cdb_ops.cli.status_plain import quick_status

            return quick_status(args[1:])
        from cdb_ops.cli.down_plain import quick_down

        return quick_down(args[1:])
    except KeyboardInterrupt:  # (one that comes while the quick `down` runs is recorded by it already)
        import sys

        from cdb_ops.errors import INTERRUPTED_MESSAGE, ExitCode

        if args[0] == "down":
            print(INTERRUPTED_MESSAGE, file=sys.stderr)
        return int(ExitCode.INTERRUPTED)


__all__ = ["dispatch", "leave", "main"]
