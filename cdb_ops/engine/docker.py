"""`Engine` over docker-py: the only place that talks to the Docker Engine API, built like docker-py's
own APIClient from one mixin per resource (containers, networks and volumes, images)."""

from __future__ import annotations

import os

import docker
import docker.errors

from cdb_ops.engine.docker_base import translate
from cdb_ops.engine.docker_containers import ContainersMixin
from cdb_ops.engine.docker_images import ImagesMixin
from cdb_ops.engine.docker_networks import NetworksMixin
from cdb_ops.model.observed import EngineInfo


class DockerEngine(ContainersMixin, NetworksMixin, ImagesMixin):
    """`Engine` over docker-py's low-level APIClient (exact control over create options)."""

    def __init__(self, timeout: int = 120) -> None:
        # (docker-py asks the engine for its API version here: that request is the reachability check)
        with translate():
            self._client = docker.from_env(timeout=timeout)
            self._api = self._client.api
        host = os.environ.get("DOCKER_HOST", "")
        self._local = host == "" or host.startswith("unix://") or "127.0.0.1" in host or "localhost" in host
        self._info: EngineInfo | None = None
        self._timeout = timeout

    def info(self) -> EngineInfo:
        """The engine's version (asked once per command: every engine is built for one command)."""
        if self._info is None:
            with translate():
                v = self._api.version()
            self._info = EngineInfo(v.get("Version", "?"), v.get("ApiVersion", "?"), self._local)
        return self._info
