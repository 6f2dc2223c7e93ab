"""ProcessBatch of an economy run (`economy=True`): the batch's AI requests go to the provider's
batch interface together, at its lower price, and come back within 24 hours.

1. Open as any batch does (batch.py), then ask each unit's step what it would ask the AI
   (`_asked`): the same request bodies as the calls made alone.
2. Then, in provider_batch_wait.py: find the provider batches that already hold these requests
   (an earlier attempt, or the stage batch before a pause), write a row for the rest
   (provider_batch_rows.py), upload the file, look for a batch of the row's name (created
   before a crash, never recorded), else create it.
3. Wait, keeping the lease: poll with backoff, tell the run how far the provider is
   (StageWaitingForProviderBatch), wait out an outage as the gate does, and end the handler if
   the run stops (the provider batch runs on; its answers are written after a resume, or the
   run watch cancels it when the run ends: see `cancel_for_ended`).
4. Requests an ended batch left unanswered (expired, cancelled, a 5xx) are sent once more in a
   second round; what is still unanswered then goes through standard calls (or fails, as
   settings say). A request the provider refused (a 4xx) fails its items.
5. Each unit is then written by the same unit of work as a call's answer (`write_unit`): once
   only, one charge, its events; the call is recorded at the batch price with what it saved.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from functools import partial
from typing import Any

from contracts.envelope import Envelope
from contracts.values import clip
from stage_workers import metrics
from stage_workers import provider_batch_rows as rows
from stage_workers.ai.base import FatalAIError, PermanentAIError
from stage_workers.ai.provider_batches import Line
from stage_workers.ai.retry import PoisonedItem
from stage_workers.batch import (
    Answer,
    BatchContext,
    Ended,
    Step,
    Unit,
    complete_batch,
    open_batch,
    process_unit,
    write_or_halt,
)
from stage_workers.deps import WorkerDeps
from stage_workers.gate.calls import CallRecord
from stage_workers.lease import lease_kept
from stage_workers.outcomes import Tally
from stage_workers.provider_batch_rows import ProviderBatch
from stage_workers.provider_batch_wait import ROUNDS, Economy, Pending, Waited, wait_for_answers

log = logging.getLogger(__name__)


async def process_economy_batch(deps: WorkerDeps, step: Step, command: Envelope) -> None:
    opened = await deps.unit_of_work(command, open_batch, step)
    if opened is None:
        return
    tally = Tally.of(opened.done)
    if not opened.stopped and opened.todo:
        async with lease_kept(deps, command):
            try:
                await _work(deps, step, opened.context, opened.todo, tally)
            except FatalAIError as fatal:
                tally.fatal = str(fatal)
    await deps.unit_of_work(command, complete_batch, tally)


async def _work(
    deps: WorkerDeps, step: Step, context: BatchContext, todo: tuple[Unit, ...], tally: Tally
) -> None:
    economy: Economy = deps.economy
    pending: list[Pending] = []
    for unit in todo:
        function, args = await _asked(step, unit)
        pending.append(Pending(unit, function, args, economy.provider.request(function, args)))
    with metrics.PROVIDER_BATCH_WAITS.labels(str(context.batch.stage)).track_inprogress():
        waited = await wait_for_answers(deps, economy, context, pending)
    if waited.halt is not None:
        tally.add(waited.halt)
    if waited.stopped or waited.halt is not None:
        return
    for one in pending:
        ended = await _settle(deps, economy, step, context, one, waited)
        tally.add(*ended.outcomes)
        if tally.halted or ended.stop:
            return


async def _settle(
    deps: WorkerDeps,
    economy: Economy,
    step: Step,
    context: BatchContext,
    one: Pending,
    waited: Waited,
) -> Ended:
    """Write one unit from its line, or make its call now if the provider batch never answered."""
    found = waited.answers.get(one.custom_id)
    if found is None:
        metrics.PROVIDER_BATCH_REQUESTS.labels(str(context.batch.stage), "unanswered").inc()
        if economy.rules.fallback == "standard":
            return await process_unit(deps, step, context, one.unit, None)
        failure = PoisonedItem("the provider's batch did not answer it, twice", ROUNDS)
        answer, records = Answer(failure=failure), []
    else:
        answer, records = _read(economy, one, *found)
        metrics.PROVIDER_BATCH_REQUESTS.labels(
            str(context.batch.stage), "answered" if answer.failure is None else "refused"
        ).inc()
    if answer.failure is None:
        answer = Answer(draft=await step.produce(_Replay(answer.draft), one.unit.source))
    return await write_or_halt(
        deps, step, context, one.unit, answer, records, from_provider_batch=True
    )


def _read(
    economy: Economy, one: Pending, line: Line, batch: ProviderBatch
) -> tuple[Answer, list[CallRecord]]:
    provider, prices = economy.provider, economy.prices
    model = provider.model_for(one.function)
    latency_ms = round((datetime.now(UTC) - batch.created_at).total_seconds() * 1000)
    fields: dict[str, Any] = dict(
        function=one.function,
        provider=provider.name,
        model_requested=model,
        latency_ms=max(latency_ms, 0),
        waited_ms=0,
        attempt=batch.round,
        price_version=prices.version,
        via="provider_batch",
    )
    if line.status_code == 200 and line.body is not None:
        try:
            answered = provider.read(one.function, one.args, line.body)
        except PermanentAIError as unusable:
            error = str(unusable)
        else:
            cost, saved = prices.batch_cost(model, answered.usage)
            record = CallRecord(
                **fields,
                usage=answered.usage,
                outcome="answered",
                error=None,
                cost_usd=cost,
                saved_usd=saved,
            )
            return Answer(draft=answered.draft), [record]
    else:
        error = line.error or f"HTTP {line.status_code}"
    record = CallRecord(**fields, usage=None, outcome="refused", error=clip(error), cost_usd=None)
    return Answer(failure=PoisonedItem(error, batch.round)), [record]


# --- what a step asks of the AI, and its answer given back --------------------------------


class _Asked(Exception):
    def __init__(self, function: str, args: tuple) -> None:
        super().__init__(function)
        self.function, self.args = function, args


class _Capture:
    """An AI that answers nothing: it says which function the step called, with what."""

    def __getattr__(self, function: str) -> Any:
        async def ask(*args: Any) -> Any:
            raise _Asked(function, args)

        return ask


class _Replay:
    """An AI whose one answer is already known (a line of the provider batch's output)."""

    def __init__(self, draft: Any) -> None:
        self.draft = draft

    def __getattr__(self, function: str) -> Any:
        async def answer(*args: Any) -> Any:
            return self.draft

        return answer


async def _asked(step: Step, unit: Unit) -> tuple[str, tuple]:
    try:
        await step.produce(_Capture(), unit.source)
    except _Asked as asked:
        return asked.function, asked.args
    raise ValueError(f"stage {step.stage} asks the AI nothing")


# --- the run watch's part ---------------------------------------------------------------------


async def cancel_for_ended(deps: WorkerDeps, run_ids: list[str]) -> None:
    """Cancel the provider batches of runs that have ended (cancelled, failed): nobody will
    write their answers. A run that is only paused keeps them."""
    if deps.economy is None or not run_ids:
        return
    for row in await deps.in_transaction(rows.open_of_runs, run_ids):
        try:
            await deps.economy.batches.cancel(row.provider_batch_id)
            await deps.in_transaction(partial(rows.record, name=row.name, status="cancelling"))
        except Exception:  # the provider is away: the batch runs to its end, unwritten
            log.exception("could not cancel provider batch %s", row.provider_batch_id)
