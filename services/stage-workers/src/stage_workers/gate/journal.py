"""The AI calls of units not yet written, stored in PostgreSQL so that no call is made twice.

A batch is dispatched again when its worker stops extending its lease: the worker died, or lost
touch with the broker while it still calls. Before a call, the worker claims it (run, stage,
unit, function) for as long as the call may take; with the answer, it stores the draft and the
records of the call's attempts; the transaction that writes the unit deletes the rows and writes
those records, once, whichever worker gets there. A second worker on the same unit finds the
answer and uses it, or finds the call in flight and waits for it, or finds the claim expired
(its holder died mid-call) and calls itself.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from pydantic import TypeAdapter
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Connection, Engine

from contracts.db import tables as t
from stage_workers.ai.base import ArticleDraft, ClusterDraft, IdeaDraft, PromptDraft, Usage

_a = t.ai_answers.c
_NOW = sa.func.extract("epoch", sa.func.clock_timestamp())
# Each function's draft, as JSON; an image is its bytes as they are.
_DRAFTS: dict[str, TypeAdapter] = {
    "cluster_keywords": TypeAdapter(list[ClusterDraft]),
    "write_ideas": TypeAdapter(list[IdeaDraft]),
    "write_article": TypeAdapter(ArticleDraft),
    "write_image_prompts": TypeAdapter(list[PromptDraft]),
}


@dataclass(frozen=True)
class UnitKey:
    run_id: str
    stage: int
    unit: str

    @classmethod
    def of(cls, run_id: str, stage: int, item_ids: list[int]) -> UnitKey:
        if len(item_ids) == 1:
            return cls(run_id, stage, str(item_ids[0]))
        digest = hashlib.sha256(",".join(map(str, sorted(item_ids))).encode()).hexdigest()
        return cls(run_id, stage, f"{len(item_ids)}:{digest[:24]}")

    def where(self, function: str | None = None) -> sa.ColumnElement[bool]:
        match = sa.and_(_a.run_id == self.run_id, _a.stage == self.stage, _a.unit == self.unit)
        return match if function is None else sa.and_(match, _a.function == function)


def encode_draft(function: str, draft: Any) -> bytes:
    adapter = _DRAFTS.get(function)
    return bytes(draft) if adapter is None else adapter.dump_json(draft)


def decode_draft(function: str, data: bytes) -> Any:
    adapter = _DRAFTS.get(function)
    return bytes(data) if adapter is None else adapter.validate_json(data)


def record_to_json(record: Any) -> dict[str, Any]:
    values = asdict(record)
    for money in ("cost_usd", "saved_usd"):
        values[money] = None if values[money] is None else str(values[money])
    return values


def record_from_json(values: dict[str, Any]) -> dict[str, Any]:
    """The fields of a CallRecord (gate.calls), as stored."""
    usage = values.get("usage")
    cost, saved = values.get("cost_usd"), values.get("saved_usd")
    return {
        **values,
        "usage": Usage(**usage) if usage else None,
        "cost_usd": None if cost is None else Decimal(cost),
        "saved_usd": None if saved is None else Decimal(saved),
    }


class UnitWritten(Exception):
    """Another batch has written the unit (or its failure): nothing is left to ask for."""


class Journal:
    """Claims, answers and their consumption; each method is one short transaction (or a part
    of the caller's), to be run off the event loop."""

    def __init__(self, engine: Engine, process: str, hold_seconds: float) -> None:
        self.engine = engine
        self.process = process
        self.hold_seconds = hold_seconds

    def holder(self) -> str:
        """A name for one call of this process: two batches of one process holding the same
        unit (a command redelivered and dispatched again) must not both call either."""
        return f"{self.process}:{uuid.uuid4().hex[:12]}"

    def answered(self, key: UnitKey, function: str) -> bytes | None:
        """The stored answer of the unit's call, if any; raises UnitWritten when another batch
        has written the unit already."""
        with self.engine.connect() as conn:
            query = sa.select(_a.draft, _a.written).where(key.where(function))
            row = conn.execute(query).first()
        if row is not None and row.written:
            raise UnitWritten(f"{key.run_id} stage {key.stage} unit {key.unit}")
        return row.draft if row is not None else None

    def claim(self, key: UnitKey, function: str, holder: str) -> bool:
        """Hold the call for `holder`, unless another holds it still or it is answered."""
        held_until = _NOW + self.hold_seconds
        row = {"run_id": key.run_id, "stage": key.stage, "unit": key.unit, "function": function}
        statement = insert(t.ai_answers).values(**row, holder=holder, held_until=held_until)
        ours = sa.or_(t.ai_answers.c.held_until < _NOW, t.ai_answers.c.holder == holder)
        statement = statement.on_conflict_do_update(
            index_elements=["run_id", "stage", "unit", "function"],
            set_={"holder": holder, "held_until": held_until},
            where=sa.and_(t.ai_answers.c.draft.is_(None), sa.not_(t.ai_answers.c.written), ours),
        ).returning(t.ai_answers.c.holder)
        with self.engine.begin() as conn:
            return conn.execute(statement).first() is not None

    def store(self, key: UnitKey, function: str, draft: bytes, records: list[Any]) -> bool:
        """Store the answer with the records of its call; False when another worker's answer
        is stored already (both calls were made: each worker writes its own records)."""
        stored = [record_to_json(record) for record in records]
        with self.engine.begin() as conn:
            return (
                conn.execute(
                    sa.update(t.ai_answers)
                    .where(key.where(function), _a.draft.is_(None), sa.not_(_a.written))
                    .values(draft=draft, records=stored)
                ).rowcount
                == 1
            )

    def release(self, key: UnitKey, function: str, holder: str) -> None:
        """The call ended without an answer: another worker need not wait for it."""
        with self.engine.begin() as conn:
            conn.execute(
                sa.delete(t.ai_answers).where(
                    key.where(function),
                    _a.holder == holder,
                    _a.draft.is_(None),
                    sa.not_(_a.written),
                )
            )


def consume(conn: Connection, key: UnitKey) -> list[dict[str, Any]]:
    """In the transaction that writes the unit (or its failure): mark its rows written, let go
    of the drafts, and return the records of the answered calls (as CallRecord fields) for that
    transaction to write. A copy of the batch still waiting on the unit then stops."""
    open_rows = sa.and_(key.where(), sa.not_(_a.written))
    stored = conn.execute(sa.select(_a.records).where(open_rows).with_for_update()).scalars().all()
    conn.execute(sa.update(t.ai_answers).where(open_rows).values(written=True, draft=None))
    return _records(stored)


def discard(conn: Connection, key: UnitKey) -> list[dict[str, Any]]:
    """The unit ends unwritten (the run halts or fails): delete its rows, so that the batch sent
    again after a resume calls anew, and return the records of the answered calls to write."""
    open_rows = sa.and_(key.where(), sa.not_(_a.written))
    stored = conn.execute(sa.delete(t.ai_answers).where(open_rows).returning(_a.records)).scalars()
    return _records(stored.all())


def _records(stored: Sequence[Any]) -> list[dict[str, Any]]:
    return [record_from_json(record) for records in stored if records for record in records]
