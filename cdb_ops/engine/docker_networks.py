"""docker-py implementation, networks and volumes."""

from __future__ import annotations

import contextlib
from typing import Any

import docker.errors

from cdb_ops.engine.docker_base import DockerBase, translate
from cdb_ops.model.observed import NetworkFacts, VolumeFacts


class NetworksMixin(DockerBase):
    def network(self, name: str) -> NetworkFacts | None:
        """One network by name, inspected (with its members)."""
        with translate():
            for n in self._api.networks(names=[name]):
                if n["Name"] == name:
                    return network_facts(self._api.inspect_network(n["Id"]))
        return None

    def networks(self, label: str | None = None) -> list[NetworkFacts]:
        """Every network (with `label`: only those) from the list endpoint, one call; Docker lists no
        members there (observe derives them from the containers)."""
        with translate():
            found = self._api.networks(filters={"label": label} if label else None)
        return [network_facts(n) for n in found]

    def create_network(self, name: str, driver: str, labels: dict[str, str]) -> None:
        with translate():
            self._api.create_network(name, driver=driver, labels=labels, check_duplicate=True)

    def remove_network(self, name: str) -> None:
        with translate(), contextlib.suppress(docker.errors.NotFound):
            self._api.remove_network(name)

    def volume(self, name: str) -> VolumeFacts | None:
        with translate():
            try:
                return volume_facts(self._api.inspect_volume(name))
            except docker.errors.NotFound:
                return None

    def volumes(self, label: str | None = None) -> list[VolumeFacts]:
        with translate():
            found = self._api.volumes(filters={"label": label} if label else None).get("Volumes") or []
        return [volume_facts(v) for v in found]

    def create_volume(self, name: str, labels: dict[str, str]) -> None:
        with translate():
            self._api.create_volume(name, labels=labels)

    def remove_volume(self, name: str) -> None:
        with translate(), contextlib.suppress(docker.errors.NotFound):
            self._api.remove_volume(name)


def network_facts(n: dict[str, Any]) -> NetworkFacts:
    """From inspect (members filled) or the list endpoint (members empty: Docker lists none there)."""
    return NetworkFacts(
        n["Id"],
        n["Name"],
        n.get("Driver", ""),
        n.get("Labels") or {},
        tuple(sorted(c["Name"] for c in (n.get("Containers") or {}).values())),
    )


def volume_facts(v: dict[str, Any]) -> VolumeFacts:
    return VolumeFacts(v["Name"], v.get("Labels") or {}, v.get("Driver", "local"))
