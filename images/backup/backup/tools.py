"""cdb_common.backupjob.PgTools for the backup service: Debian's client tools in this container, over
the stack network; pg_dump writes straight into the backups folder (a hidden staging name first)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

from cdb_common.backupfiles import sha256_file
from cdb_common.config import PostgresSettings

TOOL_TIMEOUT_SECONDS = 3600  # a dump of a year of snapshots takes minutes; a hung one must end


class LocalTools:
    def __init__(self, pg: PostgresSettings, directory: Path) -> None:
        self.conninfo: dict[str, Any] = pg.conninfo()
        self.directory = directory
        # only the tool's own environment holds the password: never argv (ps), never the container's env
        self._env = {
            **os.environ,
            "PGHOST": pg.host,
            "PGPORT": str(pg.port),
            "PGUSER": pg.user,
            "PGPASSWORD": pg.password,
            "PGAPPNAME": "cdb-backup",
        }
        self._staged: set[str] = set()

    def run(self, argv: list[str], dbname: str | None = None) -> tuple[int, str]:
        full = argv + (["-d", dbname] if dbname else [])
        try:
            done = subprocess.run(
                full, env=self._env, capture_output=True, text=True, timeout=TOOL_TIMEOUT_SECONDS, check=False
            )
        except subprocess.TimeoutExpired:
            return 124, f"{argv[0]} did not finish within {TOOL_TIMEOUT_SECONDS} s"
        return done.returncode, done.stdout + done.stderr

    def staging(self, name: str) -> str:
        path = str(self.directory / f".{name}.staging")
        self._staged.add(path)
        return path

    def checksum(self, staged: str) -> str:
        return sha256_file(Path(staged))

    def fetch(self, staged: str, local: Path) -> None:
        os.replace(staged, local)

    def put(self, local: Path) -> str:
        return str(local)  # pg_restore reads the dump where it lies

    def discard(self, staged: str) -> None:
        if staged in self._staged:  # never a dump put() lent out
            Path(staged).unlink(missing_ok=True)
            self._staged.discard(staged)
