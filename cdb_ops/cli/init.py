"""`cdb-ops init`: write .env from .env.example with freshly generated secrets."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer

from cdb_ops.cli.options import JsonOpt, ProjectDir

if TYPE_CHECKING:
    from cdb_ops.checks.feed import FeedReach
    from cdb_ops.cli.session import Invocation
    from cdb_ops.load.project import Project
    from cdb_ops.load.specs import StackSpec

EXAMPLE_FIX = "restore it from git (`git checkout .env.example`): init fills its secrets with fresh values"

InitFeedOpt = Annotated[
    str | None,
    typer.Option(
        "--feed",
        help="Write CDB_FEED=live or replay without checking the exchange (default: check whether its "
        "stream answers, from the engine's network, and choose).",
        show_default=False,
    ),
]


RotateOpt = Annotated[
    bool,
    typer.Option(
        "--rotate",
        help="Fresh values for the secrets of the existing .env (backed up first), every other line kept; "
        "the next `rebuild` applies them (the Postgres role's password is changed in place, no data lost).",
    ),
]


def choose_feed(project: Project, stack: StackSpec, text: str, feed: str | None) -> tuple[str, str, FeedReach | None]:
    """(.env text with CDB_FEED set, the feed, the check behind it). Decided here once, visibly: the
    comment above the line says why; `rebuild` never switches feeds on its own."""
    from cdb_ops.checks.feed import check_feed
    from cdb_ops.errors import EngineUnavailable, UsageError
    from cdb_ops.load.settings import set_env_value

    stamp = f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    if feed is not None:
        if feed not in ("live", "replay"):
            raise UsageError(f"--feed {feed!r} is not a feed", "use --feed live or --feed replay")
        return set_env_value(text, "CDB_FEED", feed, f"chosen with `cdb-ops init --feed {feed}` on {stamp}"), feed, None
    try:
        from cdb_ops.engine.docker import DockerEngine

        engine: DockerEngine | None = DockerEngine(timeout=15)
    except EngineUnavailable:
        engine = None  # checked from the host instead; the result says so
    reach = check_feed(stack, project, engine)
    if reach is None:  # a playbook without a live feed
        chosen = stack.default_feed or "replay"
        why = f"the playbook declares no live feed; chose {chosen} on {stamp}"
    else:
        chosen = "live" if reach.ok else "replay"
        why = f"{reach.summary} — chose {chosen} on {stamp}; `cdb-ops init --feed live|replay` changes it"
    return set_env_value(text, "CDB_FEED", chosen, why), chosen, reach


def init(
    ctx: typer.Context,
    project_dir: ProjectDir = None,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite an existing .env (the old one is backed up).")
    ] = False,
    if_missing: Annotated[bool, typer.Option("--if-missing", help="Do nothing (exit 0) when .env exists.")] = False,
    feed: InitFeedOpt = None,
    rotate: RotateOpt = False,
    json_output: JsonOpt = False,
) -> None:
    """Write .env from .env.example with freshly generated secrets (mode 0600), and CDB_FEED: live when
    the exchange's stream answers from the engine's network, else replay (offline, recorded frames)."""
    from cdb_ops.checks.notify import destination_hint
    from cdb_ops.cli.session import begin, stack_secrets
    from cdb_ops.errors import Conflict, UsageError
    from cdb_ops.fsutil import atomic_write, read_bytes, read_text
    from cdb_ops.load.envfile import parse_env_file, parse_env_text
    from cdb_ops.load.playbook import load_stack
    from cdb_ops.load.project import find_project
    from cdb_ops.load.settings import check_settings, load_settings, render_env_from_example
    from cdb_ops.redact import Redactor

    inv = begin(ctx, "init", json_output)
    project = find_project(project_dir)
    if rotate:
        if force or if_missing or feed:
            raise UsageError(
                "--rotate works on the existing .env; it goes with none of --force, --if-missing, --feed",
                "run `cdb-ops init --rotate` alone",
            )
        rotate_env(inv, project)
        return
    target = project.env_file
    stack = load_stack(project.stack_file)
    secrets = stack_secrets(stack)
    old: bytes | None = None
    if os.path.lexists(target):
        if if_missing and not force:
            inv.redact = Redactor(load_settings(target, secrets).secret_values())  # it must still be valid
            if "CDB_FEED" in parse_env_file(target) and feed is None:
                inv.renderer().message("init", f"{target} exists; kept it", path=str(target), backup=None)
                return
            # an older .env without CDB_FEED: the feed is decided now, once, and added to the file
            text, chosen, reach = choose_feed(project, stack, read_text(target, ".env file"), feed)
            atomic_write(target, text, mode=0o600)
            inv.renderer().message(
                "init",
                f"{target} exists; kept it and set CDB_FEED={chosen}" + (f" ({reach.summary})" if reach else ""),
                path=str(target),
                backup=None,
                feed=chosen,
                feed_check=reach.to_dict() if reach else None,
            )
            return
        if not force:
            raise Conflict(
                f"{target} already exists; not overwriting it",
                "keep it, or run `cdb-ops init --force` (the old file is backed up first)",
            )
        old = read_bytes(target, ".env file")  # a folder, FIFO or loop is refused here, before any write
    # everything is checked before anything is written: a refusal leaves .env (and its backup) untouched
    example = read_text(project.env_example, ".env.example file", missing_fix=EXAMPLE_FIX)
    text = render_env_from_example(example, secrets)
    # every secret is freshly generated, so what can still be wrong is a value to fix in .env.example
    settings = check_settings(parse_env_text(text, project.env_example), project.env_example, secrets)
    inv.redact = Redactor(settings.secret_values())
    text, chosen, reach = choose_feed(project, stack, text, feed)  # last: lines above keep their numbers
    backup = None
    if old is not None:
        backup = target.with_name(f".env.bak-{datetime.now(UTC):%Y%m%dT%H%M%SZ}")
        atomic_write(backup, old, mode=0o600)
    atomic_write(target, text, mode=0o600)
    inv.renderer().message(
        "init",
        f"wrote {target} (mode 0600) with generated secrets and CDB_FEED={chosen}"
        + (f" ({reach.summary})" if reach else "")
        + (f"; previous file backed up to {backup.name}" if backup else "")
        + (f"\n{hint}" if (hint := destination_hint(settings.values)) else ""),
        path=str(target),
        backup=str(backup) if backup else None,
        feed=chosen,
        feed_check=reach.to_dict() if reach else None,
    )


def rotate_env(inv: Invocation, project: Project) -> None:
    """`init --rotate`: the existing .env (it must be valid) with new secret values, the old file backed up."""
    from cdb_ops.fsutil import atomic_write
    from cdb_ops.load.envrotate import NOT_ROTATED, rotate_secrets
    from cdb_ops.load.settings import load_settings
    from cdb_ops.redact import Redactor

    target = project.env_file
    old = load_settings(target)  # refuses a missing or broken .env, naming file, line and fix
    text, rotated = rotate_secrets(target.read_text(encoding="utf-8-sig"))
    when = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
    backup, n = target.with_name(f".env.bak-{when}"), 1
    while backup.exists():  # two rotations within a second keep both previous files
        backup, n = target.with_name(f".env.bak-{when}-{n}"), n + 1
    backup.write_bytes(target.read_bytes())
    os.chmod(backup, 0o600)
    atomic_write(target, text, mode=0o600)
    inv.redact = Redactor(old.secret_values() + load_settings(target).secret_values())
    kept = [f"{k} kept: {why}" for k, why in NOT_ROTATED.items() if k in old.values]
    inv.renderer().message(
        "init",
        f"rotated {', '.join(rotated) or 'nothing'} in {target} (previous file backed up to {backup.name}); "
        "run `cdb-ops rebuild` to apply them: the Postgres role's password is changed in place, Redis and the "
        "services restart with the new secrets" + "".join(f"\n{k}" for k in kept),
        path=str(target),
        backup=str(backup),
        rotated=rotated,
    )
