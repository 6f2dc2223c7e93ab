"""The worker's record of its provider batches (table `provider_batches`): a row is written
before its file is uploaded and updated after each step, so whoever takes the stage batch over
finds the provider batch (by its id, or by the name it was created with) instead of making a
second. Each function is one statement on the caller's transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.engine import Connection

from contracts.db import tables as t
from stage_workers.ai.provider_batches import ENDED, BatchState

_pb = t.provider_batches.c


@dataclass(frozen=True)
class ProviderBatch:
    name: str
    round: int  # 1, or 2 for the requests an ended batch left unanswered
    endpoint: str
    custom_ids: tuple[str, ...]
    created_at: datetime
    input_file_id: str | None = None
    provider_batch_id: str | None = None
    status: str = "preparing"
    completed: int = 0
    failed: int = 0
    output_file_id: str | None = None
    error_file_id: str | None = None

    @property
    def ended(self) -> bool:
        return self.status in ENDED


_FIELDS = [getattr(_pb, name) for name in ProviderBatch.__dataclass_fields__]


def _of(row: Any) -> ProviderBatch:
    values = dict(row._mapping)
    return ProviderBatch(**values | {"custom_ids": tuple(values["custom_ids"])})


def covering(
    conn: Connection, run_id: str, stage: int, custom_ids: list[str]
) -> list[ProviderBatch]:
    """The run's provider batches of the stage holding any of these requests, oldest first."""
    statement = (
        sa.select(*_FIELDS)
        .where(
            _pb.run_id == run_id,
            _pb.stage == stage,
            _pb.custom_ids.has_any(sa.cast(custom_ids, ARRAY(sa.Text))),
        )
        .order_by(_pb.round, _pb.created_at, _pb.name)
    )
    return [_of(row) for row in conn.execute(statement)]


def get(conn: Connection, name: str) -> ProviderBatch:
    return _of(conn.execute(sa.select(*_FIELDS).where(_pb.name == name)).one())


def add(conn: Connection, rows: list[dict[str, Any]]) -> list[ProviderBatch]:
    """Write new rows (a row of the same name, written by an earlier attempt, stays as it is)
    and return them as stored."""
    conn.execute(insert(t.provider_batches).values(rows).on_conflict_do_nothing())
    names = [row["name"] for row in rows]
    statement = sa.select(*_FIELDS).where(_pb.name.in_(names)).order_by(_pb.name)
    return [_of(row) for row in conn.execute(statement)]


def record(conn: Connection, name: str, **values: Any) -> ProviderBatch:
    statement = (
        sa.update(t.provider_batches)
        .where(_pb.name == name)
        .values(**values, updated_at=sa.func.now())
        .returning(*_FIELDS)
    )
    return _of(conn.execute(statement).one())


def record_state(conn: Connection, name: str, state: BatchState) -> ProviderBatch:
    return record(
        conn,
        name,
        provider_batch_id=state.id,
        status=state.status,
        completed=state.completed,
        failed=state.failed,
        output_file_id=state.output_file_id,
        error_file_id=state.error_file_id,
        ended_at=sa.func.now() if state.ended else None,
    )


def record_failed(conn: Connection, name: str) -> ProviderBatch:
    return record(conn, name, status="failed", ended_at=sa.func.now())


def open_of_runs(conn: Connection, run_ids: list[str]) -> list[ProviderBatch]:
    """The created provider batches of these runs that have not ended."""
    statement = sa.select(*_FIELDS).where(
        _pb.run_id.in_(run_ids),
        _pb.provider_batch_id.is_not(None),
        _pb.status.not_in([*ENDED, "cancelling"]),
    )
    return [_of(row) for row in conn.execute(statement)]
