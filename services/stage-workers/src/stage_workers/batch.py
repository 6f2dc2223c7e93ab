"""ProcessBatch for stages 1-6. A step cuts its batch into units of work, each one AI call and
one write: in stages 2-6 every item is a unit; in stage 1 the batch's keywords are one (a single
call clusters them all). One transaction reads all the batch needs (handled before? run
stopped? what became of its items? each unit's AI input); then, unit by unit, the AI is called
and one transaction writes the outputs and, per item, the charge, the result and the event, and
checks the run is still going; the last unit's transaction completes the batch too. A one-item
batch, like a stage-1 batch, is two transactions. The AI is called between transactions, never
inside one."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from sqlalchemy.engine import Connection

from contracts import tracing
from contracts.commands import ProcessBatch
from contracts.envelope import Envelope
from contracts.events import (
    StageBatchCompleted,
    StageItemFailed,
    StageItemProcessed,
    StageProviderRecovered,
    StageWaitingForProvider,
)
from contracts.stages import PRICES, Price
from contracts.tracing import Span
from contracts.values import ItemRef
from stage_workers import items, metrics, tracking
from stage_workers.ai.base import AIProvider, FatalAIError
from stage_workers.ai.retry import PoisonedItem
from stage_workers.bookkeeping import RunBook
from stage_workers.deps import WorkerDeps
from stage_workers.gate.calls import SCOPE, CallRecord, CallScope, ProviderWaitTooLong
from stage_workers.gate.gate import Lane
from stage_workers.gate.journal import UnitKey, UnitWritten, consume, discard
from stage_workers.gate.lane import Wait
from stage_workers.lease import lease_kept
from stage_workers.ledger import InsufficientCredits, charge
from stage_workers.outcomes import FAILED, HALTED, SKIPPED, Outcome, Tally
from stage_workers.usage import record_calls


class Step(Protocol):
    """One stage's work on a unit of its items: read the input, ask the AI once, write."""

    stage: int
    unit: Literal["item", "batch"]  # one AI call per item, or one for the batch's items

    def load(self, conn: Connection, refs: tuple[ItemRef, ...]) -> Any:
        """The AI's input for a unit (an "item" step's unit holds one ref)."""

    async def produce(self, ai: AIProvider, source: Any) -> Any: ...

    def write(
        self,
        conn: Connection,
        deps: WorkerDeps,
        run_id: str,
        source: Any,
        draft: Any,
        open_ids: set[int],
    ) -> dict[int, int]:
        """Write the outputs of the unit's items in `open_ids` (their rows are locked and still
        need work); returns how many each item made, in the order their events go out."""

    def mark_failed(self, conn: Connection, item_id: int, error: str) -> None: ...


@dataclass(frozen=True)
class Unit:
    """Items that go through one AI call and one write together, with the AI's input."""

    refs: tuple[ItemRef, ...]
    source: Any


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
    todo: tuple[Unit, ...]  # the items to work on, in units, each with the AI's input


@dataclass(frozen=True)
class Ended:
    """What became of one unit's items, and whether the batch goes on."""

    outcomes: tuple[Outcome, ...]
    closed: bool = False  # the unit's transaction also completed the batch
    stop: bool = False  # the run stopped meanwhile: the next unit waits for a resume


def open_batch(conn: Connection, deps: WorkerDeps, command: Envelope, step: Step) -> Opened | None:
    """Everything the batch needs before its first AI call, in one transaction; None when this
    command was handled before."""
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
    todo: list[ItemRef] = []
    for ref in refs:
        if ref.id in earlier:
            done.append(earlier[ref.id])
        elif ref.id in open_ids:
            todo.append(ref)
        else:
            done.append(record_changed(conn, deps, command, ref))
    units = [tuple(todo)] if step.unit == "batch" else [(ref,) for ref in todo]
    loaded = tuple(Unit(unit, step.load(conn, unit)) for unit in units if unit)
    return Opened(context, False, tuple(done), loaded)


async def process_batch(deps: WorkerDeps, step: Step, command: Envelope) -> None:
    opened = await deps.in_transaction(open_batch, deps, command, step)
    if opened is None:
        return
    tally = Tally.of(opened.done)
    if not opened.stopped:
        async with lease_kept(deps, command):
            for n, unit in enumerate(opened.todo):
                closing = tally if n == len(opened.todo) - 1 else None
                try:
                    with unit_span(step, unit) as span:
                        ended = await process_unit(deps, step, opened.context, unit, closing)
                        if span.is_recording():
                            span.set_attribute("automation.outcomes", _kinds(ended))
                except FatalAIError as fatal:
                    tally.fatal = str(fatal)
                    break
                if ended.closed:
                    return
                tally.add(*ended.outcomes)
                if tally.halted or ended.stop:
                    break
    await deps.in_transaction(complete_batch, deps, command, tally)


