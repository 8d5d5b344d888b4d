"""The phases of a run, one module per phase kind; each carries out its share of the plan."""

from __future__ import annotations

from cdb_ops.apply.context import PhaseFn


def registry() -> dict[str, PhaseFn]:
    from cdb_ops.apply.phases import cleanup, images, network, schema, services, validate, volumes

    return {
        "cleanup": cleanup.run,
        "network": network.run,
        "volumes": volumes.run,
        "images": images.run,
        "services": services.run,
        "schema": schema.run,
        "validate": validate.run,
    }
