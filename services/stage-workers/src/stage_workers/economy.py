"""ProcessBatch of an economy run (`economy=True`): the batch's AI requests go to the provider's
batch interface together, at its lower price, and come back within 24 hours.

1. Open as any batch does (batch.py), then ask each unit's step what it would ask the AI
   (`_asked`): the same request bodies as the calls made alone.
2. Find the provider batches that already hold these requests (an earlier attempt, or the stage
   batch before a pause), write a row for the rest (provider_batch_rows.py), upload the file,
   look for a batch of the row's name (created before a crash, never recorded), else create it.
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

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any, Literal

import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from contracts import ids
from contracts.db.tables import PROVIDER_BATCH_CHANNEL
from contracts.envelope import Envelope
from contracts.events import (
    StageProviderRecovered,
    StageWaitingForProvider,
    StageWaitingForProviderBatch,
)
from contracts.values import clip
from stage_workers import items, metrics
from stage_workers import provider_batch_rows as rows
from stage_workers.ai.base import FatalAIError, PermanentAIError, TransientAIError
from stage_workers.ai.openai_provider import OpenAIProvider, Request
from stage_workers.ai.prices import PriceTable
from stage_workers.ai.provider_batches import (
    MAX_FILE_BYTES,
    MAX_REQUESTS,
    BatchInterface,
    Line,
    request_line,
)
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
    record_calls,
    write_unit,
)
from stage_workers.deps import WorkerDeps
from stage_workers.gate.calls import CallRecord
from stage_workers.gate.journal import discard
from stage_workers.lease import lease_kept
from stage_workers.outcomes import HALTED, SKIPPED, Outcome, Tally
from stage_workers.provider_batch_rows import ProviderBatch
from stage_workers.unit_of_work import InsufficientCredits, UnitOfWork

log = logging.getLogger(__name__)
ROUNDS = 2
# Statuses of a line that say "not now" rather than "not this": sent again in the next round.
RETRYABLE_STATUSES = frozenset({408, 409, 429})


@dataclass(frozen=True)
class EconomyRules:
    poll_first_seconds: float = 5.0
    poll_longest_seconds: float = 300.0
    longest_outage_seconds: float = 1800.0
    # What becomes of requests still unanswered after the second round.
    fallback: Literal["standard", "fail"] = "standard"


class Wakeups:
    """Wakes this process's waits for provider batches at once: a verified webhook said a batch
    ended (provider_webhooks.py in the gateway, `listen_for_batch_ends` here)."""

    def __init__(self) -> None:
        self._rung = asyncio.Event()

    async def wait(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._rung.wait(), seconds)

    def ring(self) -> None:
        self._rung.set()
        self._rung = asyncio.Event()


@dataclass(frozen=True)
class Economy:
    """The ports of economy runs: the provider's request bodies, its batch interface, prices."""

    provider: OpenAIProvider
    batches: BatchInterface
    prices: PriceTable
    rules: EconomyRules = EconomyRules()
    wakeups: Wakeups = field(default_factory=Wakeups)


@dataclass(frozen=True)
class Pending:
    """A unit whose request goes into a provider batch."""

    unit: Unit
    function: str
    args: tuple
    request: Request

    @property
    def custom_id(self) -> str:
        key = self.unit.key
        return f"{key.run_id}:{key.stage}:{key.unit}"


@dataclass
class Waited:
    answers: dict[str, tuple[Line, ProviderBatch]] = field(default_factory=dict)
    stopped: bool = False
    halt: Outcome | None = None


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
    command = context.command
    try:
        return await deps.unit_of_work(
            command, _write_once, deps, step, context, one.unit, answer, records
        )
    except InsufficientCredits:  # the write rolled back: only the call is recorded
        await deps.unit_of_work(command, record_calls, deps, one.unit, records, discard)
        return Ended((HALTED,))


