"""What lands on the dead-letter topic: the record as it was and why it was refused."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from contracts.envelope import utcnow


class RefusedRecord(Protocol):
    """What a Kafka consumer record (aiokafka's ConsumerRecord) offers to a dead letter."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


class DeadLetter(BaseModel):
    model_config = ConfigDict(frozen=True)

    consumer: str = Field(description="Consumer group that refused the record.")
    topic: str
    partition: int
    offset: int
    key: str | None = None
    reason: str
    value_base64: str = Field(description="The record value, exactly as received.")
    refused_at: datetime = Field(default_factory=utcnow)

    @classmethod
    def of(cls, consumer: str, record: RefusedRecord, reason: str) -> DeadLetter:
        """The letter for a record `consumer` could not read, key and value kept as they came."""
        return cls(
            consumer=consumer,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key.decode(errors="replace") if record.key is not None else None,
            reason=reason,
            value_base64=base64.b64encode(record.value or b"").decode(),
        )

    @property
    def kafka_key(self) -> bytes | None:
        """Every service keys a letter by the refused record's own key."""
        return self.key.encode() if self.key is not None else None

    def encode(self) -> bytes:
        return self.model_dump_json().encode()

    def value(self) -> bytes:
        return base64.b64decode(self.value_base64)
