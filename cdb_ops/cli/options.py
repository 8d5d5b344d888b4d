"""The command-line options several commands share (typer annotations)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer


class ProgressMode(StrEnum):
    auto = "auto"
    plain = "plain"
    json = "json"
    none = "none"


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
    list[str] | None,
    typer.Option(
        "--profile", help="Profile to include (repeatable). Default: the playbook's default_profiles (core, alerting)."
    ),
]
FeedOpt = Annotated[str | None, typer.Option("--feed", help="Market-data feed: live or replay.")]
PhaseOpt = Annotated[
    list[str] | None,
    typer.Option("--phase", "--only", help="Run only this phase (repeatable), e.g. --phase schema."),
]
ProgressOpt = Annotated[ProgressMode, typer.Option("--progress", help="Progress on stderr: auto, plain, json, none.")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Show build output lines.")]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Answer yes to confirmations (for scripts).")]