def _write_once(
    uow: UnitOfWork,
    deps: WorkerDeps,
    step: Step,
    context: BatchContext,
    unit: Unit,
    answer: Answer,
    records: list[CallRecord],
) -> Ended:
    """`write_unit`, unless another handler of the same stage batch has written the unit (its
    call recorded with it): the item rows are locked first, so the second one waits and then
    finds the results."""
    batch, ids_ = context.batch, [ref.id for ref in unit.refs]
    items.lock_needing_work(uow.conn, batch.stage, uow.command.site_id, ids_)
    if len(uow.book.results(batch.run_id, batch.stage, ids_)) == len(ids_):
        return Ended((SKIPPED,))
    return write_unit(uow, deps, step, context, unit, answer, records, None)


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


# --- the provider batches -------------------------------------------------------------------


async def wait_for_answers(
    deps: WorkerDeps, economy: Economy, context: BatchContext, pending: list[Pending]
) -> Waited:
    by_id = {one.custom_id: one for one in pending}
    batch = context.batch
    held = await deps.in_transaction(rows.covering, batch.run_id, batch.stage, list(by_id))
    held += await _plan(deps, context, pending, held, 1)
    waited, read = Waited(), set[str]()
    polls = _Polls(economy)
    announced: tuple | None = None
    while True:
        try:
            for n, row in enumerate(held):
                held[n] = await _advance(deps, economy, context, row, by_id)
            for row in held:
                if row.ended and row.name not in read:
                    _take_answers(waited, row, await _lines(economy, row), by_id)
                    read.add(row.name)
            await polls.answered(deps, economy, context)
        except TransientAIError as away:
            halt = await polls.away(deps, economy, context, str(away))
            if halt is not None:
                waited.halt = halt
                return waited
            await polls.sleep()
            continue
        announced = await _announce(deps, economy, context, held, by_id, announced)
        if await deps.unit_of_work(context.command, _stopped):
            waited.stopped = True  # the answers wait at the provider for a resume
            return waited
        if all(row.ended for row in held):
            again = [one for one in pending if _retry(one, waited, held)]
            if not again:
                return waited
            held += await _plan(deps, context, again, held, ROUNDS)
            continue
        await polls.sleep()


def _retry(one: Pending, waited: Waited, held: list[ProviderBatch]) -> bool:
    """Unanswered, and no second round holds it yet."""
    if one.custom_id in waited.answers:
        return False
    return not any(row.round >= ROUNDS and one.custom_id in row.custom_ids for row in held)


def _take_answers(
    waited: Waited, row: ProviderBatch, lines: list[Line], by_id: dict[str, Pending]
) -> None:
    for line in lines:
        if line.custom_id not in by_id or line.custom_id in waited.answers:
            continue
        code = line.status_code
        refused = code is not None and 400 <= code < 500 and code not in RETRYABLE_STATUSES
        if code == 200 or refused:
            waited.answers[line.custom_id] = (line, row)


async def _lines(economy: Economy, row: ProviderBatch) -> list[Line]:
    lines: list[Line] = []
    for file_id in (row.output_file_id, row.error_file_id):
        if file_id:
            lines += await economy.batches.lines(file_id)
    return lines


async def _plan(
    deps: WorkerDeps,
    context: BatchContext,
    pending: list[Pending],
    held: list[ProviderBatch],
    round_: int,
) -> list[ProviderBatch]:
    """Rows for the requests no provider batch of this round holds, cut where the provider's
    limits require."""
    covered = {cid for row in held if row.round >= round_ for cid in row.custom_ids}
    rest = [one for one in pending if one.custom_id not in covered]
    if not rest:
        return []
    batch, command = context.batch, context.command
    prefix = f"{batch.run_id}:{batch.stage}:{batch.batch_id}:r{round_}:p"
    first = 1 + sum(1 for row in held if row.name.startswith(prefix))
    parts: list[list[Pending]] = [[]]
    size = 0
    for one in rest:
        line_bytes = len(request_line(one.custom_id, one.request))
        if parts[-1] and (len(parts[-1]) >= MAX_REQUESTS or size + line_bytes > MAX_FILE_BYTES):
            parts.append([])
            size = 0
        parts[-1].append(one)
        size += line_bytes
    new = [
        {
            "name": f"{prefix}{first + n}",
            "account_id": command.account_id,
            "site_id": command.site_id,
            "run_id": batch.run_id,
            "stage": batch.stage,
            "round": round_,
            "provider": "openai",
            "endpoint": part[0].request.endpoint,
            "custom_ids": [one.custom_id for one in part],
        }
        for n, part in enumerate(parts)
    ]
    return await deps.in_transaction(rows.add, new)


