"""ProcessBatch for stages 1-6, the item path. A step cuts its batch into units of work, each one
AI call and one write: in stages 2-6 every item is a unit; in stage 1 the batch's keywords are
one (a single call clusters them all).

1. Open (one transaction): handled before? the run stopped? what became of its items? each
   unit's AI input.
2. Per unit, ask the AI (between transactions, never inside one), then write it in one
   transaction (`write_unit`): the AI calls, the outputs and, per item, the charge, the event
   and the result; then check the run is still going.
3. Close: the last unit's transaction completes the batch too (StageBatchCompleted, and the
   command recorded as handled), so a one-item batch, like a stage-1 batch, is two
   transactions; a batch that ends early closes in a transaction of its own.

Every transaction is a unit of work (unit_of_work.py): its effects commit together or not at
all, and a redelivered command finds them and does nothing twice."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from sqlalchemy.engine import Connection

from contracts import ids, tracing
from contracts.commands import ProcessBatch
from contracts.envelope import Envelope
from contracts.events import (
    StageBatchCompleted,
    StageItemFailed,
    StageItemProcessed,
    StageProviderRecovered,
    StageWaitingForProvider,
)
from contracts.stages import PRICES
from contracts.tracing import Span
from contracts.values import ItemRef, clip
from stage_workers import items, metrics, tracking
from stage_workers.ai.base import AIProvider, FatalAIError
from stage_workers.ai.retry import PoisonedItem
from stage_workers.deps import WorkerDeps
from stage_workers.gate.calls import SCOPE, CallRecord, CallScope, ProviderWaitTooLong
from stage_workers.gate.gate import Lane
from stage_workers.gate.journal import UnitKey, UnitWritten, consume, discard
from stage_workers.gate.lane import Wait
from stage_workers.lease import lease_kept
from stage_workers.outcomes import FAILED, HALTED, SKIPPED, Outcome, Tally
from stage_workers.unit_of_work import InsufficientCredits, UnitOfWork


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
    key: UnitKey  # the unit's name in the journal of AI calls (gate/journal.py)


@dataclass(frozen=True)
class BatchContext:
    command: Envelope
    batch: ProcessBatch
    total: int  # how many items the stage picked


@dataclass(frozen=True)
class Opened:
    context: BatchContext
    stopped: bool  # the run is paused, cancelled or over: the batch ends at once
    done: tuple[Outcome, ...]  # items that need nothing from us (done before, or changed)
    todo: tuple[Unit, ...]  # the items to work on, in units, each with the AI's input


@dataclass(frozen=True)
class Answer:
    """What the AI made of a unit: a draft, or the error that failed its items."""

    draft: Any = None
    failure: PoisonedItem | None = None


@dataclass(frozen=True)
class Ended:
    """What became of one unit's items, and whether the batch goes on."""

    outcomes: tuple[Outcome, ...]
    closed: bool = False  # the unit's transaction also completed the batch
    stop: bool = False  # the run stopped meanwhile: the next unit waits for a resume


async def process_batch(deps: WorkerDeps, step: Step, command: Envelope) -> None:
    opened = await deps.unit_of_work(command, open_batch, step)
    if opened is None:
        return
    tally = Tally.of(opened.done)
    if not opened.stopped:
        async with lease_kept(deps, command):
            for n, unit in enumerate(opened.todo):
                last = n == len(opened.todo) - 1
                try:
                    with unit_span(step, unit) as span:
                        ended = await process_unit(
                            deps, step, opened.context, unit, tally if last else None
                        )
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
    await deps.unit_of_work(command, complete_batch, tally)


