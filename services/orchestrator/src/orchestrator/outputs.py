"""The Outputs port on an aiokafka producer: sends are handed over without waiting, and
`flush` waits for all of them, so the consumer commits the commands that caused them only once
Kafka has taken what they decided."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaProducer

from contracts.codec import encode, kafka_headers
from contracts.dead_letter import DeadLetter
from contracts.envelope import Envelope
from orchestrator.ports import HandOvers
from orchestrator.snapshots.keeper import acknowledged

SEND_FROM_THREAD_SECONDS = 30


class KafkaOutputs(HandOvers):
    def __init__(self, producer: AIOKafkaProducer, dead_letter_topic: str) -> None:
        super().__init__()
        self.producer = producer
        self.dead_letter_topic = dead_letter_topic
        self.sends: list[asyncio.Future] = []
        self.loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        await self.producer.start()

    async def stop(self) -> None:
        await self.producer.stop()

    async def send(self, topic: str, key: bytes, message: Envelope) -> None:
        headers = kafka_headers(message)
        self.sends.append(await self.producer.send(topic, encode(message), key, headers=headers))

    async def dead_letter(self, letter: DeadLetter) -> None:
        sent = await self.producer.send(
            self.dead_letter_topic, letter.encode(), letter.kafka_key, headers=letter.kafka_headers
        )
        self.sends.append(sent)

    def send_from_thread(self, topic: str, message: Envelope) -> None:
        assert self.loop is not None, "started"
        sent = self.producer.send_and_wait(
            topic, encode(message), message.key, headers=kafka_headers(message)
        )
        asyncio.run_coroutine_threadsafe(sent, self.loop).result(SEND_FROM_THREAD_SECONDS)

    def settled(self) -> bool:
        return not self.open and acknowledged(self.sends)

    async def flush(self) -> None:
        sends, self.sends = self.sends, []
        if sends:
            await asyncio.gather(*sends)
