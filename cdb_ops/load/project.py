"""Where things are: the project directory (playbooks/, schema/, images/, .env) and cdb-ops' own state."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cdb_ops.errors import ConfigError

STATE_DIR = ".cdb"


@dataclass(frozen=True)
class Project:
    root: Path

    @property
    def playbooks(self) -> Path:
        return self.root / "playbooks"

    @property
    def stack_file(self) -> Path:
        return self.playbooks / "stack.yaml"

    @property
    def env_file(self) -> Path:
        return self.root / ".env"

    @property
    def env_example(self) -> Path:
        return self.root / ".env.example"

    @property
    def schema_dir(self) -> Path:
        return self.root / "schema"

    @property
    def state_dir(self) -> Path:
        return self.root / STATE_DIR

    @property
    def secrets_dir(self) -> Path:
        return self.state_dir / "secrets"

    @property
    def last_run_file(self) -> Path:
        return self.state_dir / "last_run.json"

    def playbook(self, name_or_path: str) -> Path:
        """`rebuild` -> playbooks/rebuild.yaml; a path is taken as given."""
        p = Path(name_or_path)
        if p.suffix in (".yaml", ".yml") or p.parent != Path("."):
            return p if p.is_absolute() else (Path.cwd() / p)
        return self.playbooks / f"{name_or_path}.yaml"

    def ensure_state_dir(self) -> Path:
        self.state_dir.mkdir(mode=0o700, exist_ok=True)
        self.secrets_dir.mkdir(mode=0o700, exist_ok=True)
        os.chmod(self.state_dir, 0o700)
        os.chmod(self.secrets_dir, 0o700)
        return self.state_dir


def find_project(start: Path | None = None) -> Project:
    """The nearest directory (start, then its parents) holding playbooks/stack.yaml."""
    explicit = start or (Path(os.environ["CDB_PROJECT_DIR"]) if os.environ.get("CDB_PROJECT_DIR") else None)
    if explicit is not None:
        root = explicit.resolve()
        if not (root / "playbooks" / "stack.yaml").is_file():
            raise ConfigError(
                f"{root} is not a cdb-ops project (no playbooks/stack.yaml)",
                "pass --project-dir pointing at the directory that holds playbooks/",
            )
        return Project(root)
    here = Path.cwd().resolve()
    for candidate in (here, *here.parents):
        if (candidate / "playbooks" / "stack.yaml").is_file():
            return Project(candidate)
    raise ConfigError(
        f"no playbooks/stack.yaml in {here} or its parents",
        "run cdb-ops inside the project checkout, or pass --project-dir / set CDB_PROJECT_DIR",
    )