def open_batch(uow: UnitOfWork, step: Step) -> Opened | None:
    """Everything the batch needs before its first AI call; None when this command was
    handled before."""
    command, batch = uow.command, uow.command.data
    opening = uow.book.opening(
        tracking.consumer_name(batch.stage), command.message_id, batch.run_id, batch.stage
    )
    if opening.handled:
        return None
    context = BatchContext(command, batch, opening.picked or len(batch.item_ids))
    if uow.run_stopped():
        return Opened(context, True, (), ())
    refs = items.refs_of(uow.conn, batch.stage, command.site_id, batch.item_ids)
    earlier = uow.book.results(batch.run_id, batch.stage, [ref.id for ref in refs])
    fresh = [ref.id for ref in refs if ref.id not in earlier]
    open_ids = items.needing_work(uow.conn, batch.stage, command.site_id, fresh) if fresh else set()
    done: list[Outcome] = []
    todo: list[ItemRef] = []
    for ref in refs:
        if ref.id in earlier:
            done.append(earlier[ref.id])
        elif ref.id in open_ids:
            todo.append(ref)
        else:
            done.append(item_failed(uow, ref, CHANGED_SINCE_PICKED))
    units = [(ref,) for ref in todo]
    if step.unit == "batch":  # one call for the batch's items, or for each `unit_items` of them
        size = batch.unit_items or len(todo) or 1
        units = [tuple(todo[n : n + size]) for n in range(0, len(todo), size)]
    return Opened(
        context, False, tuple(done), tuple(_load(uow, step, refs) for refs in units if refs)
    )


def _load(uow: UnitOfWork, step: Step, refs: tuple[ItemRef, ...]) -> Unit:
    batch = uow.command.data
    return Unit(refs, step.load(uow.conn, refs), UnitKey.of(batch.run_id, batch.stage, _ids(refs)))


# The item no longer needs this stage and no run of ours did it: someone changed it after the
# stage picked it. It is reported as failed, or the run would wait for it forever.
CHANGED_SINCE_PICKED = "skipped: the item changed since the stage picked it (e.g. disabled)"


@metrics.time_item
async def process_unit(
    deps: WorkerDeps, step: Step, context: BatchContext, unit: Unit, closing: Tally | None
) -> Ended:
    """Ask the AI (through the gate, which may make it wait), then write the unit in one
    transaction; `closing` (the batch's tally before this unit, for its last unit) makes that
    transaction complete the batch as well."""
    command, run_id = context.command, context.batch.run_id
    scope = CallScope(
        run_id,
        waiting=lambda lane, wait: _announce(deps, context, lane, wait, recovered=False),
        recovered=lambda lane, wait: _announce(deps, context, lane, wait, recovered=True),
        unit=unit.key,
    )
    token = SCOPE.set(scope)
    try:
        answer = Answer(draft=await step.produce(deps.ai, unit.source))
    except PoisonedItem as poisoned:
        answer = Answer(failure=poisoned)
    except UnitWritten:
        # A copy of this batch (sent again, or redelivered) wrote the unit meanwhile.
        records = scope.take_records()
        await deps.unit_of_work(command, UnitOfWork.record_calls, unit.refs, records)
        return Ended((SKIPPED,))
    except (ProviderWaitTooLong, FatalAIError) as failed:
        # The calls were made (and may be paid for) even though the unit ends without items.
        await deps.unit_of_work(command, record_calls, deps, unit, scope.take_records(), discard)
        if isinstance(failed, FatalAIError):
            raise
        return Ended((Outcome("halted", halt="ai_provider_unavailable", detail=str(failed)),))
    finally:
        SCOPE.reset(token)
    return await write_or_halt(deps, step, context, unit, answer, scope.take_records(), closing)


async def write_or_halt(
    deps: WorkerDeps,
    step: Step,
    context: BatchContext,
    unit: Unit,
    answer: Answer,
    records: Sequence[CallRecord],
    closing: Tally | None = None,
    from_provider_batch: bool = False,
) -> Ended:
    """`write_unit` in one transaction; if the account cannot pay, that rolls back, the unit's
    calls alone are recorded, and the batch halts. An answer from a provider batch is not
    recorded then: it stays in the provider's file, and its call is recorded once, with the
    unit, when a resumed run writes it."""
    args = (deps, step, context, unit, answer, records, closing, from_provider_batch)
    try:
        return await deps.unit_of_work(context.command, write_unit, *args)
    except InsufficientCredits:
        own_calls = [] if from_provider_batch else records
        await deps.unit_of_work(context.command, record_calls, deps, unit, own_calls, discard)
        return Ended((HALTED,))


