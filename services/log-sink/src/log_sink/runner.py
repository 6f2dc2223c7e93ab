"""The live sink, the log-sink's runner: replays its partitions of the event stream from the
beginning, then follows. Each event goes through the projection (projection.py, pure: the fold
and the rendered lines); the outputs write what changed.

A plain aiokafka loop (docs/adr/0006, 0022): it seeks to the beginning on every assignment and
must know when the replay reached the ends it noted.

Replaying on every assignment is what makes a kill -9 harmless: the fold and every rendered line
are rebuilt in memory, and files only receive the lines they do not have yet. Committed offsets
are kept for lag monitoring and to mark which records were already dead-lettered; they are never
where the replay starts.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.structs import OffsetAndMetadata

from contracts import tracing
from contracts.codec import UnreadableMessage, decode
from contracts.dead_letter import DeadLetter
from contracts.topics import Topics
from log_sink import metrics
from log_sink.outputs import Outputs
from log_sink.projection import Projector

log = logging.getLogger("log_sink")


class _Replay(ConsumerRebalanceListener):
    def __init__(self, sink: LiveSink) -> None:
        self.sink = sink

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.sink.on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self.sink.on_assigned(assigned)


class LiveSink:
    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        outputs: Outputs,
        topics: Topics,
        group_id: str,
        flush_interval: float,
        retry_interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.consumer = consumer
        self.producer = producer
        self.outputs = outputs
        self.topics = topics
        self.group_id = group_id
        self.flush_interval = flush_interval
        self.retry_interval = retry_interval
        self.projector = Projector()
        # Per partition: where the group had committed when we got it (records before it were
        # handled by an earlier life, dead letters included), and the end to replay up to.
        self.committed: dict[TopicPartition, int] = {}
        self.replay_to: dict[TopicPartition, int] = {}
        self.clock = clock
        self._last_flush: float | None = None  # never written: the first write is due at once
        self._pending = False
        self._assigned = False
        self._position: dict[TopicPartition, int] = {}

    async def run(self, stopping: asyncio.Event) -> None:
        self.consumer.subscribe([self.topics.run_events], listener=_Replay(self))
        while not stopping.is_set():
            batch = await self.consumer.getmany(timeout_ms=100, max_records=1000)
            for partition, records in batch.items():
                for record in records:
                    await self._handle(partition, record)
            await self._read_positions()
            await self._maybe_flush(idle=not batch)
            await self._commit()
            self._report_progress()
        await self._flush()
        await self._commit()

    async def _handle(self, partition: TopicPartition, record: ConsumerRecord) -> None:
        try:
            message = decode(record.value)
        except UnreadableMessage as exc:
            with tracing.continuing(record.headers), tracing.consuming(record, self.group_id):
                await self._dead_letter(partition, record, exc.reason)
            return
        # A replay re-reads what an earlier life handled: only records past it make spans.
        live = record.offset >= self.replay_to.get(partition, 0)
        traced = tracing.consuming(record, self.group_id, message) if live else tracing.UNTRACED
        with traced as span:
            applied = self.projector.apply(message, partition.partition, record.offset)
            if span.is_recording():
                span.set_attribute("automation.log_sink.applied", applied)
        metrics.EVENTS.labels("applied" if applied else "ignored").inc()

    async def _dead_letter(self, partition: TopicPartition, record: ConsumerRecord, reason: str):
        metrics.EVENTS.labels("unreadable").inc()
        if record.offset < self.committed.get(partition, 0):
            return  # refused in an earlier life: replay must not refuse it twice
        letter = DeadLetter.of(self.group_id, record, reason)
        await self.producer.send_and_wait(
            self.topics.dead_letter,
            letter.encode(),
            key=letter.kafka_key,
            headers=letter.kafka_headers,
        )
        metrics.DEAD_LETTERS.labels(record.topic).inc()
        log.warning("record %s:%s sent to dead letter: %s", partition, record.offset, reason)
        await self.consumer.commit({partition: OffsetAndMetadata(record.offset + 1, "")})
        self.committed[partition] = record.offset + 1

    async def _maybe_flush(self, idle: bool) -> None:
        """Write at once when everything on the stream so far has been read; batch writes, one
        per flush interval, only while the sink is behind. A run rests in some states for a
        moment only (a batch in flight while the AI answers): waiting for a quiet poll or the
        next interval would skip them whenever the next event comes sooner. After a failed
        write, wait the retry interval instead of hammering a full disk."""
        wait = self.retry_interval if self._pending else self.flush_interval
        due = self._last_flush is None or self.clock() - self._last_flush >= wait
        at_end = idle or self._read_to_end()
        if self.projector.dirty and (due or (at_end and not self._pending)):
            await self._flush()

    def _read_to_end(self) -> bool:
        """Every assigned partition read up to the end the broker last reported."""
        for tp, position in self._position.items():
            end = self.consumer.highwater(tp)
            if end is not None and position < end:
                return False
        return True

    async def _flush(self) -> None:
        self._last_flush = self.clock()
        # One write covers many runs: its span links to each run's trace.
        written = tracing.span(
            "write run logs",
            attributes={"automation.log_sink.runs": len(self.projector.dirty)},
            links=tracing.run_links(self.projector.dirty),
        )
        with written:
            clean = await asyncio.to_thread(self.outputs.flush, self.projector, self._replaying())
        self._pending = not clean

    def _replaying(self) -> frozenset[int]:
        return frozenset(
            tp.partition for tp, end in self.replay_to.items() if self._position.get(tp, 0) < end
        )

    async def _read_positions(self) -> None:
        self._position = {tp: await self.consumer.position(tp) for tp in self.consumer.assignment()}

    async def _commit(self) -> None:
        """Commit read positions past what the group had, so lag is visible to operators."""
        offsets = {
            tp: OffsetAndMetadata(position, "")
            for tp, position in self._position.items()
            if position > self.committed.get(tp, 0)
        }
        if offsets:
            await self.consumer.commit(offsets)
            self.committed.update({tp: meta.offset for tp, meta in offsets.items()})

    def _report_progress(self) -> None:
        metrics.LAG.set(
            sum(
                max(0, (self.consumer.highwater(tp) or 0) - position)
                for tp, position in self._position.items()
            )
        )
        # Disk or database trouble does not hold readiness back: the events are folded, and
        # the writes catch up when the trouble ends.
        written = not self.projector.dirty or self._pending
        ready = self._assigned and not self._replaying() and written
        metrics.READY.set(1 if ready else 0)

    def on_revoked(self, revoked: set[TopicPartition]) -> None:
        metrics.READY.set(0)
        self.projector.forget_partitions({tp.partition for tp in revoked})
        for partition in revoked:
            self._position.pop(partition, None)
            self.committed.pop(partition, None)
            self.replay_to.pop(partition, None)

    async def on_assigned(self, assigned: set[TopicPartition]) -> None:
        for partition in assigned:
            self._position.pop(partition, None)
            self.committed[partition] = await self.consumer.committed(partition) or 0
        if assigned:
            await self.consumer.seek_to_beginning(*assigned)
            self.replay_to.update(await self.consumer.end_offsets(list(assigned)))
        self._assigned = True
        log.info("assigned %s; replaying to %s", sorted(assigned), self.replay_to)
