"""StartStage: pick the stage's items once and announce them (StageStarted)."""

from __future__ import annotations

from contracts import ids
from contracts.commands import StartStage
from contracts.envelope import Envelope
from contracts.events import StageStarted
from stage_workers import items, tracking
from stage_workers.deps import WorkerDeps
from stage_workers.unit_of_work import UnitOfWork


async def start_stage(deps: WorkerDeps, command: Envelope) -> None:
    await deps.unit_of_work(command, pick_and_announce)


def pick_and_announce(uow: UnitOfWork) -> None:
    start: StartStage = uow.command.data
    consumer = tracking.consumer_name(start.stage)
    if uow.book.opening(consumer, uow.command.message_id, start.run_id, start.stage).handled:
        return
    picked = items.pending_refs(uow.conn, start.stage, uow.command.site_id)
    uow.book.record_picks(start.run_id, start.stage, [ref.id for ref in picked])
    # The deterministic id makes a second StartStage for the same run and stage a no-op.
    uow.emit(
        StageStarted(stage=start.stage, items=tuple(picked)),
        ids.stage_started(start.run_id, start.stage),
    )
    uow.book.record_handled(consumer, uow.command.message_id)
