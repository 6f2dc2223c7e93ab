"""The orchestrator as a process in tests, and the stage workers played by the test: commands
for a site of the test's own, the site's run events read back from the stream, and workers that
answer stage commands the way the real ones do."""

from __future__ import annotations

import asyncio
import random
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from contracts import commands as cmd
from contracts import events as ev
from contracts.codec import decode, encode, kafka_headers
from contracts.envelope import Envelope, Payload, deterministic_id, new_message
from contracts.state import RunState, fold
from contracts.values import ItemRef, RunConfig
from tests.support.kafka import end_offsets, read_until

ORCHESTRATOR = str(Path(sys.executable).with_name("orchestrator"))
FAST = {"TICK_SECONDS": "0.2", "SCHEDULER_ENABLED": "false"}
ITEMS_PER_STAGE = 3
ACCOUNT = 9


def unique_site() -> int:
    return random.randint(10**8, 2 * 10**9)


def start_orchestrator(services, name: str = "orchestrator", **env: str):
    return services.start(name, ORCHESTRATOR, env={**FAST, **env})


def command(payload: Payload, site: int) -> Envelope:
    return new_message(
        payload, source="/tests", account_id=ACCOUNT, site_id=site, run_id=payload.run_id
    )


def start_run(site: int, run_id: str, **fields) -> Envelope:
    fields = {"estimate": 10, "balance": 1000, "config": RunConfig(stage_concurrency=2), **fields}
    return command(cmd.StartRun(run_id=run_id, trigger="manual", **fields), site)


async def stage_offsets(bootstrap: str, topics) -> dict:
    offsets = {}
    for stage in range(1, 8):
        offsets.update(await end_offsets(bootstrap, topics.stage(stage)))
    return offsets


async def events_of_site(bootstrap, start, site, found, timeout=60.0) -> list[Envelope]:
    """Read run events after `start` until `found(events of the site)` holds."""

    def mine(records) -> list[Envelope]:
        return [m for m in (decode(r.value) for r in records) if m.site_id == site]

    records = await read_until(bootstrap, start, lambda rs: found(mine(rs)), timeout)
    return mine(records)


def of_run(events: list[Envelope], run_id: str) -> list[Envelope]:
    return [m for m in events if m.run_id == run_id]


async def run_completed(bootstrap, start, site, run_id: str) -> list[Envelope]:
    """The run's events after `start`, read until they hold its RunCompleted."""

    def finished(events) -> bool:
        return any(isinstance(m.data, ev.RunCompleted) for m in of_run(events, run_id))

    return of_run(await events_of_site(bootstrap, start, site, finished), run_id)


def assert_run_completed(events: list[Envelope]) -> tuple[RunState, ev.RunCompleted]:
    """The run, played by FakeWorkers, completed: every item of stages 1 to 6 processed, and the
    credits of its RunCompleted those the test folds from the stream."""
    state = fold(events)
    assert state.status == "completed"
    assert [s.processed_count for s in state.stages[:6]] == [ITEMS_PER_STAGE] * 6
    [completed] = [m.data for m in events if isinstance(m.data, ev.RunCompleted)]
    assert completed.credits_used == state.credits_used == sum(range(1, 7)) * ITEMS_PER_STAGE
    return state, completed


class FakeWorkers:
    """Plays the stage workers' part for one run: StartStage -> StageStarted, ProcessBatch ->
    StageItemProcessed per item + StageBatchCompleted. Event ids are deterministic, as the real
    workers' are, so answering a repeated command twice is harmless. It can hold one stage's
    StartStage until released, so the test can restart the orchestrator at that point."""

    def __init__(
        self,
        bootstrap: str,
        topics,
        run_id: str,
        hold_stage: int | None = None,
        broke_at_stage: int | None = None,
    ):
        self.bootstrap, self.topics, self.run_id = bootstrap, topics, run_id
        self.hold_stage = hold_stage
        self.broke_at_stage = broke_at_stage  # its first batch finds no credits, as a worker would
        self.holding = asyncio.Event()
        self.release = asyncio.Event()
        self.commands: list[Envelope] = []

    def items(self, stage: int) -> tuple[ItemRef, ...]:
        count = 2 if stage == 7 else ITEMS_PER_STAGE
        return tuple(ItemRef(id=stage * 100 + i, title=f"s{stage} #{i}") for i in range(count))

    async def run(self, start: dict) -> None:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, enable_idempotence=True)
        await consumer.start()
        await producer.start()
        try:
            consumer.assign(list(start))
            for tp, offset in start.items():
                consumer.seek(tp, offset)
            while True:
                for records in (await consumer.getmany(timeout_ms=200)).values():
                    for record in records:
                        message = decode(record.value)
                        if message.run_id == self.run_id:
                            self.commands.append(message)
                            await self.answer(producer, message)
        finally:
            await consumer.stop()
            await producer.stop()

    async def answer(self, producer: AIOKafkaProducer, message: Envelope) -> None:
        data = message.data
        if isinstance(data, cmd.StartStage):
            if data.stage == self.hold_stage and not self.release.is_set():
                self.holding.set()
                await self.release.wait()
            started = ev.StageStarted(stage=data.stage, items=self.items(data.stage))
            await self.emit(producer, message, started, "started", data.stage)
        elif isinstance(data, cmd.ProcessBatch) and data.stage == self.broke_at_stage:
            self.broke_at_stage = None
            halted = ev.StageBatchCompleted(
                stage=data.stage,
                batch_id=data.batch_id,
                processed=0,
                failed=0,
                credits=0,
                halted="insufficient_credits",
            )
            await self.emit(producer, message, halted, "halt", data.stage, data.batch_id)
        elif isinstance(data, cmd.ProcessBatch):
            by_id = {item.id: item for item in self.items(data.stage)}
            for item_id in data.item_ids:
                processed = ev.StageItemProcessed(
                    stage=data.stage,
                    batch_id=data.batch_id,
                    item=by_id[item_id],
                    total=ITEMS_PER_STAGE,
                    credits=data.stage,
                    outputs=1,
                )
                await self.emit(producer, message, processed, "item", data.stage, item_id)
            completed = ev.StageBatchCompleted(
                stage=data.stage,
                batch_id=data.batch_id,
                processed=len(data.item_ids),
                failed=0,
                credits=data.stage * len(data.item_ids),
            )
            await self.emit(producer, message, completed, "batch", data.stage, data.batch_id)

    async def emit(self, producer, cause: Envelope, payload: Payload, *id_parts) -> None:
        message = new_message(
            payload,
            source="/tests/workers",
            account_id=cause.account_id,
            site_id=cause.site_id,
            run_id=self.run_id,
            caused_by=cause,
            message_id=deterministic_id(self.run_id, *id_parts),
        )
        await producer.send_and_wait(
            self.topics.run_events,
            encode(message),
            key=message.key,
            headers=kafka_headers(message),
        )


@asynccontextmanager
async def workers_playing(
    bootstrap: str, topics, run_id: str, start: dict, **options: int
) -> AsyncIterator[FakeWorkers]:
    """FakeWorkers for the run, answering stage commands after the offsets `start` until the
    block ends."""
    workers = FakeWorkers(bootstrap, topics, run_id, **options)
    playing = asyncio.create_task(workers.run(start))
    try:
        yield workers
    finally:
        playing.cancel()
