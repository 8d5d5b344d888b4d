"""The labels cdb-ops puts on what it creates, and the one test of whether something is ours."""

from __future__ import annotations

import json
from collections.abc import Mapping

LABEL_SYSTEM = "cdb.system"
LABEL_ROLE = "cdb.role"
LABEL_PRIORITY = "cdb.priority"
LABEL_SERVICE = "cdb.service"
LABEL_HASH = "cdb.config-hash"
LABEL_PARTS = "cdb.config-parts"
# a volume's identity, random at creation: a record about "this volume" never applies to a removed and
# recreated one of the same name (the engine's CreatedAt is the data directory's mtime, not its birth)
LABEL_VOLUME_ID = "cdb.volume-id"
LABEL_BUILD_HASH = "cdb.build-hash"
LABEL_DATA = "cdb.data"
LABEL_IMAGE = "cdb.image"
LABEL_IMAGE_SYSTEM = "cdb.image.system"
LABEL_IMAGE_SERVICE = "cdb.image.service"
LABEL_TASK = "cdb.ops.task"  # throwaway containers (volume archives); never part of a stack
# the name a container is set aside under while its replacement starts
REPLACED_MARK = "-replaced-"
# the name the container a successful upgrade replaced is kept under (stopped), for `cdb-ops rollback`;
# a stopped container pins its image, so neither `docker image prune` nor a rebuilt tag can take it away
PREVIOUS_MARK = "-previous"


def owned(labels: Mapping[str, str], system: str) -> bool:
    """The ownership predicate: a container, network or volume is part of `system` exactly when it
    carries our system label. Everything cdb-ops may change or remove passes through here."""
    return labels.get(LABEL_SYSTEM) == system


def system_selector(system: str) -> str:
    """The engine-side label filter for `system` (narrows a list call; `owned` still decides)."""
    return f"{LABEL_SYSTEM}={system}"


def base_labels(system: str, role: str, priority: str) -> dict[str, str]:
    return {LABEL_SYSTEM: system, LABEL_ROLE: role, LABEL_PRIORITY: priority}


def recorded_parts(labels: Mapping[str, str]) -> dict[str, str]:
    """The config-part hashes a container was created with (LABEL_PARTS); {} when none are recorded
    or the label cannot be read."""
    try:
        parts = json.loads(labels.get(LABEL_PARTS, "{}"))
    except json.JSONDecodeError:
        return {}
    return parts if isinstance(parts, dict) else {}