def write_unit(
    uow: UnitOfWork,
    deps: WorkerDeps,
    step: Step,
    context: BatchContext,
    unit: Unit,
    answer: Answer,
    records: Sequence[CallRecord],
    closing: Tally | None,
    from_provider_batch: bool,
) -> Ended:
    """One unit in one transaction: its AI calls; its items written, charged, announced and
    their results recorded (or failed, when the AI could not do them); then the batch completed,
    if this is its last unit, or else a look at whether the run stopped meanwhile.

    Another handler of the same stage batch can hold the same answer from a provider batch
    (economy.py): if it has written the unit, its call recorded with it, nothing is written
    again."""
    if from_provider_batch and written_before(uow, context, unit):
        return Ended((SKIPPED,))
    record_calls(uow, deps, unit, records)
    if answer.failure is None:
        outcomes = write_items(uow, deps, step, context, unit, answer.draft)
    else:
        outcomes = fail_items(uow, step, unit, answer.failure)
    if closing is not None:
        complete_batch(uow, closing.plus(*outcomes))
        return Ended(outcomes, closed=True)
    return Ended(outcomes, stop=uow.run_stopped())


def written_before(uow: UnitOfWork, context: BatchContext, unit: Unit) -> bool:
    """Every item of the unit has its result in this run. The item rows are locked first, so a
    handler writing the unit meanwhile is waited for, and its results are found."""
    batch, item_ids = context.batch, _ids(unit.refs)
    items.lock_needing_work(uow.conn, batch.stage, uow.command.site_id, item_ids)
    return len(uow.book.results(batch.run_id, batch.stage, item_ids)) == len(item_ids)


def write_items(
    uow: UnitOfWork, deps: WorkerDeps, step: Step, context: BatchContext, unit: Unit, draft: Any
) -> tuple[Outcome, ...]:
    batch = context.batch
    open_ids = items.lock_needing_work(uow.conn, batch.stage, uow.command.site_id, _ids(unit.refs))
    if not open_ids:
        # Another worker (a re-dispatched copy of this batch) wrote them meanwhile and announced
        # them in the same transaction: nothing to add.
        return (SKIPPED,)
    outputs = step.write(uow.conn, deps, batch.run_id, unit.source, draft, open_ids)
    prices = _prices(uow, context, list(outputs))
    refs = {ref.id: ref for ref in unit.refs}
    return tuple(
        item_processed(uow, context, refs[item_id], prices[item_id], made)
        for item_id, made in outputs.items()
    )


def item_processed(
    uow: UnitOfWork, context: BatchContext, ref: ItemRef, price: int, outputs: int
) -> Outcome:
    """Charge, announce and record one item the unit's write has done."""
    batch = context.batch
    credits = uow.charge(ref.id, price)
    processed = StageItemProcessed(
        stage=batch.stage,
        batch_id=batch.batch_id,
        item=ref,
        total=context.total,
        credits=credits,
        outputs=outputs,
    )
    uow.emit(processed, ids.item_processed(batch.run_id, batch.stage, ref.id))
    outcome = Outcome("processed", credits, outputs)
    uow.book.record_result(batch.run_id, batch.stage, ref.id, outcome)
    return outcome


def fail_items(
    uow: UnitOfWork, step: Step, unit: Unit, poisoned: PoisonedItem
) -> tuple[Outcome, ...]:
    """The AI could not do the unit: each of its items failed, once more across runs."""
    batch = uow.command.data
    for ref in unit.refs:
        step.mark_failed(uow.conn, ref.id, poisoned.error)
        items.count_failure(
            uow.conn, batch.stage, uow.command.site_id, ref.id, batch.run_id, poisoned.error
        )
        item_failed(uow, ref, poisoned.error, poisoned.attempts)
    return (FAILED,) * len(unit.refs)


