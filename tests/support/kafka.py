"""Small aiokafka helpers for tests: publish envelopes, read records back by id."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.structs import RecordMetadata

from contracts.codec import encode, kafka_headers
from contracts.envelope import Envelope
from tests.support.wait import WaitTimeout


async def publish(
    bootstrap: str, topic: str, *messages: Envelope, at_once: bool = False
) -> list[RecordMetadata]:
    """Put the messages on the topic in order; where each landed (partition, offset). `at_once`
    sends them in one batch, so a consumer fetches them together rather than as they come."""
    batched = {"linger_ms": 200, "max_batch_size": 1 << 19} if at_once else {}
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, **batched)
    records = [{"value": encode(m), "key": m.key, "headers": kafka_headers(m)} for m in messages]
    await producer.start()
    try:
        if at_once:
            sent = [await producer.send(topic, **record) for record in records]
            return list(await asyncio.gather(*sent))
        return [await producer.send_and_wait(topic, **record) for record in records]
    finally:
        await producer.stop()


async def publish_raw(bootstrap: str, topic: str, value: bytes, key: bytes = b"poison") -> None:
    """Put bytes on a topic as they are: a record no consumer can read."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


async def end_offsets(bootstrap: str, topic: str) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        if not partitions:
            await consumer._client.force_metadata_update()  # first look-up of a topic
            partitions = [
                TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()
            ]
        return await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()


async def read_until(
    bootstrap: str,
    start: dict[TopicPartition, int],
    found: Callable[[list[ConsumerRecord]], bool],
    timeout: float = 30.0,
) -> list[ConsumerRecord]:
    """Read every record after `start` offsets until `found(records)` holds or time runs out."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    records: list[ConsumerRecord] = []
    try:
        consumer.assign(list(start))
        for partition, offset in start.items():
            consumer.seek(partition, offset)
        deadline = time.monotonic() + timeout
        while not found(records) and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for partition_records in batch.values():
                records.extend(partition_records)
            await asyncio.sleep(0)
        return records
    finally:
        await consumer.stop()


async def read_to_end(
    bootstrap: str, start: dict[TopicPartition, int], timeout: float = 30.0
) -> list[ConsumerRecord]:
    """Every record after `start` up to the partitions' ends as they are now: once whatever
    publishes has stopped, all it ever sent."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    records: list[ConsumerRecord] = []
    try:
        ends = await consumer.end_offsets(list(start))
        consumer.assign(list(start))
        for partition, offset in start.items():
            consumer.seek(partition, offset)
        try:
            async with asyncio.timeout(timeout):
                while any([await consumer.position(tp) < end for tp, end in ends.items()]):
                    for partition_records in (await consumer.getmany(timeout_ms=500)).values():
                        records.extend(partition_records)
        except TimeoutError:
            raise WaitTimeout(
                f"read {len(records)} records in {timeout:g} s without reaching the ends {ends}"
            ) from None
    finally:
        await consumer.stop()
    return [r for r in records if r.offset < ends[TopicPartition(r.topic, r.partition)]]


def delete_topics(bootstrap: str, names: list[str]) -> None:
    async def delete() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            await admin.delete_topics(names)
        finally:
            await admin.close()

    asyncio.run(delete())


async def describe_topics(bootstrap: str, names: list[str]) -> list[dict]:
    """Each topic's partitions as the cluster reports them: leader, replicas, isr."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return await admin.describe_topics(names)
    finally:
        await admin.close()


async def topic_configs(bootstrap: str, topic: str) -> dict[str, str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
        [resource] = response.resources
        return {entry[0]: entry[1] for entry in resource[4]}
    finally:
        await admin.close()
