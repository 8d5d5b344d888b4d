"""Where the host reaches the stack's services: a service's published address, and Postgres' conninfo."""

from __future__ import annotations

from typing import Any

from cdb_ops.errors import ConfigError
from cdb_ops.load.desired import DesiredService, DesiredStack
from cdb_ops.load.settings import Settings


def host_address(svc: DesiredService, container_port: int | None) -> tuple[str, int]:
    """Where the host reaches a service: the published port (of `container_port`, default the first)."""
    ports = svc.container.ports
    if not ports:
        raise ConfigError(f"service {svc.name} publishes no port", "add a ports: entry in playbooks/stack.yaml")
    chosen = next((p for p in ports if p.container == container_port), ports[0])
    host = chosen.bind if chosen.bind not in ("0.0.0.0", "", "::") else "127.0.0.1"
    return host, chosen.host


def postgres_service(desired: DesiredStack) -> str:
    for name, svc in desired.stack.services.items():
        if svc.ready and svc.ready.probe == "postgres":
            return name
    raise ConfigError(
        "no service in the playbook is probed as postgres (ready: {probe: postgres})",
        "mark the database service with `ready: {probe: postgres}` in playbooks/stack.yaml",
    )


def postgres_conninfo(desired: DesiredStack, settings: Settings) -> dict[str, Any]:
    """How cdb-ops on the host reaches the stack's Postgres: its published port on the bind address."""
    svc = desired.stack.services[postgres_service(desired)]
    port = next((p for p in svc.ports if p.container == 5432), svc.ports[0] if svc.ports else None)
    if port is None:
        raise ConfigError("the postgres service publishes no port", "add ports: ['5432:5432']")
    host = port.bind or desired.stack.bind
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    return {
        "host": host,
        "port": port.host,
        "user": settings.get("POSTGRES_USER"),
        "password": settings.get("POSTGRES_PASSWORD"),
        "dbname": settings.get("POSTGRES_DB"),
        # named in Postgres' log lines (log_line_prefix): validate counts cdb-ops' own sessions as the stack's
        "application_name": "cdb_ops",
    }
