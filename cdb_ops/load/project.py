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


def _holds_stack(root: Path) -> bool:
    # any entry counts (a folder, a dangling link): the playbook loader then says what is wrong with it,
    # instead of "not a cdb-ops project"
    return os.path.lexists(root / "playbooks" / "stack.yaml")


def find_project(start: Path | None = None) -> Project:
    """The nearest directory (start, then its parents) holding playbooks/stack.yaml."""
    from_env = os.environ.get("CDB_PROJECT_DIR") or None
    explicit = start or (Path(from_env) if from_env else None)
    if explicit is not None:
        root = Path(os.path.realpath(explicit))  # realpath: a symlink loop is not followed forever
        if not _holds_stack(root):
            why = "does not exist" if not os.path.isdir(root) else "has no playbooks/stack.yaml"
            if from_env and Path(os.path.realpath(from_env)) == root:
                raise ConfigError(
                    f"CDB_PROJECT_DIR={from_env} is not a cdb-ops project ({why})",
                    "point CDB_PROJECT_DIR at the directory that holds playbooks/ (or `unset CDB_PROJECT_DIR` "
                    "and run inside the checkout)",
                )
            raise ConfigError(
                f"{root} is not a cdb-ops project ({why})",
                "pass --project-dir pointing at the directory that holds playbooks/",
            )
        return Project(root)
    here = Path(os.path.realpath(Path.cwd()))
    for candidate in (here, *here.parents):
        if _holds_stack(candidate):
            return Project(candidate)
    raise ConfigError(
        f"no playbooks/stack.yaml in {here} or its parents",
        "run cdb-ops inside the project checkout, or pass --project-dir / set CDB_PROJECT_DIR",
    )