async def _advance(
    deps: WorkerDeps,
    economy: Economy,
    context: BatchContext,
    row: ProviderBatch,
    by_id: dict[str, Pending],
) -> ProviderBatch:
    """One step of a provider batch: upload its file, create it, or ask how far it is. One the
    provider refuses (a file it no longer has, a body it does not take) has failed: its requests
    go to the next round."""
    if row.ended:
        return row
    try:
        return await _step(deps, economy, context, row, by_id)
    except PermanentAIError as refused:
        log.warning("provider batch %s failed: %s", row.name, refused)
        return await deps.in_transaction(rows.record_failed, row.name)


async def _step(
    deps: WorkerDeps,
    economy: Economy,
    context: BatchContext,
    row: ProviderBatch,
    by_id: dict[str, Pending],
) -> ProviderBatch:
    batches = economy.batches
    if row.provider_batch_id is not None:
        state = await batches.retrieve(row.provider_batch_id)
        if (state.status, state.completed, state.failed) == (row.status, row.completed, row.failed):
            return row
        return await deps.in_transaction(rows.record_state, row.name, state)
    async with _claim(deps, row.name) as mine:
        if not mine:
            return row  # another handler of this stage batch makes it; the next look sees it
        row = await deps.in_transaction(rows.get, row.name)  # as that handler may have left it
        if row.provider_batch_id is not None:
            return row
        if row.input_file_id is None:
            content = b"".join(
                request_line(cid, by_id[cid].request) for cid in row.custom_ids if cid in by_id
            )
            file_id = await batches.upload(f"{row.name.replace(':', '_')}.jsonl", content)
            uploaded = partial(rows.record, name=row.name, input_file_id=file_id, status="uploaded")
            row = await deps.in_transaction(uploaded)
        batch = context.batch
        # Created before a crash but never recorded: the provider knows it by the row's name.
        state = await batches.find(row.name) or await batches.create(
            row.input_file_id,
            row.endpoint,
            {"name": row.name, "run_id": batch.run_id, "stage": str(batch.stage)},
        )
        metrics.PROVIDER_BATCHES.labels(str(batch.stage)).inc()
        return await deps.in_transaction(rows.record_state, row.name, state)


@contextlib.asynccontextmanager
async def _claim(deps: WorkerDeps, name: str) -> AsyncIterator[bool]:
    """Whether this handler may upload and create the row's provider batch. Two handlers of one
    stage batch can meet (a redelivered attempt beside the attempt sent after its worker was
    lost); a session lock lets one of them make the batch, and is released with its
    connection if its process dies."""
    key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
    conn = await asyncio.to_thread(deps.engine.connect)
    try:
        locked = sa.select(sa.func.pg_try_advisory_lock(key))
        mine = await asyncio.to_thread(lambda: conn.execute(locked).scalar_one())
        try:
            yield bool(mine)
        finally:
            if mine:
                unlocked = sa.select(sa.func.pg_advisory_unlock(key))
                await asyncio.to_thread(conn.execute, unlocked)
    finally:
        await asyncio.to_thread(conn.close)


