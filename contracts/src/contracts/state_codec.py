"""Run state to plain JSON values and back, for snapshots of a fold: pure, and exact (a state
read back equals the state written, field for field, so folding on from it is folding on from
the original).

A snapshot is a cache of `fold(events)`: whoever keeps one stores RUN_STATE_VERSION beside it and
ignores a snapshot of another version. Bump the version whenever RunState's fields change or the
fold comes to keep something differently, since a state folded by other rules is not this
fold's state even when it still parses.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pyrsistent import pmap, pset

from contracts.state import Batch, ProviderBatchWait, ProviderWait, RunState, StageState
from contracts.values import ItemRef, RunConfig

RUN_STATE_VERSION = 1

Json = dict[str, Any]


class UnreadableState(ValueError):
    """A stored state that does not decode: the caller ignores it and folds from the start."""


def time_to_json(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def time_from_json(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def run_to_json(run: RunState) -> Json:
    return {
        "run_id": run.run_id,
        "account_id": run.account_id,
        "site_id": run.site_id,
        "trigger": run.trigger,
        "status": run.status,
        "current_stage": run.current_stage,
        "config": None if run.config is None else run.config.model_dump(mode="json"),
        # Stages never started are left out: most of a finished or young run.
        "stages": [_stage_to_json(s) for s in run.stages if s != StageState(s.number)],
        "credits_used": run.credits_used,
        "error": run.error,
        "pause_reason": run.pause_reason,
        "started_at": time_to_json(run.started_at),
        "paused_at": time_to_json(run.paused_at),
        "resumed_at": time_to_json(run.resumed_at),
        "cancelled_at": time_to_json(run.cancelled_at),
        "ended_at": time_to_json(run.ended_at),
        "last_event_at": time_to_json(run.last_event_at),
        "control_ids": sorted(str(i) for i in run.control_ids),
    }


def run_from_json(data: Json) -> RunState:
    """The state `run_to_json` wrote; UnreadableState if `data` is not one."""
    try:
        stages = list(RunState().stages)
        for stage in map(_stage_from_json, data["stages"]):
            stages[stage.number - 1] = stage
        config = data["config"]
        return RunState(
            run_id=data["run_id"],
            account_id=data["account_id"],
            site_id=data["site_id"],
            trigger=data["trigger"],
            status=data["status"],
            current_stage=data["current_stage"],
            config=None if config is None else RunConfig.model_validate(config),
            stages=tuple(stages),
            credits_used=data["credits_used"],
            error=data["error"],
            pause_reason=data["pause_reason"],
            started_at=time_from_json(data["started_at"]),
            paused_at=time_from_json(data["paused_at"]),
            resumed_at=time_from_json(data["resumed_at"]),
            cancelled_at=time_from_json(data["cancelled_at"]),
            ended_at=time_from_json(data["ended_at"]),
            last_event_at=time_from_json(data["last_event_at"]),
            control_ids=frozenset(UUID(i) for i in data["control_ids"]),
        )
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise UnreadableState(f"not a run state: {exc!r}") from exc


def _stage_to_json(stage: StageState) -> Json:
    return {
        "number": stage.number,
        "status": stage.status,
        "items": [[item.id, item.title] for item in stage.items],
        "processed": sorted(stage.processed),
        "failed": sorted(stage.failed),
        "outputs": stage.outputs,
        "credits": stage.credits,
        # Batches in flight are those not done: kept once, by the flag, not twice.
        "batches": [
            [b.batch_id, list(b.item_ids), b.attempt, time_to_json(b.lease_until), b.done]
            for b in sorted(stage.batches.values(), key=lambda b: b.batch_id)
        ],
        "open_from": stage.open_from,
        "started_at": time_to_json(stage.started_at),
        "finished_at": time_to_json(stage.finished_at),
        "partial": stage.partial,
        "error": stage.error,
        "fatal": stage.fatal,
        "waiting": _wait_to_json(stage.waiting),
        "provider_batch": provider_batch_to_json(stage.provider_batch),
    }


def _wait_to_json(wait: ProviderWait | None) -> Json | None:
    if wait is None:
        return None
    return [wait.provider, wait.model, wait.reason, time_to_json(wait.since)]


def _wait_from_json(data: list | None) -> ProviderWait | None:
    if data is None:
        return None
    provider, model, reason, since = data
    return ProviderWait(provider, model, reason, time_from_json(since))


def provider_batch_to_json(wait: ProviderBatchWait | None) -> Json | None:
    if wait is None:
        return None
    return {
        "batch_id": wait.batch_id,
        "provider": wait.provider,
        "provider_batch_ids": list(wait.provider_batch_ids),
        "status": wait.status,
        "total": wait.total,
        "completed": wait.completed,
        "failed": wait.failed,
        "since": time_to_json(wait.since),
    }


def _provider_batch_from_json(data: Json | None) -> ProviderBatchWait | None:
    if data is None:
        return None
    return ProviderBatchWait(
        data["batch_id"],
        data["provider"],
        tuple(data["provider_batch_ids"]),
        data["status"],
        data["total"],
        data["completed"],
        data["failed"],
        time_from_json(data["since"]),
    )


def _stage_from_json(data: Json) -> StageState:
    number = data["number"]
    if not 1 <= number <= 7:
        raise ValueError(f"stage {number}")
    batches = [
        Batch(batch_id, tuple(item_ids), attempt, time_from_json(lease), done)
        for batch_id, item_ids, attempt, lease, done in data["batches"]
    ]
    return StageState(
        number=number,
        status=data["status"],
        items=tuple(ItemRef(id=item_id, title=title) for item_id, title in data["items"]),
        processed=pset(data["processed"]),
        failed=pset(data["failed"]),
        outputs=data["outputs"],
        credits=data["credits"],
        batches=pmap({b.batch_id: b for b in batches}),
        in_flight_ids=pset(b.batch_id for b in batches if not b.done),
        open_from=data["open_from"],
        started_at=time_from_json(data["started_at"]),
        finished_at=time_from_json(data["finished_at"]),
        partial=data["partial"],
        error=data["error"],
        fatal=data["fatal"],
        waiting=_wait_from_json(data.get("waiting")),  # absent from snapshots before it
        provider_batch=_provider_batch_from_json(data.get("provider_batch")),  # likewise
    )
