"""What every part of the docker-py implementation shares: the client, error translation, remedies."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

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
    _timeout: int


def _refused(why: str) -> CdbError:
    return StepFailed(f"Docker engine refused: {why}", "see the message; `cdb-ops doctor` may help")


@contextlib.contextmanager
def translate(refused: Callable[[str], CdbError] = _refused) -> Iterator[None]:
    """The one translation of docker-py's exceptions into CdbErrors the CLI knows how to show: an engine
    that cannot be reached is EngineUnavailable (exit 4); one that answered but refused or did not finish
    the request becomes `refused(why)` (a pull or a build names its own error kind)."""
    try:
        yield
    except CdbError:
        raise
    except requests.exceptions.ConnectionError as exc:
        raise EngineUnavailable(f"Docker engine unreachable: {short(exc)}", ENGINE_REMEDY) from None
    except (requests.exceptions.RequestException, docker.errors.DockerException) as exc:
        why = exc.explanation if isinstance(exc, docker.errors.APIError) and exc.explanation else exc
        if not isinstance(exc, docker.errors.APIError | requests.exceptions.RequestException):
            # docker-py's own DockerException (no API answer at all: e.g. the socket file is missing)
            raise EngineUnavailable(f"Docker engine unreachable: {short(exc)}", ENGINE_REMEDY) from None
        raise refused(short(str(why))) from None


def short(exc: BaseException | str) -> str:
    text = str(exc)
    return text if len(text) < 300 else text[:300] + "…"
