"""The run read model (written by the log-sink from the fold) as API answers."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel, Field, computed_field
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from contracts import tracing
from contracts.db import tables as t
from contracts.stages import STAGES
from contracts.values import StageType, percentage, seconds_between

RunStatus = Literal["running", "paused", "completed", "cancelled", "failed", "rejected"]
StageStatus = Literal["pending", "running", "completed", "failed"]
HISTORY_LENGTH = 20


class ItemOut(BaseModel):
    id: int
    title: str


class ProviderWait(BaseModel):
    """The AI provider holds the stage's calls back: its items wait, none fails, nothing is
    charged for waiting. The run pauses itself once the wait passes the longest allowed."""

    provider: str
    model: str
    reason: str = Field(description="What the provider answered last, e.g. HTTP 503.")
    since: datetime
    waited_seconds: float = Field(description="From `since` to the time of the answer.")


class ProviderBatchWait(BaseModel):
    """An economy run's stage waits for the provider's batch (its Batch API): the requests were
    handed over and the answers come within 24 hours. Nothing is charged until they do."""

    provider: str
    provider_batch_ids: list[str] = Field(description="The provider's ids of the batches.")
    status: str = Field(description="The provider's word: validating, in_progress, ...")
    total: int = Field(description="Requests handed over.")
    completed: int = Field(description="Requests the provider has answered.")
    failed: int = Field(description="Requests the provider could not answer.")
    since: datetime = Field(description="When the requests were handed over.")


class StageResult(BaseModel):
    stage_number: int
    stage_name: str
    stage_type: StageType
    status: StageStatus
    items_in: int = Field(description="Items the stage picked.")
    items_out: int = Field(description="Items it produced.")
    processed_items: int
    failed_items: int
    credits_used: int
    started_at: datetime | None
    finished_at: datetime | None
    elapsed_seconds: float | None
    partial: bool
    error: str | None
    waiting_for_provider: ProviderWait | None = Field(
        description="Set while the AI provider holds this stage's calls back."
    )
    waiting_for_provider_batch: ProviderBatchWait | None = Field(
        description="Set while a batch of this stage waits for the provider's batch."
    )


class RunSummary(BaseModel):
    run_id: str
    site_id: int
    trigger: str
    status: RunStatus
    current_stage: int
    credits_used: int
    estimate: int | None
    error: str | None
    pause_reason: str | None
    started_at: datetime | None
    paused_at: datetime | None
    resumed_at: datetime | None
    cancelled_at: datetime | None
    ended_at: datetime | None

    @computed_field(  # type: ignore[prop-decorator]
        description="The run's OpenTelemetry trace id (32 hex digits), derived from the run id: "
        "every service's spans of the run are in this trace (ADR 20).",
        json_schema_extra={"pattern": "^[0-9a-f]{32}$"},
    )
    @property
    def trace_id(self) -> str:
        return tracing.run_trace_id(self.run_id)


class RunDetail(RunSummary):
    stages: list[StageResult] = Field(description="All seven stages, in order.")
    waiting_for_provider: ProviderWait | None = Field(
        description="The current stage's wait for the AI provider, if it has one."
    )
    waiting_for_provider_batch: ProviderBatchWait | None = Field(
        description="The current stage's wait for the provider's batch, if it has one."
    )


class CurrentRun(BaseModel):
    site_id: int
    run: RunDetail | None = Field(description="The running or paused run; null when idle.")


class ProcessingState(BaseModel):
    run_id: str | None = Field(description="Null when the site has no running or paused run.")
    run_status: RunStatus | Literal["idle"] = Field(
        description="`idle` when the site has no running or paused run (asked without run_id)."
    )
    stage_number: int
    stage_name: str
    stage_type: StageType
    stage_status: StageStatus
    total_items: int
    processed_items: int
    failed_items: int
    percentage: float = Field(description="Settled (processed or failed) share of the items.")
    currently_processing: list[ItemOut]
    up_next: list[ItemOut]
    remaining_count: int
    waiting_for_provider: ProviderWait | None = Field(
        description="Set while the AI provider holds the stage's calls back."
    )
    waiting_for_provider_batch: ProviderBatchWait | None = Field(
        description="Set while a batch of the stage waits for the provider's batch."
    )


def summary(row: Row) -> RunSummary:
    return RunSummary.model_validate(dict(row._mapping))


_STAGE_ROWS = sa.select(t.automation_run_stages).where(
    t.automation_run_stages.c.run_id == sa.bindparam("run_id")
)
_STAGE_ROW = _STAGE_ROWS.where(t.automation_run_stages.c.stage == sa.bindparam("stage"))


async def stage_rows(conn: AsyncConnection, run_id: str) -> dict[int, Row]:
    rows = (await conn.execute(_STAGE_ROWS, {"run_id": run_id})).all()
    return {row.stage: row for row in rows}


async def stage_row(conn: AsyncConnection, run_id: str, stage: int) -> Row | None:
    return (await conn.execute(_STAGE_ROW, {"run_id": run_id, "stage": stage})).first()


def stage_result(number: int, row: Row | None) -> StageResult:
    stage = STAGES[number]
    base = {"stage_number": number, "stage_name": stage.name, "stage_type": stage.type}
    if row is None:
        return StageResult(
            **base,
            status="pending",
            items_in=0,
            items_out=0,
            processed_items=0,
            failed_items=0,
            credits_used=0,
            started_at=None,
            finished_at=None,
            elapsed_seconds=None,
            partial=False,
            error=None,
            waiting_for_provider=None,
            waiting_for_provider_batch=None,
        )
    return StageResult(
        **base,
        status=row.status,
        items_in=row.total_items,
        items_out=row.items_out,
        processed_items=row.processed_items,
        failed_items=row.failed_items,
        credits_used=row.credits_used,
        started_at=row.started_at,
        finished_at=row.finished_at,
        elapsed_seconds=seconds_between(row.started_at, row.finished_at),
        partial=row.partial,
        error=row.error,
        waiting_for_provider=provider_wait(row),
        waiting_for_provider_batch=provider_batch_wait(row),
    )


def provider_wait(row: Row | None) -> ProviderWait | None:
    if row is None or row.waiting_since is None:
        return None
    return ProviderWait(
        provider=row.waiting_provider or "",
        model=row.waiting_model or "",
        reason=row.waiting_reason or "",
        since=row.waiting_since,
        waited_seconds=max(0.0, (datetime.now(UTC) - row.waiting_since).total_seconds()),
    )


def provider_batch_wait(row: Row | None) -> ProviderBatchWait | None:
    """From the row's `provider_batch` (contracts.run_rows.provider_batch_row), JSON."""
    value = getattr(row, "provider_batch", None)
    return ProviderBatchWait.model_validate(value) if isinstance(value, dict) else None


