"""A run's rows in the read model (`automation_runs`, `automation_run_stages`) as a pure function
of its fold (contracts.state). The log-sink upserts them; a live stream's snapshot renders the
same rows from the events it has read, so the two always agree."""

from __future__ import annotations

from typing import Any

from contracts.stages import STAGES
from contracts.state import ProviderBatchWait, RunState, StageState
from contracts.state_codec import provider_batch_to_json
from contracts.values import ItemRef

UP_NEXT_LIMIT = 10


def run_row(
    state: RunState,
    estimate: int | None,
    partition: int | None = None,
    first_offset: int | None = None,
) -> dict[str, Any]:
    return {
        "run_id": state.run_id,
        "account_id": state.account_id,
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
        "last_event_at": state.last_event_at,
        "stream_partition": partition,
        "first_offset": first_offset,
    }


def _refs(items: tuple[ItemRef, ...]) -> list[dict[str, Any]]:
    return [{"id": item.id, "title": item.title} for item in items]


def live_items(stage: StageState) -> tuple[tuple[ItemRef, ...], tuple[ItemRef, ...]]:
    """(currently processing, up next), both in pick order: the open items of the batches in
    flight, then the first open items no batch holds. Only a running stage has either.

    Read from the first open item on, and only as far as these need: the cost is what is in
    flight plus the up-next list, not the size of the stage."""
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
    """(processed, failed, remaining). The manual gate calls no one: its work is to count the
    content ready for review, so once it has completed, each item it picked is counted."""
    if stage.status == "completed" and STAGES[stage.number].type == "Manual":
        return stage.total, 0, 0
    return stage.processed_count, len(stage.failed), stage.open_count


def stage_row(run_id: str, stage: StageState) -> dict[str, Any]:
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
        "currently_processing": _refs(current),
        "up_next": _refs(up_next),
        "remaining_count": remaining,
        "waiting_provider": wait.provider if wait else None,
        "waiting_model": wait.model if wait else None,
        "waiting_reason": wait.reason if wait else None,
        "waiting_since": wait.since if wait else None,
        "provider_batch": provider_batch_row(stage.provider_batch),
    }


def provider_batch_row(wait: ProviderBatchWait | None) -> dict[str, Any] | None:
    """The provider batch a stage waits for, as the API shows it: the snapshot's JSON of it
    (contracts.state_codec) without the stage batch's id, which the API does not show."""
    encoded = provider_batch_to_json(wait)
    return None if encoded is None else {k: v for k, v in encoded.items() if k != "batch_id"}
