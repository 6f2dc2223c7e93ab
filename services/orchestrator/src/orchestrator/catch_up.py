"""Partitions coming and going (docs/adr/0005, 0013). On assignment, the sites of the run-events
partitions are rebuilt from their newest snapshot and the events after it, and the run-commands
partitions are held back until then, so nothing is decided on half a history. On revocation,
what was sent is flushed and snapshot, so the next owner starts where this one stopped."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener

from contracts.topics import Topics
from orchestrator import metrics
from orchestrator.sites import Sites
from orchestrator.snapshots.keeper import Snapshotting

log = logging.getLogger("orchestrator")


@dataclass(eq=False)
class CatchUp(ConsumerRebalanceListener):
    """`flush()`: send and commit what is pending, True if it could. `caught_up()`: called once
    every assigned partition is folded to the end it had on assignment."""

    consumer: AIOKafkaConsumer
    topics: Topics
    sites: Sites
    snapshotting: Snapshotting
    flush: Callable[[], Awaitable[bool]]
    caught_up: Callable[[], Awaitable[None]]
    ready: bool = False
    # The run-events partitions still folding, and the end each must reach.
    ends: dict[TopicPartition, int] = field(default_factory=dict)
    held_commands: list[TopicPartition] = field(default_factory=list)
    started: float = 0.0
    events: int = 0  # folded by this catch-up

    def set_ready(self, ready: bool) -> None:
        self.ready = ready
        metrics.ready.set(1 if ready else 0)

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.set_ready(False)
        flushed = await self.flush()
        partitions = [tp.partition for tp in revoked if tp.topic == self.topics.run_events]
        if flushed:  # the next owner starts where this one stopped
            await self.snapshotting.now(partitions)
        self.snapshotting.drop(partitions)
        self.sites.drop_partitions(tp.partition for tp in revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.started = time.monotonic()
        self.events = 0
        event_partitions = [tp for tp in assigned if tp.topic == self.topics.run_events]
        self.held_commands = [tp for tp in assigned if tp.topic == self.topics.run_commands]
        # Nothing is read until its partition is placed: the fetcher starts at the beginning
        # as soon as partitions are assigned, while the snapshots are still being loaded.
        self.consumer.pause(*assigned)
        self.sites.drop_partitions(tp.partition for tp in event_partitions)
        if event_partitions:
            await self.place(event_partitions)
        log.info("assigned %s; catching up %s", sorted(assigned), self.ends)
        await self.check()

    async def place(self, event_partitions: list[TopicPartition]) -> None:
        """Seek each partition to its snapshot's offset (the beginning without one), and note
        the end it must be folded to."""
        ends = await self.consumer.end_offsets(event_partitions)
        starts = await self.snapshotting.restore(
            [tp.partition for tp in event_partitions],
            {tp.partition: end for tp, end in ends.items()},
        )
        for tp in event_partitions:
            if tp.partition in starts:
                self.consumer.seek(tp, starts[tp.partition])
        if fresh := [tp for tp in event_partitions if tp.partition not in starts]:
            await self.consumer.seek_to_beginning(*fresh)
        positions = {tp: await self.consumer.position(tp) for tp in event_partitions}
        self.ends = {tp: end for tp, end in ends.items() if end > positions[tp]}
        self.snapshotting.placed({tp.partition: at for tp, at in positions.items()})
        self.consumer.resume(*event_partitions)

    def folded(self) -> None:
        if not self.ready:
            self.events += 1

    async def check(self) -> None:
        """Once every partition reached its end: let the commands in, snapshot what was just
        folded, and report ready."""
        for tp, end in list(self.ends.items()):
            if await self.consumer.position(tp) >= end:
                del self.ends[tp]
        if self.ends or self.ready:
            return
        self.consumer.resume(*self.held_commands)
        took = time.monotonic() - self.started
        metrics.replay_seconds.set(took)
        metrics.replayed_events.set(self.events)
        # What was just folded, before anything is decided on it: a restart soon after a long
        # catch-up then does not repeat it.
        self.snapshotting.maybe(all_changed=True)
        self.set_ready(True)
        await self.caught_up()
        log.info("caught up in %.2f s, %d events folded", took, self.events)