async def detail(conn: AsyncConnection, row: Row) -> RunDetail:
    stages = await stage_rows(conn, row.run_id)
    return run_detail(row, {n: stages.get(n) for n in STAGES})


def run_detail(run: Any, stages: Mapping[int, Any]) -> RunDetail:
    """The run (its read-model row, or one built like it) with its seven stages' rows; what
    its current stage waits for is repeated at the top. The read endpoints and the live
    snapshot both answer this."""
    results = [stage_result(n, stages.get(n)) for n in STAGES]
    current = results[run.current_stage - 1] if run.current_stage in STAGES else None
    return RunDetail(
        **RunSummary.model_validate(run, from_attributes=True).model_dump(),
        stages=results,
        waiting_for_provider=current.waiting_for_provider if current else None,
        waiting_for_provider_batch=current.waiting_for_provider_batch if current else None,
    )


def _items(value: object) -> list[ItemOut]:
    if not isinstance(value, list):
        return []
    return [ItemOut.model_validate(item) for item in value if isinstance(item, dict)]


def idle_state() -> ProcessingState:
    """A site with no active run: where the next run begins, with nothing in progress."""
    return processing_state(SimpleNamespace(run_id=None, status="idle", current_stage=1), None)


def processing_state(run: Any, stage_row: Any | None) -> ProcessingState:
    """The run's current stage (its read-model rows, or ones built like them); a stage without
    a row yet is pending with nothing in progress."""
    number = run.current_stage if run.current_stage in STAGES else 1
    stage = STAGES[number]
    total = stage_row.total_items if stage_row else 0
    processed = stage_row.processed_items if stage_row else 0
    failed = stage_row.failed_items if stage_row else 0
    status = stage_row.status if stage_row else "pending"
    return ProcessingState(
        run_id=run.run_id,
        run_status=run.status,
        stage_number=number,
        stage_name=stage.name,
        stage_type=stage.type,
        stage_status=status,
        total_items=total,
        processed_items=processed,
        failed_items=failed,
        percentage=percentage(processed + failed, total, finished=status == "completed"),
        currently_processing=_items(stage_row.currently_processing) if stage_row else [],
        up_next=_items(stage_row.up_next) if stage_row else [],
        remaining_count=stage_row.remaining_count if stage_row else 0,
        waiting_for_provider=provider_wait(stage_row),
        waiting_for_provider_batch=provider_batch_wait(stage_row),
    )
