"""The run read model: rows that are a pure function of a run's fold, upserted as a whole, so
writing them again (a replay, a redelivery) changes nothing."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from contracts.db.tables import automation_run_stages, automation_runs
from contracts.state import RunState, StageState
from contracts.values import ItemRef

UP_NEXT_LIMIT = 10


def run_row(state: RunState, estimate: int | None) -> dict[str, Any]:
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
    }


def _refs(items: tuple[ItemRef, ...]) -> list[dict[str, Any]]:
    return [{"id": item.id, "title": item.title} for item in items]


def live_items(stage: StageState) -> tuple[tuple[ItemRef, ...], tuple[ItemRef, ...]]:
    """(currently processing, up next): open items in a batch in flight, then the first open
    items no batch holds yet. Only a running stage has either."""
    if stage.status != "running":
        return (), ()
    in_flight = {item_id for batch in stage.in_flight() for item_id in batch.item_ids}
    open_items = stage.open_items()
    current = tuple(item for item in open_items if item.id in in_flight)
    waiting = tuple(item for item in open_items if item.id not in in_flight)
    return current, waiting[:UP_NEXT_LIMIT]


def stage_row(run_id: str, stage: StageState) -> dict[str, Any]:
    current, up_next = live_items(stage)
    return {
        "run_id": run_id,
        "stage": stage.number,
        "status": stage.status,
        "total_items": stage.total,
        "processed_items": stage.processed_count,
        "failed_items": len(stage.failed),
        "items_out": stage.outputs,
        "credits_used": stage.credits,
        "started_at": stage.started_at,
        "finished_at": stage.finished_at,
        "partial": stage.partial,
        "error": stage.error,
        "currently_processing": _refs(current),
        "up_next": _refs(up_next),
        "remaining_count": len(stage.open_items()),
    }


def _upsert(table: sa.Table, rows: list[dict[str, Any]], keys: tuple[str, ...]) -> sa.Insert:
    statement = insert(table).values(rows)
    changes = {name: statement.excluded[name] for name in rows[0] if name not in keys}
    return statement.on_conflict_do_update(
        index_elements=list(keys), set_={**changes, "updated_at": sa.func.now()}
    )


def upsert_runs(connection: sa.Connection, runs: list[tuple[RunState, int | None]]) -> None:
    """Write the rows of these runs (summary plus all seven stages) in the caller's transaction."""
    if not runs:
        return
    run_rows = [run_row(state, estimate) for state, estimate in runs]
    connection.execute(_upsert(automation_runs, run_rows, ("run_id",)))
    stage_rows = [stage_row(state.run_id, stage) for state, _ in runs for stage in state.stages]
    connection.execute(_upsert(automation_run_stages, stage_rows, ("run_id", "stage")))
