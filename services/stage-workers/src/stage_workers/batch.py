"""ProcessBatch for stages 2-6: item by item, each written, charged and announced in one
transaction; the AI is called between transactions, never inside one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.engine import Connection

from contracts.commands import ProcessBatch
from contracts.envelope import Envelope
from contracts.events import StageBatchCompleted, StageItemFailed, StageItemProcessed
from contracts.values import ItemRef
from stage_workers import items, metrics, tracking
from stage_workers.ai.base import AIProvider
from stage_workers.ai.retry import PoisonedItem, with_retries
from stage_workers.deps import WorkerDeps
from stage_workers.ledger import InsufficientCredits, charge
from stage_workers.outcomes import HALTED, SKIPPED, STOPPED, Outcome, Tally


class Step(Protocol):
    """One stage's item work: read the input, ask the AI, write the output."""

    stage: int
    credits: int

    def load(self, conn: Connection, item_id: int) -> Any: ...

    async def produce(self, ai: AIProvider, source: Any) -> Any: ...

    def write(
        self, conn: Connection, deps: WorkerDeps, run_id: str, source: Any, draft: Any
    ) -> int:
        """Write the outputs (the input row is locked and still needs work); returns how many."""

    def mark_failed(self, conn: Connection, item_id: int, error: str) -> None: ...


@dataclass(frozen=True)
class BatchContext:
    command: Envelope
    batch: ProcessBatch
    total: int


async def open_batch(deps: WorkerDeps, command: Envelope) -> tuple[list[ItemRef], int] | None:
    """The batch's items and the stage total, or None when this command was handled before."""

    def read(conn: Connection) -> tuple[list[ItemRef], int] | None:
        batch: ProcessBatch = command.data
        if tracking.already_handled(conn, batch.stage, command):
            return None
        refs = items.refs_of(conn, batch.stage, command.site_id, batch.item_ids)
        total = tracking.picked_total(conn, batch.run_id, batch.stage) or len(batch.item_ids)
        return refs, total

    return await deps.in_transaction(read)


async def process_batch(deps: WorkerDeps, step: Step, command: Envelope) -> None:
    opened = await open_batch(deps, command)
    if opened is None:
        return
    refs, total = opened
    context = BatchContext(command, command.data, total)
    tally = Tally()
    for ref in refs:
        outcome = await process_item(deps, step, context, ref)
        if outcome is STOPPED:
            break
        tally.add(outcome)
        if tally.halted:
            break
    await deps.in_transaction(complete_batch, deps, command, tally)


@metrics.time_item
async def process_item(
    deps: WorkerDeps, step: Step, context: BatchContext, ref: ItemRef
) -> Outcome:
    before = await deps.in_transaction(_before_item, deps, step, context, ref)
    if isinstance(before, Outcome):
        return before
    try:
        draft = await with_retries(deps.retry, lambda: step.produce(deps.ai, before))
    except PoisonedItem as poisoned:
        return await deps.in_transaction(_record_failure, deps, step, context, ref, poisoned)
    try:
        return await deps.in_transaction(_write_item, deps, step, context, ref, before, draft)
    except InsufficientCredits:
        return HALTED


def _before_item(
    conn: Connection, deps: WorkerDeps, step: Step, context: BatchContext, ref: ItemRef
) -> Any:
    """An Outcome when the item needs nothing from us (or the run stopped), else the AI's
    input. The stop check shares this transaction: one round trip fewer per item."""
    batch = context.batch
    if tracking.run_is_stopped(conn, batch.run_id):
        return STOPPED
    earlier = tracking.earlier_result(conn, batch.run_id, batch.stage, ref.id)
    if earlier is not None:
        return Outcome("processed", earlier["credits"], earlier["outputs"])
    if not items.needs_work(conn, batch.stage, context.command.site_id, ref.id):
        return record_changed(conn, deps, context.command, ref)
    return step.load(conn, ref.id)


CHANGED_SINCE_PICKED = "skipped: the item changed since the stage picked it (e.g. disabled)"


def record_changed(conn: Connection, deps: WorkerDeps, command: Envelope, ref: ItemRef) -> Outcome:
    """The item no longer needs this stage and no run of ours did it: someone changed it after
    the stage picked it. Say so as a failure, or the run would wait for it forever."""
    batch: ProcessBatch = command.data
    failed = StageItemFailed(
        stage=batch.stage, batch_id=batch.batch_id, item=ref, error=CHANGED_SINCE_PICKED
    )
    deps.emit(conn, command, failed, tracking.item_failed_id(batch.run_id, batch.stage, ref.id))
    return Outcome("failed")


def _write_item(
    conn: Connection,
    deps: WorkerDeps,
    step: Step,
    context: BatchContext,
    ref: ItemRef,
    source: Any,
    draft: Any,
) -> Outcome:
    command, batch = context.command, context.batch
    if not items.lock_if_needs_work(conn, batch.stage, command.site_id, ref.id):
        # Another worker (a re-dispatched copy of this batch) wrote it meanwhile and announced
        # it in the same transaction: nothing to add.
        return SKIPPED
    outputs = step.write(conn, deps, batch.run_id, source, draft)
    credits = charge(
        conn,
        account_id=command.account_id,
        site_id=command.site_id,
        run_id=batch.run_id,
        stage=batch.stage,
        item_id=ref.id,
        amount=step.credits,
    )
    processed = StageItemProcessed(
        stage=batch.stage,
        batch_id=batch.batch_id,
        item=ref,
        total=context.total,
        credits=credits,
        outputs=outputs,
    )
    deps.emit(
        conn, command, processed, tracking.item_processed_id(batch.run_id, batch.stage, ref.id)
    )
    return Outcome("processed", credits, outputs)


def _record_failure(
    conn: Connection,
    deps: WorkerDeps,
    step: Step,
    context: BatchContext,
    ref: ItemRef,
    poisoned: PoisonedItem,
) -> Outcome:
    batch = context.batch
    step.mark_failed(conn, ref.id, poisoned.error)
    failed = StageItemFailed(
        stage=batch.stage,
        batch_id=batch.batch_id,
        item=ref,
        error=poisoned.error[:2000],
        attempts=poisoned.attempts,
    )
    deps.emit(
        conn, context.command, failed, tracking.item_failed_id(batch.run_id, batch.stage, ref.id)
    )
    return Outcome("failed")


def complete_batch(conn: Connection, deps: WorkerDeps, command: Envelope, tally: Tally) -> None:
    batch: ProcessBatch = command.data
    completed = StageBatchCompleted(
        stage=batch.stage,
        batch_id=batch.batch_id,
        processed=tally.processed,
        failed=tally.failed,
        credits=tally.credits,
        halted="insufficient_credits" if tally.halted else None,
    )
    deps.emit(
        conn,
        command,
        completed,
        tracking.batch_completed_id(batch.run_id, batch.stage, batch.batch_id, batch.attempt),
    )
    tracking.remember(conn, batch.stage, command)
    metrics.count_batch(batch.stage, tally.processed, tally.failed, tally.credits, tally.halted)
