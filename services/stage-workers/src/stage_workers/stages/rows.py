"""Statement helpers shared by the stages."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import Insert, insert
from sqlalchemy.engine import Connection


def insert_once(table: sa.Table, *unique: str) -> Insert:
    """INSERT ... ON CONFLICT (`unique`) DO NOTHING RETURNING the key, built once per stage
    module: building a statement costs SQLAlchemy more CPU than running it."""
    statement = insert(table).on_conflict_do_nothing(index_elements=list(unique))
    return statement.returning(*table.primary_key.columns)


def set_status(table: sa.Table, status: str) -> sa.Update:
    """UPDATE ... SET status = `status` for the row whose id is bound as `row_id`: the stage's
    input moved on once its outputs are written. Built once per stage module, as insert_once."""
    return sa.update(table).where(table.c.id == sa.bindparam("row_id")).values(status=status)


def inserted(conn: Connection, statement: Insert, rows: list[dict[str, Any]]) -> int:
    """How many of `rows` `statement` (from insert_once) added; a row the unique constraint
    says is already there counts 0. One round trip for all of them."""
    if not rows:
        return 0
    return len(conn.execute(statement, rows).all())
