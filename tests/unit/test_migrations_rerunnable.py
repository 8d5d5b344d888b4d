"""rebuild re-creates a dropped table by re-applying the migration that creates it (and every later one).
That is only safe while every migration in schema/ can run twice: these tests keep it so."""

from __future__ import annotations

import re

from cdb_ops.db.migrations import discover, tables_created
from cdb_ops.model.tables import EXPECTED_TABLES
from tests.helpers import REPO

MIGRATIONS = discover(REPO / "schema")


def _statements(sql: str) -> list[str]:
    without_comments = re.sub(r"--[^\n]*", "", sql)
    # a function's body ($$ … $$) is one literal of its CREATE FUNCTION, whatever semicolons it holds
    without_bodies = re.sub(r"\$\$.*?\$\$", "$$…$$", without_comments, flags=re.DOTALL)
    return [" ".join(s.split()) for s in without_bodies.split(";") if s.strip()]


def test_every_expected_table_is_created_by_exactly_one_migration():
    creators = {t: [m.name for m in MIGRATIONS if t in m.creates] for t in EXPECTED_TABLES}
    assert {t: len(c) for t, c in creators.items()} == dict.fromkeys(EXPECTED_TABLES, 1), creators


def _rerunnable(stmt: str, before: list[str]) -> bool:
    if re.match(r"CREATE (TABLE|INDEX|UNIQUE INDEX|SCHEMA) IF NOT EXISTS ", stmt, re.IGNORECASE):
        return True
    if re.match(r"ALTER TABLE \S+ DROP CONSTRAINT IF EXISTS \S+$", stmt, re.IGNORECASE):
        return True
    if re.match(r"ALTER TABLE \S+ ADD COLUMN IF NOT EXISTS ", stmt, re.IGNORECASE):
        return True
    if re.match(r"ALTER TABLE \S+ ALTER COLUMN \S+ (SET NOT NULL|DROP DEFAULT)$", stmt, re.IGNORECASE):
        return True
    # storage parameters (autovacuum per table): setting them again sets the same values
    if re.match(r"ALTER TABLE \S+ SET \((\s*\w+ = [\d.]+\s*,?)+\)$", stmt, re.IGNORECASE):
        return True
    # a relabel touches only rows not yet labelled, so the second run finds none
    if re.match(r"(WITH .* )?UPDATE (\S+) SET .* WHERE \2\.portfolio (IS NULL|= 'main')$", stmt, re.IGNORECASE):
        return True
    if re.match(r"CREATE OR REPLACE FUNCTION ", stmt, re.IGNORECASE):
        return True
    if re.match(r"DROP TRIGGER IF EXISTS \S+ ON \S+$", stmt, re.IGNORECASE):
        return True
    # CREATE TRIGGER runs twice only right after a DROP TRIGGER IF EXISTS of the same name on the same table
    trigger = re.match(r"CREATE TRIGGER (\S+) .* ON (\S+) ", stmt, re.IGNORECASE)
    if trigger:
        return any(
            re.fullmatch(rf"DROP TRIGGER IF EXISTS {re.escape(trigger[1])} ON {re.escape(trigger[2])}", b, re.I)
            for b in before
        )
    # ADD CONSTRAINT runs twice only right after a DROP CONSTRAINT IF EXISTS of the same name
    added = re.match(r"ALTER TABLE (\S+) ADD CONSTRAINT (\S+) ", stmt, re.IGNORECASE)
    return bool(added) and any(
        re.fullmatch(rf"ALTER TABLE {re.escape(added[1])} DROP CONSTRAINT IF EXISTS {re.escape(added[2])}", b, re.I)
        for b in before
    )


def test_every_migration_can_run_twice():
    statements = {m.path.name: _statements(m.sql) for m in MIGRATIONS}
    not_rerunnable = [
        (name, stmt[:80])
        for name, stmts in statements.items()
        for i, stmt in enumerate(stmts)
        if not _rerunnable(stmt, stmts[:i])
    ]
    assert not_rerunnable == [], (
        "a migration statement that cannot run twice (write CREATE ... IF NOT EXISTS, ALTER ... ADD COLUMN "
        "IF NOT EXISTS, and widen this test for it) would stop rebuild from re-creating a dropped table"
    )


def test_the_tables_a_migration_creates_are_read_from_its_sql_but_not_its_comments():
    sql = "\n".join(
        [
            "-- CREATE TABLE old_notes (x int);",
            "CREATE TABLE IF NOT EXISTS public.Foo (a int);",
            "create table bar (b int);",
        ]
    )
    assert tables_created(sql) == {"foo", "bar"}
