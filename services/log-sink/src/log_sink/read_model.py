"""The run read model: rows that are a pure function of a run's fold, upserted whole, so
writing them again (a replay, a redelivery) changes nothing."""

from __future__ import annotations

from collections.abc import Mapping
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


def upsert_runs(connection: sa.Connection, runs: list[RunRow], stage_rows: list[dict]) -> None:
    """Write the summary rows of these runs (each run's fold, estimate, and partition and offset
    of its first event) and the stage rows given, in the caller's transaction."""
    if runs:
        _write(connection, automation_runs, [run_row(*run) for run in runs], ("run_id",))
    if stage_rows:
        _write(connection, automation_run_stages, stage_rows, ("run_id", "stage"))


def changed_stage_rows(state: RunState, written: Mapping[int, dict]) -> list[dict]:
    """The run's stage rows that differ from the ones last written (every one the first time).
    An event mostly moves one stage: writing all seven each flush was most of the sink's SQL."""
    rows = (stage_row(state.run_id, stage) for stage in state.stages)
    return [row for row in rows if written.get(row["stage"]) != row]
