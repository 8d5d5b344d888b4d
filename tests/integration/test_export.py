"""`export compose` writes a file that Compose itself accepts, with health checks and conditions."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from tests.helpers import REPO, cdb, make_project

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def compose() -> str:
    r = subprocess.run(["bash", str(REPO / "tools" / "compose-venv.sh")], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout.strip()


@pytest.mark.parametrize("offline", [False, True])
def test_exported_file_is_accepted_by_compose(tmp_path, compose, offline):
    project = make_project(tmp_path / "p", "cdb_teste", prefix="cdbe_")
    target = tmp_path / "out" / "docker-compose.yml"
    target.parent.mkdir()
    r = cdb("export", "compose", "-o", str(target), *(["--offline"] if offline else []), project=project)
    assert r.returncode == 0, r.stderr
    check = subprocess.run(
        [compose, "-f", str(target), "config", "-q"], capture_output=True, text=True, cwd=target.parent, timeout=60
    )
    assert check.returncode == 0, check.stderr
    resolved = yaml.safe_load(
        subprocess.run(
            [compose, "-f", str(target), "config"],
            capture_output=True,
            text=True,
            cwd=target.parent,
            timeout=60,
            check=True,
        ).stdout
    )
    services = resolved["services"]
    assert set(services) >= {"postgres", "redis"}
    for name, svc in services.items():
        assert "healthcheck" in svc, name
        assert svc["networks"] == {"cdbe_network": {"aliases": [name]}}
        assert all(str(p).startswith("127.0.0.1:") for p in svc.get("ports", []))
    # the secret is a file, never a value
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD_FILE"] == "/run/secrets/postgres_password"
    assert "POSTGRES_PASSWORD" not in services["postgres"]["environment"]
    text = target.read_text()
    for line in (project / ".env").read_text().splitlines():
        if "PASSWORD=" in line:
            assert line.split("=", 1)[1] not in text
    # a shell `$` is escaped as `$$`, so Compose passes `$` to the container instead of interpolating
    # (`config` prints the escaped form back)
    assert '"$$(cat /run/secrets/redis_password)"' in " ".join(services["redis"]["command"])
    if offline:
        assert services["postgres"]["image"] == "cdb_ops/postgres:15-fallback" and "build" in services["postgres"]
    else:
        assert services["postgres"]["image"] == "postgres:15-alpine"


def test_export_refuses_to_overwrite(tmp_path):
    project = make_project(tmp_path / "p", "cdb_teste", prefix="cdbe_")
    target = tmp_path / "compose.yml"
    target.write_text("keep me\n")
    r = cdb("export", "compose", "-o", str(target), project=project)
    assert r.returncode == 6 and target.read_text() == "keep me\n"
