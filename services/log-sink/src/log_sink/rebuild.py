"""Regenerate run files and read-model rows from the event stream, from its first record to
the end it has when the command starts. Files of the chosen runs are rewritten from their first
line, so what comes out is exactly what the live sink writes."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition

from contracts.codec import UnreadableMessage, decode
from log_sink.outputs import Outputs
from log_sink.projection import Projector

log = logging.getLogger("log_sink")


@dataclass
class RebuildResult:
    events: int = 0
    runs: int = 0
    unreadable: int = 0
    written: bool = True


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    numbers = consumer.partitions_for_topic(topic)
    if not numbers:
        await consumer._client.force_metadata_update()  # first look-up of the topic
        numbers = consumer.partitions_for_topic(topic) or set()
    return [TopicPartition(topic, n) for n in sorted(numbers)]


async def rebuild(
    bootstrap: str,
    topic: str,
    outputs: Outputs,
    run_ids: frozenset[str] | None,
    batch_records: int = 2000,
) -> RebuildResult:
    """Replay `topic` into `outputs` (all runs when `run_ids` is None)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, isolation_level="read_committed"
    )
    await consumer.start()
    projector = Projector(only_runs=run_ids)
    result = RebuildResult()
    seen: set[str] = set()
    try:
        partitions = await _partitions(consumer, topic)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        while replaying := await _behind(consumer, ends):
            batch = await consumer.getmany(timeout_ms=500, max_records=batch_records)
            for records in batch.values():
                for record in records:
                    _apply(projector, record, result, seen)
            outputs.flush(projector, replaying)
        result.written = outputs.flush(projector)
    finally:
        await consumer.stop()
    result.runs = len(seen)
    return result


async def _behind(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> frozenset[int]:
    """Partitions not yet read up to where the stream ended when the rebuild began."""
    return frozenset(
        [tp.partition for tp, end in ends.items() if await consumer.position(tp) < end]
    )


def _apply(projector: Projector, record, result: RebuildResult, seen: set[str]) -> None:
    try:
        message = decode(record.value)
    except UnreadableMessage:
        result.unreadable += 1
        return
    if projector.apply(message, record.partition, record.offset):
        result.events += 1
        seen.add(message.run_id)