def unit_span(step: Step, unit: Unit) -> AbstractContextManager[Span]:
    """The span of one unit, a child of the batch's: `stage <n> item` (or `stage 1 batch`, its
    keywords clustered in one call), with its items' ids."""
    if not tracing.enabled():
        return tracing.UNTRACED
    return tracing.span(
        f"stage {step.stage} {step.unit}",
        attributes={
            "automation.stage": step.stage,
            "automation.item.ids": [ref.id for ref in unit.refs],
        },
    )


def _kinds(ended: Ended) -> list[str]:
    return [outcome.kind for outcome in ended.outcomes]


@metrics.time_item
async def process_unit(
    deps: WorkerDeps, step: Step, context: BatchContext, unit: Unit, closing: Tally | None
) -> Ended:
    """Ask the AI (through the gate, which may make it wait), then write in one transaction
    with the records of the calls made; `closing` (the batch's tally before this unit) makes
    that transaction complete the batch as well."""
    batch = context.batch
    scope = CallScope(
        batch.run_id,
        waiting=lambda lane, wait: _announce(deps, context, lane, wait, recovered=False),
        recovered=lambda lane, wait: _announce(deps, context, lane, wait, recovered=True),
        unit=UnitKey.of(batch.run_id, batch.stage, [ref.id for ref in unit.refs]),
    )
    token = SCOPE.set(scope)
    try:
        draft = await step.produce(deps.ai, unit.source)
    except PoisonedItem as poisoned:
        records = scope.take_records()
        return await deps.in_transaction(
            _finish, deps, context, closing, unit, records, _record_failure, step, poisoned
        )
    except UnitWritten:
        # A copy of this batch (sent again, or redelivered) wrote the unit meanwhile.
        await deps.in_transaction(record_calls, context.command, unit.refs, scope.take_records())
        return Ended((SKIPPED,))
    except ProviderWaitTooLong as waited:
        records = scope.take_records()
        await deps.in_transaction(_record_calls, deps, context, unit, records, discard)
        return Ended((Outcome("halted", halt="ai_provider_unavailable", detail=str(waited)),))
    except FatalAIError:
        records = scope.take_records()
        await deps.in_transaction(_record_calls, deps, context, unit, records, discard)
        raise
    finally:
        SCOPE.reset(token)
    records = scope.take_records()
    try:
        return await deps.in_transaction(
            _finish, deps, context, closing, unit, records, _write_unit, step, draft
        )
    except InsufficientCredits:
        await deps.in_transaction(_record_calls, deps, context, unit, records, discard)
        return Ended((HALTED,))


def _record_calls(
    conn: Connection,
    deps: WorkerDeps,
    context: BatchContext,
    unit: Unit,
    records: Sequence[CallRecord],
    take: Callable[[Connection, UnitKey], list[dict[str, Any]]] = consume,
) -> None:
    """Write the unit's AI-call records: those in hand, and those kept with answers (by this
    worker or one that had the batch before), whose rows this transaction `take`s: marks
    written with the unit, or discards when the unit ends unwritten."""
    kept: list[CallRecord] = []
    if getattr(deps.ai, "journal", None) is not None:
        batch = context.batch
        key = UnitKey.of(batch.run_id, batch.stage, [ref.id for ref in unit.refs])
        kept = [CallRecord(**fields) for fields in take(conn, key)]
    record_calls(conn, context.command, unit.refs, [*records, *kept])


def _finish(
    conn: Connection,
    deps: WorkerDeps,
    context: BatchContext,
    closing: Tally | None,
    unit: Unit,
    records: Sequence[CallRecord],
    write: Callable[..., tuple[Outcome, ...]],
    step: Step,
    result: Any,
) -> Ended:
    _record_calls(conn, deps, context, unit, records)
    outcomes = write(conn, deps, context, step, unit, result)
    if closing is not None:
        complete_batch(conn, deps, context.command, closing.plus(*outcomes))
        return Ended(outcomes, closed=True)
    run_id = context.batch.run_id
    return Ended(outcomes, stop=deps.run_stopped(run_id, deps.book(conn).is_stopped(run_id)))


