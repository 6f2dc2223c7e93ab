"""Waiting for an economy run's provider batches (the handler is economy.py): rows before
each step (provider_batch_rows.py), one handler of a stage batch making each batch, polls with
backoff or a wake-up from the provider's webhook, the run told how far the provider is, an
outage waited out as a provider wait, and a second round for what an ended batch left
unanswered."""

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
from typing import TYPE_CHECKING, Literal

import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from contracts import ids
from contracts.db.tables import PROVIDER_BATCH_CHANNEL
from contracts.events import (
    StageProviderRecovered,
    StageWaitingForProvider,
    StageWaitingForProviderBatch,
)
from contracts.values import clip
from stage_workers import metrics
from stage_workers import provider_batch_rows as rows
from stage_workers.ai.base import PermanentAIError, TransientAIError
from stage_workers.ai.prices import PriceTable
from stage_workers.ai.provider_batches import (
    MAX_FILE_BYTES,
    MAX_REQUESTS,
    BatchInterface,
    Line,
    request_line,
)
from stage_workers.batch import BatchContext, Unit
from stage_workers.deps import WorkerDeps
from stage_workers.outcomes import Outcome
from stage_workers.provider_batch_rows import ProviderBatch
from stage_workers.unit_of_work import UnitOfWork

if TYPE_CHECKING:  # the OpenAI SDK is imported only by a worker that uses it (ai/factory.py)
    from stage_workers.ai.openai_provider import OpenAIProvider, Request

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
    batches = economy.batches
    try:
        if row.provider_batch_id is not None:
            state = await batches.retrieve(row.provider_batch_id)
            if (state.status, state.completed, state.failed) == (
                row.status,
                row.completed,
                row.failed,
            ):
                return row
            return await deps.in_transaction(rows.record_state, row.name, state)
        async with _claim(deps, row.name) as mine:
            if not mine:
                return row  # another handler of this stage batch makes it; the next look sees it
            row = await deps.in_transaction(rows.get, row.name)  # as that handler left it
            if row.provider_batch_id is not None:
                return row
            # A batch can exist unrecorded only if an earlier handler recorded its upload.
            found = await batches.find(row.name) if row.input_file_id is not None else None
            if row.input_file_id is None:
                content = b"".join(
                    request_line(cid, by_id[cid].request) for cid in row.custom_ids if cid in by_id
                )
                file_id = await batches.upload(f"{row.name.replace(':', '_')}.jsonl", content)
                uploaded = partial(
                    rows.record, name=row.name, input_file_id=file_id, status="uploaded"
                )
                row = await deps.in_transaction(uploaded)
            batch = context.batch
            state = found or await batches.create(
                row.input_file_id,
                row.endpoint,
                {"name": row.name, "run_id": batch.run_id, "stage": str(batch.stage)},
            )
            metrics.PROVIDER_BATCHES.labels(str(batch.stage)).inc()
            return await deps.in_transaction(rows.record_state, row.name, state)
    except PermanentAIError as refused:
        log.warning("provider batch %s failed: %s", row.name, refused)
        return await deps.in_transaction(rows.record_failed, row.name)


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