async def _announce(
    deps: WorkerDeps,
    economy: Economy,
    context: BatchContext,
    held: list[ProviderBatch],
    by_id: dict[str, Pending],
    announced: tuple | None,
) -> tuple:
    """Tell the run how far its provider batches are, when that changed."""
    open_rows = [row for row in held if not row.ended]
    status = open_rows[0].status if open_rows else held[-1].status
    completed = sum(row.completed for row in held)
    failed = sum(row.failed for row in held)
    now = (status, completed, failed)
    if now == announced:
        return now
    batch = context.batch
    event = StageWaitingForProviderBatch(
        stage=batch.stage,
        batch_id=batch.batch_id,
        provider=economy.provider.name,
        provider_batch_ids=tuple(row.provider_batch_id for row in held if row.provider_batch_id),
        status=status,
        total=len(by_id),
        completed=completed,
        failed=failed,
        since=min(row.created_at for row in held),
    )
    message_id = ids.provider_batch_waiting(
        batch.run_id, batch.stage, batch.batch_id, status, completed, failed
    )
    await deps.unit_of_work(context.command, UnitOfWork.emit, event, message_id)
    return now


def _stopped(uow: UnitOfWork) -> bool:
    return uow.run_stopped()


class _Polls:
    """When to look again: sooner at first, then less often; and how long the provider has
    been away, told to the run as a wait for the provider (never a failure) until the longest
    wait, after which the run pauses."""

    def __init__(self, economy: Economy) -> None:
        self.rules, self.wakeups = economy.rules, economy.wakeups
        self.delay = self.rules.poll_first_seconds
        self.away_since: float | None = None

    async def sleep(self) -> None:
        await self.wakeups.wait(self.delay)
        self.delay = min(self.delay * 2, self.rules.poll_longest_seconds)

    async def away(
        self, deps: WorkerDeps, economy: Economy, context: BatchContext, reason: str
    ) -> Outcome | None:
        batch = context.batch
        if self.away_since is None:
            self.away_since = time.time()
            event = StageWaitingForProvider(
                stage=batch.stage,
                provider=economy.provider.name,
                model="batches",
                reason=clip(f"the provider's batch interface does not answer: {reason}"),
                since=datetime.fromtimestamp(self.away_since, UTC),
            )
            message_id = ids.provider_waiting(batch.run_id, batch.stage, "batches", self.away_since)
            await deps.unit_of_work(context.command, UnitOfWork.emit, event, message_id)
        if time.time() - self.away_since > self.rules.longest_outage_seconds:
            detail = f"waiting for the AI provider's batch interface: {reason}"
            return Outcome("halted", halt="ai_provider_unavailable", detail=detail)
        return None

    async def answered(self, deps: WorkerDeps, economy: Economy, context: BatchContext) -> None:
        if self.away_since is None:
            return
        batch, since = context.batch, self.away_since
        self.away_since = None
        event = StageProviderRecovered(
            stage=batch.stage,
            provider=economy.provider.name,
            model="batches",
            since=datetime.fromtimestamp(since, UTC),
        )
        message_id = ids.provider_recovered(batch.run_id, batch.stage, "batches", since)
        await deps.unit_of_work(context.command, UnitOfWork.emit, event, message_id)


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


async def listen_for_batch_ends(
    database_url: str, wakeups: Wakeups, stopping: asyncio.Event
) -> None:
    """Ring `wakeups` for each provider batch the gateway hears has ended (a PostgreSQL
    channel); reconnect after a lost connection. A missed ring costs one poll interval."""
    conninfo = make_url(database_url).set(drivername="postgresql")
    dsn = conninfo.render_as_string(hide_password=False)
    while not stopping.is_set():
        try:
            async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
                await conn.execute(f"LISTEN {PROVIDER_BATCH_CHANNEL}")
                while not stopping.is_set():
                    async for notice in conn.notifies(timeout=1.0):
                        log.info("provider batch %s ended: looking now", notice.payload)
                        metrics.PROVIDER_BATCH_WAKEUPS.inc()
                        wakeups.ring()
        except Exception as lost:  # the database restarts: polls go on meanwhile
            log.warning("listening for provider batch ends: %s", lost)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), 5.0)
