"""Wiring, once: the Kafka consumer and producer, the database engine and the outputs (files,
mirror, read model) around the live sink, with their start and stop."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from sqlalchemy.engine import Engine

from contracts.db.engines import sync_engine
from log_sink.outputs import Outputs
from log_sink.runner import LiveSink
from log_sink.settings import Settings


@dataclass
class Service:
    consumer: AIOKafkaConsumer
    producer: AIOKafkaProducer
    database: Engine
    sink: LiveSink

    async def run(self, stopping: asyncio.Event) -> None:
        await self.producer.start()
        await self.consumer.start()
        try:
            await self.sink.run(stopping)
        finally:
            await self.consumer.stop()
            await self.producer.stop()
            self.database.dispose()


def bootstrap(settings: Settings) -> Service:
    database = sync_engine(settings.database_url, pool_pre_ping=True)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=settings.group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers, enable_idempotence=True, acks="all"
    )
    outputs = Outputs(settings.log_base_dir, settings.log_mirror_dir, database)
    sink = LiveSink(
        consumer,
        producer,
        outputs,
        settings.topics,
        settings.group_id,
        settings.flush_interval_seconds,
        settings.retry_interval_seconds,
    )
    return Service(consumer, producer, database, sink)
