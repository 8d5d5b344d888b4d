"""docker-py implementation, images: inspect, list, pull, build."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker.errors

from cdb_ops.engine.docker_base import DockerBase, translate
from cdb_ops.errors import BuildFailed, PullFailed
from cdb_ops.model.observed import ImageFacts


class ImagesMixin(DockerBase):
    def image(self, ref: str) -> ImageFacts | None:
        with translate():
            try:
                i = self._api.inspect_image(ref)
            except docker.errors.NotFound:
                return None
            except docker.errors.APIError as exc:
                if exc.status_code in (400, 404):  # an invalid reference is simply not here
                    return None
                raise
        return image_facts(i)

    def pull(self, ref: str) -> ImageFacts:
        repo, tag = split_image_ref(ref)  # a digest (name@sha256:…) is a "tag" to the pull endpoint
        with translate(lambda why: PullFailed(f"cannot pull {ref}: {why}", "check the network / registry login")):
            self._api.pull(repo, tag=tag)
        found = self.image(ref)
        if found is None:
            raise PullFailed(f"pulled {ref} but the engine does not list it", "run `docker images`")
        return found

    def build(
        self,
        context: Path,
        dockerfile: str,
        tag: str,
        labels: dict[str, str],
        buildargs: dict[str, str],
        nocache: bool,
        on_line: Callable[[str], None] | None = None,
    ) -> ImageFacts:
        lines: list[str] = []
        step = ""
        with translate(lambda why: BuildFailed(f"build of {tag} failed: {why}", "check the Dockerfile")):
            stream = self._api.build(
                path=str(context),
                dockerfile=dockerfile,
                tag=tag,
                labels=labels,
                buildargs=buildargs or None,
                nocache=nocache,
                rm=True,
                forcerm=True,
                decode=True,
            )
            for chunk in stream:
                if "error" in chunk:
                    raise BuildFailed(
                        f"build of {tag} failed at {step or 'the first step'}: {chunk['error'].strip()}",
                        f"run `cdb-ops rebuild --no-cache` (a stale cached layer is the usual cause), or fix "
                        f"{context / dockerfile}",
                        details={"step": step, "log_tail": lines[-20:]},
                    )
                text = chunk.get("stream") or chunk.get("status") or ""
                for line in text.splitlines():
                    if line.strip():
                        lines.append(line)
                        if line.startswith("Step "):
                            step = line.strip()
                        if on_line:
                            on_line(line)
        found = self.image(tag)
        if found is None:
            raise BuildFailed(f"build of {tag} produced no image", "run the build by hand to see why")
        return found


def split_image_ref(ref: str) -> tuple[str, str]:
    """(repository, tag or digest) — 'postgres' -> ('postgres', 'latest'), 'name@sha256:…' -> ('name',
    'sha256:…'), 'host:5000/x:1' -> ('host:5000/x', '1'); docker-py's parser, not a hand-made one."""
    from docker.utils import parse_repository_tag  # here, not at import: `status` never needs docker-py

    repo, tag = parse_repository_tag(ref)
    return repo, tag or "latest"


def image_facts(i: dict[str, Any]) -> ImageFacts:
    """From inspect (labels under Config) or the list endpoint (labels at the top)."""
    labels = i.get("Labels") if "Labels" in i else (i.get("Config") or {}).get("Labels")
    return ImageFacts(
        i["Id"],
        tuple(t for t in i.get("RepoTags") or () if t != "<none>:<none>"),
        labels or {},
        int(i.get("Size", 0)),
        tuple(d for d in i.get("RepoDigests") or () if d != "<none>@<none>"),
    )
