"""The orchestrator's loops: one aiokafka consumer over run commands and run events, the clock,
the credit watch and the scheduler. Each record goes to its handler; after each batch of
records, what they decided is flushed to Kafka and only then are the commands committed, so a
crash in between redelivers commands, whose repeats decide nothing new.

A plain aiokafka loop, not a FastStream subscriber (docs/adr/0005, 0022): the rebalance
listener seeks and pauses partitions, and commits wait on the outputs of a whole batch."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from contracts import tracing
from contracts.codec import UnreadableMessage, decode
from orchestrator import handlers
from orchestrator.catch_up import CatchUp
from orchestrator.outputs import KafkaOutputs
from orchestrator.ports import Ports
from orchestrator.settings import Settings
from orchestrator.snapshots.keeper import Snapshotting

log = logging.getLogger("orchestrator")
NOT_READY_POLL_SECONDS = 0.2


@dataclass(eq=False)
class Runner:
    settings: Settings
    ports: Ports
    consumer: AIOKafkaConsumer
    outputs: KafkaOutputs
    snapshotting: Snapshotting
    on_close: Callable[[], None]
    # Run commands handled and not committed yet: partition -> the next offset.
    offsets: dict[TopicPartition, int] = field(default_factory=dict, init=False)
    stopping: asyncio.Event = field(default_factory=asyncio.Event, init=False)

    def __post_init__(self) -> None:
        self.topics = self.ports.topics
        self.catch_up = CatchUp(
            self.consumer,
            self.topics,
            self.ports.sites,
            self.snapshotting,
            flush=self.flush_quietly,
            caught_up=lambda: handlers.on_tick(self.ports),
        )

    @property
    def ready(self) -> bool:
        return self.catch_up.ready

    async def run(self) -> None:
        await self.outputs.start()
        await self.consumer.start()
        self.consumer.subscribe(
            [self.topics.run_commands, self.topics.run_events], listener=self.catch_up
        )
        loops = [
            self.consume(),
            self.every(self.settings.tick_seconds, handlers.on_tick),
            self.every(self.settings.credit_check_seconds, handlers.check_credits),
        ]
        if self.settings.scheduler_enabled:
            loops.append(self.every(self.settings.scheduler_interval_seconds, handlers.schedule))
        tasks = [asyncio.create_task(c) for c in loops]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # a loop that died takes the process down: restart rebuilds
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if await self.flush_quietly():
                await self.snapshotting.now(self.snapshotting.owned())
            await self.consumer.stop()
            await self.outputs.stop()
            self.on_close()

    async def consume(self) -> None:
        while not self.stopping.is_set():
            batches = await self.consumer.getmany(timeout_ms=200, max_records=1000)
            for tp, records in batches.items():
                for record in records:
                    await self.on_record(tp, record)
            await self.flush()
            self.snapshotting.maybe()
            if self.catch_up.ends:
                await self.catch_up.check()

    async def on_record(self, tp: TopicPartition, record: ConsumerRecord) -> None:
        is_command = tp.topic == self.topics.run_commands
        group = self.ports.group_id
        try:
            message = decode(record.value)
        except UnreadableMessage as exc:
            with tracing.continuing(record.headers), tracing.consuming(record, group):
                await handlers.on_unreadable(self.ports, record, exc.reason)
        else:
            # A catch-up replays history: it makes no spans.
            traced = is_command or self.ready
            with tracing.consuming(record, group, message) if traced else tracing.UNTRACED:
                if is_command:
                    await handlers.on_run_command(self.ports, tp.partition, message)
                else:
                    await handlers.on_run_event(
                        self.ports, tp.partition, message, deciding=self.ready
                    )
        if is_command:
            self.offsets[tp] = record.offset + 1
        else:
            self.snapshotting.folded(tp.partition, record.offset + 1)
            self.catch_up.folded()

    async def every(self, seconds: float, handler: Callable[[Ports], Awaitable[None]]) -> None:
        """Call `handler` every `seconds` while ready, and flush what it sent."""
        while not self.stopping.is_set():
            if not self.ready:
                await self.sleep(min(seconds, NOT_READY_POLL_SECONDS))
                continue
            await handler(self.ports)
            await self.flush()
            await self.sleep(seconds)

    async def flush(self) -> None:
        """Wait for Kafka to take every output, then commit the commands that caused them."""
        offsets, self.offsets = self.offsets, {}
        await self.outputs.flush()
        if offsets:
            await self.consumer.commit(offsets)

    async def flush_quietly(self) -> bool:
        try:
            await self.flush()
        except Exception:
            log.exception("final flush failed; the commands will be redelivered")
            return False
        return True

    async def sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), seconds)
