"""StartStage: pick the stage's items once and announce them (StageStarted)."""

from __future__ import annotations

from sqlalchemy.engine import Connection

from contracts.commands import StartStage
from contracts.envelope import Envelope
from contracts.events import StageStarted
from stage_workers import items, tracking
from stage_workers.deps import WorkerDeps


async def start_stage(deps: WorkerDeps, command: Envelope) -> None:
    await deps.in_transaction(_pick_and_announce, deps, command)


def _pick_and_announce(conn: Connection, deps: WorkerDeps, command: Envelope) -> None:
    start: StartStage = command.data
    book = deps.book(conn)
    consumer = tracking.consumer_name(start.stage)
    if book.opening(consumer, command.message_id, start.run_id, start.stage).handled:
        return
    picked = items.pending_refs(conn, start.stage, command.site_id)
    book.record_picks(start.run_id, start.stage, [ref.id for ref in picked])
    # The deterministic id makes a second StartStage for the same run and stage a no-op.
    deps.emit(
        conn,
        command,
        StageStarted(stage=start.stage, items=tuple(picked)),
        tracking.stage_started_id(start.run_id, start.stage),
    )
    book.remember(consumer, command.message_id)