def item_failed(uow: UnitOfWork, ref: ItemRef, error: str, attempts: int = 1) -> Outcome:
    """Announce and record one failed item."""
    batch = uow.command.data
    failed = StageItemFailed(
        stage=batch.stage,
        batch_id=batch.batch_id,
        item=ref,
        error=clip(error),
        attempts=attempts,
    )
    uow.emit(failed, ids.item_failed(batch.run_id, batch.stage, ref.id))
    uow.book.record_result(batch.run_id, batch.stage, ref.id, FAILED)
    return FAILED


def complete_batch(uow: UnitOfWork, tally: Tally) -> None:
    """Announce the batch's figures and record the command as handled."""
    batch = uow.command.data
    completed = StageBatchCompleted(
        stage=batch.stage,
        batch_id=batch.batch_id,
        processed=tally.processed,
        failed=tally.failed,
        credits=tally.credits,
        halted=tally.halted,
        halt_detail=clip(tally.halt_detail) if tally.halt_detail else None,
        fatal=clip(tally.fatal) if tally.fatal else None,
    )
    uow.emit(
        completed,
        ids.batch_completed(batch.run_id, batch.stage, batch.batch_id, batch.attempt),
    )
    uow.book.record_handled(tracking.consumer_name(batch.stage), uow.command.message_id)
    metrics.count_batch(
        batch.stage, tally.processed, tally.failed, tally.credits, tally.halted is not None
    )


def record_calls(
    uow: UnitOfWork,
    deps: WorkerDeps,
    unit: Unit,
    records: Sequence[CallRecord],
    take: Callable[[Connection, UnitKey], list[dict[str, Any]]] = consume,
) -> None:
    """Record the unit's AI calls: those in hand, and those stored with answers in the journal
    (by this worker or one that had the batch before), whose rows `take` marks written with the
    unit (`consume`) or deletes when the unit ends unwritten (`discard`)."""
    stored: list[CallRecord] = []
    if getattr(deps.ai, "journal", None) is not None:
        stored = [CallRecord(**fields) for fields in take(uow.conn, unit.key)]
    uow.record_calls(unit.refs, [*records, *stored])


def _prices(uow: UnitOfWork, context: BatchContext, item_ids: list[int]) -> dict[int, int]:
    """What each item costs. A price per several items (stage 1's) goes by the item's place in
    the stage's pick order; for a run picked before the workers recorded their picks, by its
    place in the batch."""
    batch = context.batch
    price = PRICES[batch.stage]
    if price.per == 1:
        return dict.fromkeys(item_ids, price.credits)  # the same for every place
    places = uow.book.positions(batch.run_id, batch.stage, item_ids)
    if len(places) < len(item_ids):
        places = {item_id: n for n, item_id in enumerate(batch.item_ids)}
    return {item_id: price.due(places[item_id]) for item_id in item_ids}


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
        message_id = ids.provider_recovered(batch.run_id, batch.stage, lane.key, wait.since)
    else:
        event = StageWaitingForProvider(
            stage=batch.stage,
            provider=lane.provider,
            model=lane.model,
            reason=clip(wait.reason),
            since=since,
        )
        message_id = ids.provider_waiting(batch.run_id, batch.stage, lane.key, wait.since)
    await deps.unit_of_work(context.command, UnitOfWork.emit, event, message_id)


def unit_span(step: Step, unit: Unit) -> AbstractContextManager[Span]:
    """The span of one unit, a child of the batch's: `stage <n> item` (or `stage 1 batch`, its
    keywords clustered in one call), with its items' ids."""
    if not tracing.enabled():
        return tracing.UNTRACED
    return tracing.span(
        f"stage {step.stage} {step.unit}",
        attributes={"automation.stage": step.stage, "automation.item.ids": _ids(unit.refs)},
    )


def _ids(refs: Sequence[ItemRef]) -> list[int]:
    return [ref.id for ref in refs]


def _kinds(ended: Ended) -> list[str]:
    return [outcome.kind for outcome in ended.outcomes]
