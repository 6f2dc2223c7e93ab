"""The worker's run bookkeeping, behind one port: which commands it handled, what each stage
picked, what became of each item, and whether a run may go on.

All of it lives in tables the workers own (processed_messages, stage_picks, stage_item_results,
worker_run_status): a redelivered command learns what was done without parsing the outbox
(which can then be pruned) or reading the log-sink's read model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
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


class RunBook:
    """The port. `SqlRunBook` writes it to PostgreSQL, in the caller's transaction."""

    def opening(self, consumer: str, message_id: UUID, run_id: str, stage: int) -> Opening:
        raise NotImplementedError

    def record_handled(self, consumer: str, message_id: UUID) -> None:
        """Record that `consumer` handled the command, in the transaction of its effect."""
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
        """Record a processed or failed item's outcome, once."""
        raise NotImplementedError

    def is_stopped(self, run_id: str) -> bool:
        """The table's answer (`worker_run_status`); ask `UnitOfWork.run_stopped`, which
        puts what this process heard first."""
        raise NotImplementedError


_p, _s, _w, _r = (
    t.processed_messages.c,
    t.stage_picks.c,
    t.worker_run_status.c,
    t.stage_item_results.c,
)
_RUN, _STAGE = sa.bindparam("run_id"), sa.bindparam("stage")
# Each statement is built once with bound parameters: building one costs SQLAlchemy more CPU
# than running it, and these run for every stage command and item.
_OPENING = sa.select(
    sa.exists()
    .where(_p.consumer == sa.bindparam("consumer"), _p.message_id == sa.bindparam("message_id"))
    .label("handled"),
    sa.select(sa.func.cardinality(_s.item_ids))
    .where(_s.run_id == _RUN, _s.stage == _STAGE)
    .scalar_subquery()
    .label("picked"),
    sa.select(_w.stopped).where(_w.run_id == _RUN).scalar_subquery().label("stopped"),
)
_RECORD_HANDLED = insert(t.processed_messages).on_conflict_do_nothing()
_RECORD_PICKS = insert(t.stage_picks).on_conflict_do_nothing()
_PICKS = sa.select(_s.item_ids).where(_s.run_id == _RUN, _s.stage == _STAGE)
_RESULTS = sa.select(_r.item_id, _r.outcome, _r.credits, _r.outputs).where(
    _r.run_id == _RUN, _r.stage == _STAGE, _r.item_id.in_(sa.bindparam("ids", expanding=True))
)
_RECORD_RESULT = insert(t.stage_item_results).on_conflict_do_nothing()
_STOPPED = sa.select(_w.stopped).where(_w.run_id == _RUN)


@dataclass(frozen=True)
class SqlRunBook(RunBook):
    """Built once per transaction (a unit of work): whether a run is stopped is read once,
    in the opening's round trip when there is one."""

    conn: Connection
    _stopped: dict[str, bool] = field(default_factory=dict, compare=False, repr=False)

    def opening(self, consumer: str, message_id: UUID, run_id: str, stage: int) -> Opening:
        row = self.conn.execute(
            _OPENING,
            {"consumer": consumer, "message_id": message_id, "run_id": run_id, "stage": stage},
        ).one()
        self._stopped[run_id] = bool(row.stopped)  # for is_stopped, in this round trip
        return Opening(bool(row.handled), row.picked)

    def record_handled(self, consumer: str, message_id: UUID) -> None:
        self.conn.execute(_RECORD_HANDLED, {"consumer": consumer, "message_id": message_id})

    def record_picks(self, run_id: str, stage: int, item_ids: Sequence[int]) -> None:
        self.conn.execute(
            _RECORD_PICKS, {"run_id": run_id, "stage": stage, "item_ids": list(item_ids)}
        )

    def positions(self, run_id: str, stage: int, item_ids: Sequence[int]) -> dict[int, int]:
        picked = self.conn.execute(_PICKS, {"run_id": run_id, "stage": stage}).scalar_one_or_none()
        wanted = set(item_ids)
        return {item: n for n, item in enumerate(picked or ()) if item in wanted}

    def results(self, run_id: str, stage: int, item_ids: Sequence[int]) -> dict[int, Outcome]:
        rows = self.conn.execute(
            _RESULTS, {"run_id": run_id, "stage": stage, "ids": list(item_ids)}
        )
        return {row.item_id: Outcome(row.outcome, row.credits, row.outputs) for row in rows}

    def record_result(self, run_id: str, stage: int, item_id: int, outcome: Outcome) -> None:
        self.conn.execute(
            _RECORD_RESULT,
            {
                "run_id": run_id,
                "stage": stage,
                "item_id": item_id,
                "outcome": outcome.kind,
                "credits": outcome.credits,
                "outputs": outcome.outputs,
            },
        )

    def is_stopped(self, run_id: str) -> bool:
        if run_id not in self._stopped:
            row = self.conn.execute(_STOPPED, {"run_id": run_id}).scalar_one_or_none()
            self._stopped[run_id] = bool(row)
        return self._stopped[run_id]
