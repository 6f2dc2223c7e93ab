"""Send a run command to the orchestrator and wait for its verdict on the run events."""

from __future__ import annotations

import asyncio
import secrets
from datetime import datetime

from aiokafka import AIOKafkaProducer

from api_gateway import metrics
from api_gateway.errors import ApiError
from api_gateway.event_hub import RunEventHub
from contracts.codec import encode, kafka_headers
from contracts.envelope import Envelope, Payload, new_message, utcnow
from contracts.values import Trigger, make_run_id

SOURCE = "/automation/api-gateway"


def new_run_id(now: datetime | None = None, trigger: Trigger = "manual") -> str:
    return make_run_id(trigger, now or utcnow(), secrets.token_hex(3))


class CommandSender:
    def __init__(
        self, producer: AIOKafkaProducer, hub: RunEventHub, topic: str, timeout: float
    ) -> None:
        self.producer = producer
        self.hub = hub
        self.topic = topic
        self.timeout = timeout

    @metrics.counted_command
    async def ask(
        self, payload: Payload, *, account_id: int, site_id: int, run_id: str
    ) -> Envelope:
        """Publish the command and return the event that answers it (504 if none comes)."""
        command = new_message(
            payload, source=SOURCE, account_id=account_id, site_id=site_id, run_id=run_id
        )
        answer = self.hub.expect(command.message_id)
        try:
            await self.producer.send_and_wait(
                self.topic, encode(command), key=command.key, headers=kafka_headers(command)
            )
            return await asyncio.wait_for(answer, self.timeout)
        except TimeoutError:
            raise ApiError(
                504,
                f"the orchestrator did not answer within {self.timeout:g} s; the command "
                f"{command.message_id} was sent and may still take effect",
                code="timeout",
            ) from None
        finally:
            self.hub.forget(command.message_id)
