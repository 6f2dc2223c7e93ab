"""Migration 0012 creates the webhook tables exactly as `contracts.db.tables` declares them.

The integration test `test_db_schema` compares the whole schema on a real database; this one
compares the DDL both sides compile to, offline, so a drift shows before any database runs.
Lines of a CREATE TABLE are compared as a set: the order of columns and constraints may differ.
"""

from __future__ import annotations

import io
import re

from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import CreateIndex, CreateTable

from contracts.db import tables
from contracts.db.migrate import alembic_config

WEBHOOK_TABLES = ("webhook_endpoints", "webhook_secrets", "webhook_deliveries", "webhook_attempts")


def _normal(statement: str) -> tuple[str, frozenset[str]]:
    """The statement's first line, and its other lines without order, commas or spacing."""
    lines = [re.sub(r"\s+", " ", line).strip().rstrip(",") for line in statement.splitlines()]
    lines = [line for line in lines if line and line not in ("(", ")")]
    return lines[0], frozenset(lines[1:])


def migrated() -> set[tuple[str, frozenset[str]]]:
    script = ScriptDirectory.from_config(alembic_config()).get_revision("0012")
    output = io.StringIO()
    context = MigrationContext.configure(
        dialect_name="postgresql",
        opts={"as_sql": True, "output_buffer": output, "target_metadata": tables.metadata},
    )
    with Operations.context(context):
        script.module.upgrade()
    return {_normal(s) for s in output.getvalue().split(";") if s.strip()}


def declared() -> set[tuple[str, frozenset[str]]]:
    dialect = postgresql.dialect()
    statements = []
    for name in WEBHOOK_TABLES:
        table = tables.metadata.tables[name]
        statements.append(str(CreateTable(table).compile(dialect=dialect)))
        statements += [str(CreateIndex(i).compile(dialect=dialect)) for i in table.indexes]
    return {_normal(s) for s in statements}


def test_migration_0012_builds_what_tables_declare():
    assert migrated() == declared()


def test_0012_follows_0011_on_the_one_line_of_revisions():
    scripts = ScriptDirectory.from_config(alembic_config())
    assert scripts.get_revision("0012").down_revision == "0011"
    assert len(scripts.get_heads()) == 1
