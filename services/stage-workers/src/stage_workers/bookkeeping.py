"""The worker's run bookkeeping, behind one port: which commands it handled, what each stage
picked, what became of each item, and whether a run may go on.

All of it lives in tables the workers own (processed_messages, stage_picks, stage_item_results,
worker_run_status): a redelivered command learns what was done without parsing the outbox
(which can then be pruned) or reading the log-sink's read model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Connection

from contracts.db import tables as t
from stage_workers.outcomes import Outcome


@dataclass(frozen=True)
class Opening:
    """What a stage command needs to know before it starts, read in one round trip."""

    handled: bool  # this command was handled before: nothing to do
    picked: int | None  # how many items the stage picked (None: picked before this table)
    stopped: bool  # the run is paused, cancelled or over


class RunBook:
    """The port. `SqlRunBook` keeps it in PostgreSQL, in the caller's transaction."""

    def opening(self, consumer: str, message_id: UUID, run_id: str, stage: int) -> Opening:
        raise NotImplementedError

    def remember(self, consumer: str, message_id: UUID) -> None:
        raise NotImplementedError

    def record_picks(self, run_id: str, stage: int, item_ids: Sequence[int]) -> None:
        raise NotImplementedError

    def positions(self, run_id: str, stage: int, item_ids: Sequence[int]) -> dict[int, int]:
        """Each item's 0-based place in the stage's pick order (absent if not picked)."""
        raise NotImplementedError

    def results(self, run_id: str, stage: int, item_ids: Sequence[int]) -> dict[int, Outcome]:
        """What became of those items before (processed or failed)."""
        raise NotImplementedError

    def record_result(self, run_id: str, stage: int, item_id: int, outcome: Outcome) -> None:
        """Keep a processed or failed item's outcome, once."""
        raise NotImplementedError

    def is_stopped(self, run_id: str) -> bool:
        raise NotImplementedError


@dataclass(frozen=True)
class SqlRunBook(RunBook):
    conn: Connection

    def opening(self, consumer: str, message_id: UUID, run_id: str, stage: int) -> Opening:
        p, s, w = t.processed_messages.c, t.stage_picks.c, t.worker_run_status.c
        handled = sa.exists().where(p.consumer == consumer, p.message_id == message_id)
        picked = (
            sa.select(sa.func.cardinality(s.item_ids))
            .where(s.run_id == run_id, s.stage == stage)
            .scalar_subquery()
        )
        stopped = sa.select(w.stopped).where(w.run_id == run_id).scalar_subquery()
        row = self.conn.execute(
            sa.select(handled.label("handled"), picked.label("picked"), stopped.label("stopped"))
        ).one()
        return Opening(bool(row.handled), row.picked, bool(row.stopped))

    def remember(self, consumer: str, message_id: UUID) -> None:
        self.conn.execute(
            insert(t.processed_messages)
            .values(consumer=consumer, message_id=message_id)
            .on_conflict_do_nothing()
        )

    def record_picks(self, run_id: str, stage: int, item_ids: Sequence[int]) -> None:
        self.conn.execute(
            insert(t.stage_picks)
            .values(run_id=run_id, stage=stage, item_ids=list(item_ids))
            .on_conflict_do_nothing()
        )

    def positions(self, run_id: str, stage: int, item_ids: Sequence[int]) -> dict[int, int]:
        s = t.stage_picks.c
        picked = self.conn.execute(
            sa.select(s.item_ids).where(s.run_id == run_id, s.stage == stage)
        ).scalar_one_or_none()
        wanted = set(item_ids)
        return {item: n for n, item in enumerate(picked or ()) if item in wanted}

    def results(self, run_id: str, stage: int, item_ids: Sequence[int]) -> dict[int, Outcome]:
        r = t.stage_item_results.c
        rows = self.conn.execute(
            sa.select(r.item_id, r.outcome, r.credits, r.outputs).where(
                r.run_id == run_id, r.stage == stage, r.item_id.in_(list(item_ids))
            )
        )
        return {row.item_id: Outcome(row.outcome, row.credits, row.outputs) for row in rows}

    def record_result(self, run_id: str, stage: int, item_id: int, outcome: Outcome) -> None:
        self.conn.execute(
            insert(t.stage_item_results)
            .values(
                run_id=run_id,
                stage=stage,
                item_id=item_id,
                outcome=outcome.kind,
                credits=outcome.credits,
                outputs=outcome.outputs,
            )
            .on_conflict_do_nothing()
        )

    def is_stopped(self, run_id: str) -> bool:
        w = t.worker_run_status.c
        return bool(
            self.conn.execute(sa.select(w.stopped).where(w.run_id == run_id)).scalar_one_or_none()
        )
