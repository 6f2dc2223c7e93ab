"""ProcessBatch for stages 2-6. One transaction reads all the batch needs (handled before? run
stopped? what became of its items? their AI inputs); then, item by item, the AI is called and one
transaction writes the output, the charge, the item's result and its event, and checks the run is
still going; the last item's transaction completes the batch too. A one-item batch is two
transactions. The AI is called between transactions, never inside one."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.engine import Connection

from contracts.commands import ProcessBatch
from contracts.envelope import Envelope
from contracts.events import StageBatchCompleted, StageItemFailed, StageItemProcessed
from contracts.values import ItemRef
from stage_workers import items, metrics, tracking
from stage_workers.ai.base import AIProvider, FatalAIError
from stage_workers.ai.retry import PoisonedItem, with_retries
from stage_workers.deps import WorkerDeps
from stage_workers.ledger import InsufficientCredits, charge
from stage_workers.outcomes import FAILED, HALTED, SKIPPED, Outcome, Tally


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


@dataclass(frozen=True)
class Opened:
    context: BatchContext
    stopped: bool  # the run is paused, cancelled or over: the batch ends at once
    done: tuple[Outcome, ...]  # items that need nothing from us (done before, or changed)
    todo: tuple[tuple[ItemRef, Any], ...]  # items to work on, each with the AI's input


@dataclass(frozen=True)
class Ended:
    """What became of one item, and whether the batch goes on."""

    outcome: Outcome
    closed: bool = False  # the item's transaction also completed the batch
    stop: bool = False  # the run stopped meanwhile: the next item waits for a resume


Load = Callable[[Connection, int], Any]


def open_batch(
    conn: Connection, deps: WorkerDeps, command: Envelope, load: Load | None
) -> Opened | None:
    """Everything the batch needs before its first AI call, in one transaction; None when this
    command was handled before. `load` reads an item's AI input (None: the item itself)."""
    batch: ProcessBatch = command.data
    book = deps.book(conn)
    opening = book.opening(
        tracking.consumer_name(batch.stage), command.message_id, batch.run_id, batch.stage
    )
    if opening.handled:
        return None
    context = BatchContext(command, batch, opening.picked or len(batch.item_ids))
    if deps.run_stopped(batch.run_id, opening.stopped):
        return Opened(context, True, (), ())
    refs = items.refs_of(conn, batch.stage, command.site_id, batch.item_ids)
    earlier = book.results(batch.run_id, batch.stage, [ref.id for ref in refs])
    fresh = [ref.id for ref in refs if ref.id not in earlier]
    open_ids = items.needing_work(conn, batch.stage, command.site_id, fresh) if fresh else set()
    done: list[Outcome] = []
    todo: list[tuple[ItemRef, Any]] = []
    for ref in refs:
        if ref.id in earlier:
            done.append(earlier[ref.id])
        elif ref.id in open_ids:
            todo.append((ref, load(conn, ref.id) if load else ref))
        else:
            done.append(record_changed(conn, deps, command, ref))
    return Opened(context, False, tuple(done), tuple(todo))


async def process_batch(deps: WorkerDeps, step: Step, command: Envelope) -> None:
    opened = await deps.in_transaction(open_batch, deps, command, step.load)
    if opened is None:
        return
    tally = Tally.of(opened.done)
    if not opened.stopped:
        for n, (ref, source) in enumerate(opened.todo):
            closing = tally if n == len(opened.todo) - 1 else None
            try:
                ended = await process_item(deps, step, opened.context, ref, source, closing)
            except FatalAIError as fatal:
                tally.fatal = str(fatal)
                break
            if ended.closed:
                return
            tally.add(ended.outcome)
            if tally.halted or ended.stop:
                break
    await deps.in_transaction(complete_batch, deps, command, tally)


@metrics.time_item
async def process_item(
    deps: WorkerDeps,
    step: Step,
    context: BatchContext,
    ref: ItemRef,
    source: Any,
    closing: Tally | None,
) -> Ended:
    """Ask the AI, then write in one transaction; `closing` (the batch's tally before this
    item) makes that transaction complete the batch as well."""
    try:
        draft = await with_retries(deps.retry, lambda: step.produce(deps.ai, source))
    except PoisonedItem as poisoned:
        return await deps.in_transaction(
            _finish, deps, context, closing, _record_failure, step, ref, poisoned
        )
    try:
        return await deps.in_transaction(
            _finish, deps, context, closing, _write_item, step, ref, source, draft
        )
    except InsufficientCredits:
        return Ended(HALTED)


def _finish(
    conn: Connection,
    deps: WorkerDeps,
    context: BatchContext,
    closing: Tally | None,
    write: Callable[..., Outcome],
    *args: Any,
) -> Ended:
    outcome = write(conn, deps, context, *args)
    if closing is not None:
        complete_batch(conn, deps, context.command, closing.plus(outcome))
        return Ended(outcome, closed=True)
    run_id = context.batch.run_id
    return Ended(outcome, stop=deps.run_stopped(run_id, deps.book(conn).is_stopped(run_id)))


CHANGED_SINCE_PICKED = "skipped: the item changed since the stage picked it (e.g. disabled)"


def record_changed(conn: Connection, deps: WorkerDeps, command: Envelope, ref: ItemRef) -> Outcome:
    """The item no longer needs this stage and no run of ours did it: someone changed it after
    the stage picked it. Say so as a failure, or the run would wait for it forever."""
    batch: ProcessBatch = command.data
    failed = StageItemFailed(
        stage=batch.stage, batch_id=batch.batch_id, item=ref, error=CHANGED_SINCE_PICKED
    )
    deps.emit(conn, command, failed, tracking.item_failed_id(batch.run_id, batch.stage, ref.id))
    deps.book(conn).record_result(batch.run_id, batch.stage, ref.id, FAILED)
    return FAILED


def _write_item(
    conn: Connection,
    deps: WorkerDeps,
    context: BatchContext,
    step: Step,
    ref: ItemRef,
    source: Any,
    draft: Any,
) -> Outcome:
    command, batch = context.command, context.batch
    if not items.lock_needing_work(conn, batch.stage, command.site_id, [ref.id]):
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
    outcome = Outcome("processed", credits, outputs)
    deps.book(conn).record_result(batch.run_id, batch.stage, ref.id, outcome)
    return outcome


def _record_failure(
    conn: Connection,
    deps: WorkerDeps,
    context: BatchContext,
    step: Step,
    ref: ItemRef,
    poisoned: PoisonedItem,
) -> Outcome:
    batch = context.batch
    step.mark_failed(conn, ref.id, poisoned.error)
    items.count_failure(
        conn, batch.stage, context.command.site_id, ref.id, batch.run_id, poisoned.error
    )
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
    deps.book(conn).record_result(batch.run_id, batch.stage, ref.id, FAILED)
    return FAILED


def complete_batch(conn: Connection, deps: WorkerDeps, command: Envelope, tally: Tally) -> None:
    batch: ProcessBatch = command.data
    completed = StageBatchCompleted(
        stage=batch.stage,
        batch_id=batch.batch_id,
        processed=tally.processed,
        failed=tally.failed,
        credits=tally.credits,
        halted="insufficient_credits" if tally.halted else None,
        fatal=tally.fatal[:2000] if tally.fatal else None,
    )
    deps.emit(
        conn,
        command,
        completed,
        tracking.batch_completed_id(batch.run_id, batch.stage, batch.batch_id, batch.attempt),
    )
    deps.book(conn).remember(tracking.consumer_name(batch.stage), command.message_id)
    metrics.count_batch(batch.stage, tally.processed, tally.failed, tally.credits, tally.halted)
