"""The snapshot a live stream pushes after the run's events (`run.snapshot`): the run as `run`
answers it and its current stage as `current_processing` answers it, from the fold of the events
the stream has read (contracts.state, the same fold the log-sink writes the read model from).

The stream reads every event of the run in order, so its fold is as new as the last event it
sent: a page that renders the snapshot needs neither the read model (which follows a moment
later) nor guesses about what changed. The rows below are the ones the log-sink writes
(log_sink.read_model; a test holds the two to the same answers), turned into the API's models
by the same functions the read endpoints use.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from pydantic import BaseModel

from api_gateway import run_views
from api_gateway.run_views import ProcessingState, RunDetail
from contracts import events as ev
from contracts.envelope import Envelope
from contracts.stages import STAGES
from contracts.state import RunState, StageState, mutate
from contracts.values import ItemRef

EVENT = "run.snapshot"
UP_NEXT_LIMIT = 10


class RunSnapshot(BaseModel):
    """What `run` and `current_processing` would answer once the read model has every event the
    stream sent so far."""

    run: RunDetail
    processing: ProcessingState


class Folder:
    """A run's state, folded from its events as a stream reads them."""

    def __init__(self) -> None:
        self.state = RunState()
        self.estimate: int | None = None

    def add(self, message: Envelope) -> None:
        if isinstance(message.data, ev.RunStarted) and self.state.status == "none":
            self.estimate = message.data.estimate
        self.state = mutate(self.state, message)

    def snapshot(self) -> RunSnapshot | None:
        """None until the run's first event (or for a run that was rejected: it never ran)."""
        state = self.state
        if state.status in ("none", "rejected"):
            return None
        run = SimpleNamespace(**run_row(state, self.estimate))
        stages = {n: SimpleNamespace(**stage_row(state.run_id, state.stage(n))) for n in STAGES}
        results = [run_views.stage_result(n, stages[n]) for n in STAGES]
        current = results[state.current_stage - 1] if state.current_stage in STAGES else None
        detail = RunDetail(
            **run_views.RunSummary.model_validate(vars(run)).model_dump(),
            stages=results,
            waiting_for_provider=current.waiting_for_provider if current else None,
        )
        number = state.current_stage if state.current_stage in STAGES else 1
        processing = run_views.processing_state(run, stages[number])
        return RunSnapshot(run=detail, processing=processing)


def run_row(state: RunState, estimate: int | None) -> dict[str, Any]:
    return {
        "run_id": state.run_id,
        "site_id": state.site_id,
        "trigger": state.trigger,
        "status": state.status,
        "current_stage": state.current_stage,
        "credits_used": state.credits_used,
        "estimate": estimate,
        "error": state.error,
        "pause_reason": state.pause_reason,
        "started_at": state.started_at,
        "paused_at": state.paused_at,
        "resumed_at": state.resumed_at,
        "cancelled_at": state.cancelled_at,
        "ended_at": state.ended_at,
    }


def live_items(stage: StageState) -> tuple[tuple[ItemRef, ...], tuple[ItemRef, ...]]:
    """(currently processing, up next), both in pick order: the open items of the batches in
    flight, then the first open items no batch holds; read only as far as these need."""
    if stage.status != "running":
        return (), ()
    busy = {
        item_id
        for batch in stage.in_flight()
        for item_id in batch.item_ids
        if not stage.is_settled(item_id)
    }
    current: list[ItemRef] = []
    waiting: list[ItemRef] = []
    items = stage.items
    for index in range(stage.open_from, len(items)):
        if len(current) == len(busy) and len(waiting) == UP_NEXT_LIMIT:
            break
        item = items[index]
        if item.id in busy:
            current.append(item)
        elif len(waiting) < UP_NEXT_LIMIT and not stage.is_settled(item.id):
            waiting.append(item)
    return tuple(current), tuple(waiting)


def settled_counts(stage: StageState) -> tuple[int, int, int]:
    """(processed, failed, remaining); the manual gate, once completed, counts each item."""
    if stage.status == "completed" and STAGES[stage.number].type == "Manual":
        return stage.total, 0, 0
    return stage.processed_count, len(stage.failed), stage.open_count


def stage_row(run_id: str | None, stage: StageState) -> dict[str, Any]:
    current, up_next = live_items(stage)
    processed, failed, remaining = settled_counts(stage)
    wait = stage.waiting
    return {
        "run_id": run_id,
        "stage": stage.number,
        "status": stage.status,
        "total_items": stage.total,
        "processed_items": processed,
        "failed_items": failed,
        "items_out": stage.outputs,
        "credits_used": stage.credits,
        "started_at": stage.started_at,
        "finished_at": stage.finished_at,
        "partial": stage.partial,
        "error": stage.error,
        "currently_processing": [{"id": i.id, "title": i.title} for i in current],
        "up_next": [{"id": i.id, "title": i.title} for i in up_next],
        "remaining_count": remaining,
        "waiting_provider": wait.provider if wait else None,
        "waiting_model": wait.model if wait else None,
        "waiting_reason": wait.reason if wait else None,
        "waiting_since": wait.since if wait else None,
    }
