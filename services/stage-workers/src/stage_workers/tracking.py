"""What the worker remembers and reads besides content: handled commands, run status, and the
events it already wrote (the outbox doubles as the record of finished items)."""

from __future__ import annotations

from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Connection

from contracts.db import tables as t
from contracts.envelope import Envelope, deterministic_id
from contracts.outbox import stored_payload

STOPPED_RUN_STATUSES = ("paused", "cancelled", "failed")


def consumer_name(stage: int) -> str:
    return f"automation-stage-{stage}"


def already_handled(conn: Connection, stage: int, command: Envelope) -> bool:
    p = t.processed_messages.c
    return (
        conn.execute(
            sa.select(sa.literal(True)).where(
                p.consumer == consumer_name(stage), p.message_id == command.message_id
            )
        ).first()
        is not None
    )


def remember(conn: Connection, stage: int, command: Envelope) -> None:
    conn.execute(
        insert(t.processed_messages)
        .values(consumer=consumer_name(stage), message_id=command.message_id)
        .on_conflict_do_nothing()
    )


def run_is_stopped(conn: Connection, run_id: str) -> bool:
    """A run paused, cancelled or failed; no row yet (the read model lags) means go on."""
    status = conn.execute(
        sa.select(t.automation_runs.c.status).where(t.automation_runs.c.run_id == run_id)
    ).scalar_one_or_none()
    return status in STOPPED_RUN_STATUSES


def stage_started_id(run_id: str, stage: int) -> UUID:
    return deterministic_id(run_id, "stage-started", stage)


def item_processed_id(run_id: str, stage: int, item_id: int) -> UUID:
    return deterministic_id(run_id, stage, item_id, "processed")


def item_failed_id(run_id: str, stage: int, item_id: int) -> UUID:
    return deterministic_id(run_id, stage, item_id, "failed")


def batch_completed_id(run_id: str, stage: int, batch_id: str, attempt: int) -> UUID:
    return deterministic_id(run_id, stage, batch_id, attempt, "batch-completed")


def picked_total(conn: Connection, run_id: str, stage: int) -> int | None:
    """How many items the stage picked, from the StageStarted this worker pool wrote."""
    started = stored_payload(conn, stage_started_id(run_id, stage))
    return len(started["data"]["items"]) if started else None


def earlier_result(conn: Connection, run_id: str, stage: int, item_id: int) -> dict | None:
    """The StageItemProcessed data written by an earlier delivery of this item, if any."""
    stored = stored_payload(conn, item_processed_id(run_id, stage, item_id))
    return stored["data"] if stored else None
