"""Observation and image references: one list call per kind, and references split by docker-py's rules
(a digest reference `name@sha256:…` was once split at its last ':')."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cdb_ops.engine.docker_images import split_image_ref
from cdb_ops.load.desired import resolve
from cdb_ops.load.playbook import load_runbook
from cdb_ops.load.project import Project
from cdb_ops.load.settings import load_settings
from cdb_ops.model.observed import ImageFacts
from cdb_ops.plan.observe import observe
from tests.unit.fake_engine import FakeEngine

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("ref", "split"),
    [
        ("postgres", ("postgres", "latest")),
        ("postgres:15-alpine", ("postgres", "15-alpine")),
        (f"postgres@{DIGEST}", ("postgres", DIGEST)),
        (f"registry.local:5000/team/app@{DIGEST}", ("registry.local:5000/team/app", DIGEST)),
        ("registry.local:5000/team/app", ("registry.local:5000/team/app", "latest")),
        ("registry.local:5000/team/app:1.2", ("registry.local:5000/team/app", "1.2")),
    ],
)
def test_image_references_split_like_docker(ref: str, split: tuple[str, str]):
    assert split_image_ref(ref) == split


class CountingEngine(FakeEngine):
    def __init__(self) -> None:
        super().__init__()
        self.reads: list[str] = []

    def __getattribute__(self, name: str) -> Any:
        if name in ("info", "containers", "container", "networks", "network", "volumes", "volume"):
            object.__getattribute__(self, "reads").append(name)
        return object.__getattribute__(self, name)

    def image(self, ref: str) -> ImageFacts | None:
        self.reads.append("image")
        return super().image(ref)


def test_observation_is_one_list_call_per_kind(project_dir: Path):
    project = Project(project_dir)
    _, stack = load_runbook(project.playbook("rebuild"))
    settings = load_settings(project.env_file)
    desired = resolve(stack, settings, project)
    engine = CountingEngine()
    engine.images_["t_app:latest"] = ImageFacts("sha256:" + "2" * 64, ("t_app:latest",), {})
    observed = observe(engine, desired)
    # images by name, one inspect each (never the list endpoint, whose cost grows with the engine's images)
    wanted = {
        r
        for svc in desired.services.values()
        for r in (svc.image.ref, svc.image.fallback and svc.image.fallback.tag)
        if r
    }
    assert sorted(r for r in engine.reads if r != "image") == ["containers", "info", "networks", "volumes"]
    assert engine.reads.count("image") == len(wanted)
    assert set(observed.images) == {"t_app:latest"}
