"""Which phases of a playbook a run carries out: the user's `--phase` choices checked against the playbook
(an unknown name is a usage error before the engine is contacted), in the playbook's order."""

from __future__ import annotations

from cdb_ops.errors import UsageError
from cdb_ops.load.specs import PhaseSpec, RunbookSpec


def select_phases(book: RunbookSpec, only: list[str] | None) -> list[PhaseSpec]:
    if not only:
        return list(book.phases)
    names = [p.name for p in book.phases]
    unknown = [o for o in only if o not in names]
    if unknown:
        raise UsageError(f"unknown phase {unknown[0]!r} in playbook {book.name}", f"use one of: {', '.join(names)}")
    return [p for p in book.phases if p.name in only]


# phases that read the migrations in schema/: the schema phase applies them, validate compares them with
# the database's record
MIGRATION_KINDS: frozenset[str] = frozenset({"schema", "validate"})


def needs_migrations(phases: list[PhaseSpec]) -> bool:
    """Whether a run of `phases` reads schema/ (so a bad migration file is refused before it starts)."""
    return any(p.kind in MIGRATION_KINDS for p in phases)
