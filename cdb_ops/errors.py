"""Exit codes and the error hierarchy: every expected failure carries its message, remedy and exit code."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """The one table of exit codes (README "Exit codes" mirrors it)."""

    OK = 0
    CHECKS_FAILED = 1
    USAGE = 2
    CONFIG = 3
    ENGINE_UNREACHABLE = 4
    TIMEOUT = 5
    CONFLICT = 6
    NEEDS_CONFIRMATION = 7
    INTERNAL = 70
    INTERRUPTED = 130


# what an interrupted command says (and its record, for runs): it is safe to run it again, which finishes it
INTERRUPTED_MESSAGE = "interrupted; run the same command again to finish"

EXIT_CODE_MEANINGS: dict[ExitCode, str] = {
    ExitCode.OK: "success",
    ExitCode.CHECKS_FAILED: "checks failed (validate, or a step of rebuild failed)",
    ExitCode.USAGE: "usage error (bad command-line arguments)",
    ExitCode.CONFIG: "config error (playbook, .env or migration files are invalid)",
    ExitCode.ENGINE_UNREACHABLE: "Docker engine unreachable",
    ExitCode.TIMEOUT: "timeout (a health wait or probe did not finish in time)",
    ExitCode.CONFLICT: "conflict (foreign resource with our name, port held, another run holds the lock)",
    ExitCode.NEEDS_CONFIRMATION: "needs confirmation (destructive step asked without --yes)",
    ExitCode.INTERNAL: "internal error (a bug: please report it)",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C / SIGINT)",
}


class CdbError(Exception):
    """An expected failure: the CLI prints `message` and `remedy` and exits with `exit_code`."""

    exit_code: ExitCode = ExitCode.CHECKS_FAILED
    kind: str = "error"

    def __init__(self, message: str, remedy: str = "", *, details: dict[str, object] | None = None):
        super().__init__(message)
        self.message = message
        self.remedy = remedy
        self.details = details or {}

    def to_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "message": self.message,
            "remedy": self.remedy,
            "exit_code": int(self.exit_code),
            "details": self.details,
        }


class Interrupted(CdbError):
    """Ctrl-C ended a run: what its record and `--json` say (running it again finishes it)."""

    exit_code = ExitCode.INTERRUPTED
    kind = "interrupted"

    def __init__(self) -> None:
        super().__init__(INTERRUPTED_MESSAGE)


class UsageError(CdbError):
    exit_code = ExitCode.USAGE
    kind = "usage"


class ConfigError(CdbError):
    """A file the user wrote (playbook, .env, migration) is invalid; nothing was changed."""

    exit_code = ExitCode.CONFIG
    kind = "config"

    def __init__(
        self,
        message: str,
        remedy: str = "",
        *,
        file: str | None = None,
        line: int | None = None,
        column: int | None = None,
        details: dict[str, object] | None = None,
    ):
        where = file or ""
        if file and line:
            where = f"{file}:{line}" + (f":{column}" if column else "")
        super().__init__(f"{where}: {message}" if where else message, remedy, details=details)
        self.file = file
        self.line = line
        self.column = column
        self.details.update({k: v for k, v in (("file", file), ("line", line), ("column", column)) if v is not None})


class ConfigErrors(ConfigError):
    """Several problems found in one pass, so the user fixes them all at once."""

    def __init__(self, errors: list[ConfigError]):
        self.errors = errors
        lines = [e.message + (f"\n    fix: {e.remedy}" if e.remedy else "") for e in errors]
        super().__init__(
            f"{len(errors)} problem(s):\n  " + "\n  ".join(lines),
            "fix the lines above and run the command again; nothing was changed",
            details={"errors": [e.to_dict() for e in errors]},
        )


class EngineUnavailable(CdbError):
    exit_code = ExitCode.ENGINE_UNREACHABLE
    kind = "engine_unavailable"


class Conflict(CdbError):
    exit_code = ExitCode.CONFLICT
    kind = "conflict"


class ForeignResource(Conflict):
    kind = "foreign_resource"


class LockHeld(Conflict):
    kind = "lock_held"


class HealthTimeout(CdbError):
    exit_code = ExitCode.TIMEOUT
    kind = "health_timeout"


class DrainTimeout(CdbError):
    """Orders were still in flight when a drained upgrade's wait ran out (apply/drain.py)."""

    exit_code = ExitCode.TIMEOUT
    kind = "drain_timeout"


class NeedsConfirmation(CdbError):
    exit_code = ExitCode.NEEDS_CONFIRMATION
    kind = "needs_confirmation"


class StepFailed(CdbError):
    """A step of a run failed for a reason that is not one of the above (a build, a container start)."""

    exit_code = ExitCode.CHECKS_FAILED
    kind = "step_failed"


class BuildFailed(StepFailed):
    kind = "build_failed"


class DatabaseUnavailable(CdbError):
    """The stack's Postgres cannot be read (stack down, schema too old): the trader's views."""

    exit_code = ExitCode.CHECKS_FAILED
    kind = "database"


class PullFailed(StepFailed):
    kind = "pull_failed"