async def _announce(
    deps: WorkerDeps, context: BatchContext, lane: Lane, wait: Wait, recovered: bool
) -> None:
    """Tell the run the provider holds its calls back, or does so no longer: every batch of the
    run that meets the same wait writes the same event, so the run hears of it once."""
    batch = context.batch
    since = datetime.fromtimestamp(wait.since, UTC)
    if recovered:
        event: Any = StageProviderRecovered(
            stage=batch.stage, provider=lane.provider, model=lane.model, since=since
        )
        message_id = tracking.provider_recovered_id(batch.run_id, batch.stage, lane.key, wait.since)
    else:
        event = StageWaitingForProvider(
            stage=batch.stage,
            provider=lane.provider,
            model=lane.model,
            reason=wait.reason[:2000],
            since=since,
        )
        message_id = tracking.provider_waiting_id(batch.run_id, batch.stage, lane.key, wait.since)
    await deps.in_transaction(lambda conn: deps.emit(conn, context.command, event, message_id))


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


def _write_unit(
    conn: Connection, deps: WorkerDeps, context: BatchContext, step: Step, unit: Unit, draft: Any
) -> tuple[Outcome, ...]:
    command, batch = context.command, context.batch
    ids = [ref.id for ref in unit.refs]
    open_ids = items.lock_needing_work(conn, batch.stage, command.site_id, ids)
    if not open_ids:
        # Another worker (a re-dispatched copy of this batch) wrote them meanwhile and announced
        # them in the same transaction: nothing to add.
        return (SKIPPED,)
    outputs = step.write(conn, deps, batch.run_id, unit.source, draft, open_ids)
    amounts = _amounts(deps.book(conn), context, PRICES[batch.stage], list(outputs))
    refs = {ref.id: ref for ref in unit.refs}
    return tuple(
        _processed(conn, deps, context, refs[item_id], amounts[item_id], made)
        for item_id, made in outputs.items()
    )


def _amounts(
    book: RunBook, context: BatchContext, price: Price, item_ids: list[int]
) -> dict[int, int]:
    """What each item costs. A price per several items (stage 1's) goes by the item's place in
    the stage's pick order; for a run picked before the workers kept their picks, by its place
    in the batch."""
    if price.per == 1:
        return dict.fromkeys(item_ids, price.credits)  # the same for every place
    batch = context.batch
    places = book.positions(batch.run_id, batch.stage, item_ids)
    if len(places) < len(item_ids):
        places = {item_id: n for n, item_id in enumerate(batch.item_ids)}
    return {item_id: price.due(places[item_id]) for item_id in item_ids}


def _processed(
    conn: Connection,
    deps: WorkerDeps,
    context: BatchContext,
    ref: ItemRef,
    amount: int,
    outputs: int,
) -> Outcome:
    """Charge, announce and record one item the unit's write has done."""
    command, batch = context.command, context.batch
    credits = charge(
        conn,
        account_id=command.account_id,
        site_id=command.site_id,
        run_id=batch.run_id,
        stage=batch.stage,
        item_id=ref.id,
        amount=amount,
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
    unit: Unit,
    poisoned: PoisonedItem,
) -> tuple[Outcome, ...]:
    """The AI could not do the unit: each of its items failed, once more across runs."""
    command, batch = context.command, context.batch
    for ref in unit.refs:
        step.mark_failed(conn, ref.id, poisoned.error)
        items.count_failure(
            conn, batch.stage, command.site_id, ref.id, batch.run_id, poisoned.error
        )
        failed = StageItemFailed(
            stage=batch.stage,
            batch_id=batch.batch_id,
            item=ref,
            error=poisoned.error[:2000],
            attempts=poisoned.attempts,
        )
        deps.emit(conn, command, failed, tracking.item_failed_id(batch.run_id, batch.stage, ref.id))
        deps.book(conn).record_result(batch.run_id, batch.stage, ref.id, FAILED)
    return (FAILED,) * len(unit.refs)


def complete_batch(conn: Connection, deps: WorkerDeps, command: Envelope, tally: Tally) -> None:
    batch: ProcessBatch = command.data
    completed = StageBatchCompleted(
        stage=batch.stage,
        batch_id=batch.batch_id,
        processed=tally.processed,
        failed=tally.failed,
        credits=tally.credits,
        halted=tally.halted,
        halt_detail=tally.halt_detail[:2000] if tally.halt_detail else None,
        fatal=tally.fatal[:2000] if tally.fatal else None,
    )
    deps.emit(
        conn,
        command,
        completed,
        tracking.batch_completed_id(batch.run_id, batch.stage, batch.batch_id, batch.attempt),
    )
    deps.book(conn).remember(tracking.consumer_name(batch.stage), command.message_id)
    metrics.count_batch(
        batch.stage, tally.processed, tally.failed, tally.credits, tally.halted is not None
    )
