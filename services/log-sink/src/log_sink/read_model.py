"""The run read model: rows that are a pure function of a run's fold, upserted as a whole, so
writing them again (a replay, a redelivery) changes nothing."""

from __future__ import annotations

from functools import cache

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from contracts.db.tables import automation_run_stages, automation_runs
from contracts.run_rows import run_row, stage_row
from contracts.state import RunState


@cache
def _upsert(table: sa.Table, names: tuple[str, ...], keys: tuple[str, ...]) -> sa.Insert:
    """One statement per table and row shape, executed with many rows: built and compiled once
    (SQLAlchemy caches it), not once per write as a statement with the values inlined is."""
    statement = insert(table)
    changes = {name: statement.excluded[name] for name in names if name not in keys}
    return statement.on_conflict_do_update(
        index_elements=list(keys), set_={**changes, "updated_at": sa.func.now()}
    )


def _write(connection: sa.Connection, table: sa.Table, rows: list[dict], keys: tuple[str, ...]):
    connection.execute(_upsert(table, tuple(rows[0]), keys), rows)


RunRow = tuple[RunState, int | None, int | None, int | None]


def upsert_runs(connection: sa.Connection, runs: list[RunRow]) -> None:
    """Write the rows of these runs (summary plus all seven stages) in the caller's transaction:
    each run's fold, estimate, and partition and offset of its first event."""
    if not runs:
        return
    _write(
        connection,
        automation_runs,
        [run_row(*run) for run in runs],
        ("run_id",),
    )
    stage_rows = [stage_row(run[0].run_id, stage) for run in runs for stage in run[0].stages]
    _write(connection, automation_run_stages, stage_rows, ("run_id", "stage"))
