"""A run's past events, read again from the events topic: what a live stream sends before it
follows the hub, and after it fell behind.

The topic is the durable copy: a run's events all lie on one partition, from the offset of its
first event (the read model says where). A replay reads that partition between two offsets with
a short-lived consumer of its own (no group, nothing committed) and yields the run's events as
it goes, so what it holds is one fetch (`FETCH_BYTES`) whatever the run's size. At most
`CONCURRENT` replays read at once per gateway; the others wait their turn.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiokafka import AIOKafkaConsumer, TopicPartition

from api_gateway.event_hub import readable
from contracts.envelope import Envelope

FETCH_BYTES = 256 * 1024
CONCURRENT = 4


class Replayer:
    def __init__(self, bootstrap: str, topic: str, concurrent: int = CONCURRENT) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self._turns = asyncio.Semaphore(concurrent)

    async def read(
        self, run_id: str, partition: int, start: int, end: int
    ) -> AsyncIterator[tuple[int, Envelope]]:
        """(offset, event) of the run's events at offsets start <= offset < end, in order."""
        if start >= end:
            return
        tp = TopicPartition(self.topic, partition)
        needle = run_id.encode()
        async with self._turns:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self.bootstrap,
                group_id=None,
                enable_auto_commit=False,
                auto_offset_reset="earliest",  # an offset the retention removed: from the oldest
                fetch_max_bytes=FETCH_BYTES,
                max_partition_fetch_bytes=FETCH_BYTES,
            )
            await consumer.start()
            try:
                consumer.assign([tp])
                consumer.seek(tp, start)
                while await consumer.position(tp) < end:
                    batch = await consumer.getmany(tp, timeout_ms=1000, max_records=500)
                    if not batch and await _at_end(consumer, tp):
                        return  # the partition holds less than expected (it was truncated)
                    for record in batch.get(tp, ()):
                        if record.offset >= end:
                            return
                        # A record of another run cannot contain this run's id: skip it unparsed.
                        if record.value is None or needle not in record.value:
                            continue
                        message = readable(record.value)
                        if message is not None and message.run_id == run_id:
                            yield record.offset, message
            finally:
                await consumer.stop()


async def _at_end(consumer: AIOKafkaConsumer, tp: TopicPartition) -> bool:
    end = consumer.highwater(tp)
    return end is not None and await consumer.position(tp) >= end
