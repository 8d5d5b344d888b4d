"""Volume archives without Docker: an archive counts only when it was made from a volume no running
container uses, arrived intact (checksum where it was made = the copy's = the sidecar's) and lists the
files that make the volume what it is."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from cdb_ops.apply.archive import archive_volume
from cdb_ops.errors import StepFailed
from cdb_ops.model.resources import MountBinding
from tests.unit.fake_engine import FakeEngine
from tests.unit.test_planner import _desired


def _tar_gz(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"./{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@dataclasses.dataclass
class ArchivingEngine(FakeEngine):
    """run_once "makes" `archive` and reports its checksum (or `reported`, to fake a damaged copy)."""

    archive: bytes = b""
    reported: str | None = None

    def run_once(
        self, image: str, cmd: list[str], mounts: list[MountBinding], keep: bool = False
    ) -> tuple[int, str, str]:
        self.calls.append(("run_once", " ".join(cmd)))
        digest = self.reported or hashlib.sha256(self.archive).hexdigest()
        return 0, f"{digest}  /volume-backup.tar.gz\n", "task1"

    def copy_out(self, name: str, path: str, dest: Path) -> int:
        dest.write_bytes(self.archive)
        return len(self.archive)


PG_FILES = {"PG_VERSION": b"15\n", "global/pg_control": b"\0" * 64, "base/1/1259": b"x"}


def test_a_database_volume_archive_is_verified(project_dir):
    project, _, _, desired = _desired(project_dir)
    engine = ArchivingEngine(archive=_tar_gz(PG_FILES))
    b = archive_volume(engine, desired, project, "t_data", "img", role="database")
    assert b.path.read_bytes() == engine.archive
    assert (b.path.parent / (b.path.name + ".sha256")).read_text().split()[0] == b.sha256
    assert "verified" in b.verified and "PG_VERSION" in b.verified and "(3 entries)" in b.verified
    assert "archive of volume t_data" in b.describe()


def test_an_archive_without_the_expected_files_is_refused(project_dir):
    project, _, _, desired = _desired(project_dir)
    engine = ArchivingEngine(archive=_tar_gz({"base/1/1259": b"x"}))
    with pytest.raises(StepFailed, match="lacks PG_VERSION, global/pg_control"):
        archive_volume(engine, desired, project, "t_data", "img", role="database")
    assert list((project_dir / "backups").iterdir()) == []  # nothing half-made is left to be trusted


def test_a_copy_that_differs_from_the_original_is_refused(project_dir):
    project, _, _, desired = _desired(project_dir)
    engine = ArchivingEngine(archive=_tar_gz(PG_FILES), reported="0" * 64)
    with pytest.raises(StepFailed, match="differs from the original"):
        archive_volume(engine, desired, project, "t_data", "img", role="database")


def test_a_volume_a_running_container_uses_is_never_archived(project_dir):
    project, _, _, desired = _desired(project_dir)
    engine = ArchivingEngine(archive=_tar_gz(PG_FILES))
    c = engine.add_container("t_db")
    engine.containers_["t_db"] = dataclasses.replace(c, volumes=("t_data",))
    with pytest.raises(StepFailed, match="refusing to archive volume t_data while it is in use by t_db"):
        archive_volume(engine, desired, project, "t_data", "img", role="database")
    assert not [call for call in engine.calls if call[0] == "run_once"]
