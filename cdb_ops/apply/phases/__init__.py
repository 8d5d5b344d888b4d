"""The phases of a run, one module per phase kind; each carries out its share of the plan."""

from __future__ import annotations

import importlib
from collections.abc import Iterable

from cdb_ops.apply.context import PhaseFn

KINDS = ("cleanup", "network", "volumes", "images", "services", "schema", "validate")


def registry(kinds: Iterable[str] = KINDS) -> dict[str, PhaseFn]:
    """Each phase kind's `run`, importing only the kinds asked for: `down` (one cleanup phase) loads
    neither the image builder nor validate's checks."""
    return {k: importlib.import_module(f"cdb_ops.apply.phases.{k}").run for k in dict.fromkeys(kinds)}
