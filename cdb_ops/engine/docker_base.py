"""What every part of the docker-py implementation shares: the client, error translation, remedies."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import docker
import docker.errors
import requests.exceptions

from cdb_ops.errors import CdbError, EngineUnavailable, StepFailed

ENGINE_REMEDY = (
    "start Docker (Docker Desktop, or `sudo systemctl start docker`, or `dockerd &`), "
    "or point DOCKER_HOST at a running engine; then check with `docker info`"
)


class DockerBase:
    """The low-level APIClient (exact control over create options) and whether the engine is local."""

    _api: docker.APIClient
    _local: bool


@contextlib.contextmanager
def translate() -> Iterator[None]:
    """docker-py's exceptions become CdbErrors the CLI knows how to show."""
    try:
        yield
    except CdbError:
        raise
    except (requests.exceptions.ConnectionError, docker.errors.DockerException) as exc:
        if isinstance(exc, docker.errors.APIError):
            raise StepFailed(
                f"Docker engine refused: {exc.explanation or exc}",
                "see the message; `cdb-ops doctor` may help",
            ) from None
        raise EngineUnavailable(f"Docker engine unreachable: {exc}", ENGINE_REMEDY) from None


def short(exc: BaseException | str) -> str:
    text = str(exc)
    return text if len(text) < 300 else text[:300] + "…"
