"""Content hashes of what a container is made from: a build context (only the files its Dockerfile
COPYs, minus .dockerignore) and bind-mounted project files — so a no-op rebuild sends no build at all."""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

from cdb_ops.errors import ConfigError
from cdb_ops.fsutil import digest_entry, read_text, regular_file_problem, tree_digest
from cdb_ops.load.project import Project
from cdb_ops.load.specs import BuildSpec

# bump when the labels an image is built with change, so existing images are rebuilt once
IMAGE_LABELS_VERSION = 2


def sha256(data: bytes | str) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def _read_dockerignore(context: Path) -> list[str]:
    f = context / ".dockerignore"
    if not os.path.lexists(f):
        return []
    text = read_text(f, ".dockerignore file")
    return [ln.strip().rstrip("/") for ln in text.split("\n") if ln.strip() and not ln.startswith("#")]


def _copy_sources(dockerfile: Path) -> list[str] | None:
    """The context paths a Dockerfile's COPY/ADD lines read, or None when it reads the whole context.

    The image depends only on the Dockerfile and these files, so the build hash covers just them:
    editing the screener does not rebuild (and recreate) the signal engine, though both share images/."""
    sources: list[str] = []
    text = read_text(dockerfile, "Dockerfile").replace("\r\n", "\n").replace("\\\n", " ")
    for raw in text.splitlines():
        parts = raw.strip().split()
        if not parts or parts[0].upper() not in ("COPY", "ADD"):
            continue
        args = [a for a in parts[1:] if not a.startswith("--")]
        if any(a.startswith("--from") for a in parts[1:]):
            continue  # copies from another stage, not from the context
        if args and args[0].startswith("["):  # JSON form
            try:
                args = json.loads(" ".join(parts[1:]).split("]", 1)[0] + "]")
            except json.JSONDecodeError:
                return None
        for src in args[:-1]:
            src = src.strip("/").removeprefix("./")
            if src in ("", ".") or any(ch in src for ch in "*?[$"):
                return None  # the whole context, a glob or a variable: hash everything
            if os.path.normpath(src).startswith(".."):
                continue  # outside the context: the build refuses it; never hash what lies outside
            sources.append(src)
    return sources


def build_context_hash(project: Project, build: BuildSpec, line: Callable[[], int | None] = lambda: None) -> str:
    """Content hash of a build: the Dockerfile, the args, and every context file its COPY/ADD lines
    read (all of the context when that cannot be told), minus .dockerignore.

    An image whose label carries this hash is current, so a no-op rebuild sends no build at all."""
    context = Path(os.path.normpath(project.root / build.context))  # lexical: a loop is reported, not raised
    if not os.path.isdir(context):
        raise ConfigError(
            f"build context {build.context!r} is not a folder ({regular_file_problem(context) or 'a file'})",
            "fix `context:` in playbooks/stack.yaml (a folder relative to the project)",
            file=str(project.stack_file),
            line=line(),  # asked only now: finding it reads the playbook again
        )
    dockerfile = Path(os.path.normpath(context / dockerfile_of(build)))
    ignore = _read_dockerignore(context)
    sources = _copy_sources(dockerfile)  # reads it the safe way: a missing or odd Dockerfile is refused
    roots = [context] if sources is None else [context / src for src in sources]
    # names as bytes: a build context may hold a file whose name is not UTF-8; a symlink is hashed as a
    # link and a FIFO by its kind (fsutil.digest_entry), as the build's tar sends them
    files: set[bytes] = {os.fsencode(dockerfile)}
    for root in roots:
        if not os.path.isdir(root) or os.path.islink(root):
            files.add(os.fsencode(root))
            continue
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            rel_dir = os.path.relpath(dirpath, context)
            dirnames[:] = [
                d
                for d in dirnames
                if not any(fnmatch.fnmatch(os.path.normpath(os.path.join(rel_dir, d)), p) or d == p for p in ignore)
            ]
            links = [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
            files.update(os.fsencode(os.path.join(dirpath, name)) for name in [*filenames, *links])
    h = hashlib.sha256()
    base = os.fsencode(context)
    for full in sorted(files, key=lambda b: b.split(b"/")):  # the order of Path's parts, as before
        rel = os.path.relpath(full, base)
        rel_s, name = os.fsdecode(rel), os.fsdecode(os.path.basename(full))
        if full != os.fsencode(dockerfile) and any(
            fnmatch.fnmatch(rel_s, p) or fnmatch.fnmatch(name, p) for p in ignore
        ):
            continue
        digest_entry(h, os.fsdecode(full), rel)
    h.update(
        json.dumps(
            {"dockerfile": dockerfile_of(build), "args": build.args, "labels": IMAGE_LABELS_VERSION}, sort_keys=True
        ).encode()
    )
    return h.hexdigest()


def dockerfile_of(build: BuildSpec) -> str:
    """The Dockerfile path relative to the build context (what the engine expects)."""
    if build.dockerfile is None:
        return "Dockerfile"
    df = Path(build.dockerfile)
    ctx = Path(build.context)
    try:
        return str(df.relative_to(ctx))
    except ValueError:
        return str(df)


def path_digest(path: Path) -> str:
    """Content hash of a file, or of every file under a folder (names and contents)."""
    return tree_digest(path)
