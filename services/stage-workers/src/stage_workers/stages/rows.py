"""Insert helpers shared by the stages."""

from __future__ import annotations

from sqlalchemy.dialects.postgresql import Insert
from sqlalchemy.engine import Connection


def inserted(conn: Connection, statement: Insert) -> int:
    """1 if `statement` (an INSERT ... ON CONFLICT DO NOTHING) added its row, 0 if the unique
    constraint said the row was already there."""
    table = statement.table
    added = conn.execute(statement.returning(*table.primary_key.columns)).first()
    return 0 if added is None else 1
