"""The resolved stack's outline — what `status` shows of the desired stack (system, services, their
containers, roles, priorities), what the quick `down` needs to stop it (the network, every service's
dependencies, the Postgres data volume) and which `.env` keys are secrets — cached under `.cdb/` per
playbook, keyed by the
hashes of every file it was resolved from (the playbooks, `.env` and its mode, `schema/`) and of the
arguments. A hit skips parsing and validating the playbooks; any change to any of them is a miss, and
a miss is resolved the full way (which validates, reports and rewrites the cache).
Secret values are never written: they are read from `.env` each time, for the redactor."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cdb_ops import __version__
from cdb_ops.fsutil import atomic_write
from cdb_ops.load.project import Project

OUTLINE_VERSION = 3  # 2: the postgres address (status reads the books' trading states); 3: what `down` needs


@dataclass(frozen=True)
class OutlineService:
    name: str
    container: str
    role: str
    priority: str


@dataclass(frozen=True)
class StackOutline:
    system_label: str
    services: tuple[OutlineService, ...]
    secret_keys: tuple[str, ...]
    postgres: tuple[str, int] | None = None  # where cdb-ops reaches the stack's Postgres (host, published port)
    network: str = ""
    depends_on: tuple[tuple[str, tuple[str, ...]], ...] = ()  # every service of the stack (all profiles)
    postgres_volume: tuple[str, str] | None = None  # (the Postgres service, its data volume)
    profiles: tuple[str, ...] = ()  # as resolved (a run's record names them)
    feed: str | None = None
    # the playbook's name and phases (name, kind) when it was cached by a run of it (`down`)
    playbook: str = ""
    phases: tuple[tuple[str, str], ...] = ()

    @property
    def system(self) -> str:
        return self.system_label.split("=", 1)[1]


def _files(root: Path) -> list[Path]:
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        out.extend(Path(dirpath) / f for f in sorted(filenames))
    return out


def outline_key(project: Project, playbook: str, profiles: list[str] | None) -> str:
    """One hash of the inputs: a file's path, mode and bytes, for every file the outline comes from."""
    h = hashlib.sha256(f"{OUTLINE_VERSION}\0{__version__}\0{project.root}\0{playbook}\0{profiles}\0".encode())
    for f in [*_files(project.playbooks), project.env_file, *_files(project.schema_dir)]:
        h.update(str(f).encode() + b"\0")
        try:
            h.update(oct(os.stat(f).st_mode).encode() + b"\0" + f.read_bytes() + b"\0")
        except OSError:
            h.update(b"-\0")
    return h.hexdigest()


def _file(project: Project, playbook: str, profiles: list[str] | None) -> Path:
    """One file per playbook and profiles (`status` resolves rebuild's, `down` its own), rewritten in place
    when an input changes — so `.cdb/` holds as many as there are ways the commands are run."""
    if playbook == "rebuild" and not profiles:
        return project.state_dir / "outline.json"
    tag = hashlib.sha256(f"{playbook}\0{profiles}".encode()).hexdigest()[:12]
    return project.state_dir / f"outline-{tag}.json"


def load_outline(project: Project, playbook: str, profiles: list[str] | None) -> StackOutline | None:
    """The cached outline when every input is as it was when it was written; None otherwise."""
    key = outline_key(project, playbook, profiles)
    try:
        doc: dict[str, Any] = json.loads(_file(project, playbook, profiles).read_text())
        if doc.get("key") != key:
            return None
        services = tuple(OutlineService(*s) for s in doc["services"])
        pg = doc.get("postgres")
        postgres = (str(pg[0]), int(pg[1])) if pg else None
        pv = doc.get("postgres_volume")
        return StackOutline(
            str(doc["system_label"]),
            services,
            tuple(doc["secret_keys"]),
            postgres,
            str(doc["network"]),
            tuple((str(name), tuple(deps)) for name, deps in doc["depends_on"]),
            (str(pv[0]), str(pv[1])) if pv else None,
            tuple(doc["profiles"]),
            doc["feed"],
            str(doc["playbook"]),
            tuple((str(name), str(kind)) for name, kind in doc["phases"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def save_outline(project: Project, playbook: str, profiles: list[str] | None, outline: StackOutline) -> None:
    doc = {
        "key": outline_key(project, playbook, profiles),
        "system_label": outline.system_label,
        "services": [[s.name, s.container, s.role, s.priority] for s in outline.services],
        "secret_keys": list(outline.secret_keys),
        "postgres": list(outline.postgres) if outline.postgres else None,
        "network": outline.network,
        "depends_on": [[name, list(deps)] for name, deps in outline.depends_on],
        "postgres_volume": list(outline.postgres_volume) if outline.postgres_volume else None,
        "profiles": list(outline.profiles),
        "feed": outline.feed,
        "playbook": outline.playbook,
        "phases": [list(p) for p in outline.phases],
    }
    try:
        project.ensure_state_dir()
        atomic_write(_file(project, playbook, profiles), json.dumps(doc))
    except OSError:
        pass  # a cache: not being able to write it only costs the next run its speed
