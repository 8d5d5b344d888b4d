"""Content hashes of what a container is made from: a build context (only the files its Dockerfile
COPYs, minus .dockerignore) and bind-mounted project files — so a no-op rebuild sends no build at all."""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
from pathlib import Path

from cdb_ops.errors import ConfigError
from cdb_ops.load.project import Project
from cdb_ops.load.specs import BuildSpec

# bump when the labels an image is built with change, so existing images are rebuilt once
IMAGE_LABELS_VERSION = 2


def sha256(data: bytes | str) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def _read_dockerignore(context: Path) -> list[str]:
    f = context / ".dockerignore"
    if not f.is_file():
        return []
    return [ln.strip().rstrip("/") for ln in f.read_text().splitlines() if ln.strip() and not ln.startswith("#")]


def _copy_sources(dockerfile: Path) -> list[str] | None:
    """The context paths a Dockerfile's COPY/ADD lines read, or None when it reads the whole context.

    The image depends only on the Dockerfile and these files, so the build hash covers just them:
    editing the screener does not rebuild (and recreate) the signal engine, though both share images/."""
    sources: list[str] = []
    text = dockerfile.read_text(encoding="utf-8").replace("\\\n", " ")
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
            sources.append(src)
    return sources


def build_context_hash(project: Project, build: BuildSpec) -> str:
    """Content hash of a build: the Dockerfile, the args, and every context file its COPY/ADD lines
    read (all of the context when that cannot be told), minus .dockerignore.

    An image whose label carries this hash is current, so a no-op rebuild sends no build at all."""
    context = (project.root / build.context).resolve()
    if not context.is_dir():
        raise ConfigError(
            f"build context {build.context!r} does not exist",
            "fix `context:` in playbooks/stack.yaml (a folder relative to the project)",
            file=str(project.stack_file),
        )
    dockerfile = context / dockerfile_of(build)
    if not dockerfile.is_file():
        raise ConfigError(
            f"Dockerfile {dockerfile} does not exist",
            "fix `dockerfile:` in playbooks/stack.yaml (relative to the project)",
            file=str(project.stack_file),
        )
    ignore = _read_dockerignore(context)
    sources = _copy_sources(dockerfile)
    roots = [context] if sources is None else [context / src for src in sources]
    files: set[Path] = {dockerfile}
    for root in roots:
        if root.is_file():
            files.add(root)
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            rel_dir = Path(dirpath).relative_to(context)
            dirnames[:] = [
                d for d in dirnames if not any(fnmatch.fnmatch(str(rel_dir / d), p) or d == p for p in ignore)
            ]
            files.update(Path(dirpath) / name for name in filenames)
    h = hashlib.sha256()
    for path in sorted(files):
        rel = str(path.relative_to(context))
        if path != dockerfile and any(fnmatch.fnmatch(rel, p) or fnmatch.fnmatch(path.name, p) for p in ignore):
            continue
        h.update(rel.encode() + b"\0")
        h.update(hashlib.sha256(path.read_bytes()).digest())
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
    if path.is_file():
        return sha256(path.read_bytes())
    h = hashlib.sha256()
    for p in sorted(x for x in path.rglob("*") if x.is_file()):
        h.update(str(p.relative_to(path)).encode() + b"\0" + hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()
