"""What lands on the dead-letter topic: the record as it was and why it was refused.

A letter travels as a structured-mode CloudEvent like every other record (ADR 18), with the letter
under `data`. It has no envelope: the refused record may say nothing readable about an account,
a site or a run. Letters written before ADR 18 are the bare letter; `DeadLetter.decode` reads both.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Literal, Protocol
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from contracts import tracing
from contracts.codec import headers_for
from contracts.envelope import deterministic_id, utcnow

TYPE = "automation.dead-letter"
VERSION = 1


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

    @property
    def message_id(self) -> UUID:
        """The same refusal (one consumer, one record) is the same message, sent again or not."""
        return deterministic_id(TYPE, self.consumer, self.topic, self.partition, self.offset)

    def as_message(self) -> DeadLetterMessage:
        return DeadLetterMessage(
            id=self.message_id,
            source=f"/automation/consumers/{self.consumer}",
            time=self.refused_at,
            subject=f"{self.topic}/{self.partition}/{self.offset}",
            data=self,
        )

    def encode(self) -> bytes:
        return self.as_message().model_dump_json().encode()

    @property
    def kafka_headers(self) -> list[tuple[str, bytes]]:
        """Structured mode, and the trace context current while it is sent: services send a
        letter within `tracing.continuing` the refused record's headers, so it joins that
        record's trace."""
        return headers_for(TYPE) + tracing.headers(None)

    @classmethod
    def decode(cls, raw: bytes | str) -> DeadLetter:
        """A letter from the topic: a CloudEvent, or a bare letter written before ADR 18."""
        document = json.loads(raw)
        if "specversion" in document:
            return DeadLetterMessage.model_validate(document).data
        return cls.model_validate(document)

    def value(self) -> bytes:
        return base64.b64decode(self.value_base64)


class DeadLetterMessage(BaseModel):
    """A dead letter as a structured-mode CloudEvent (the record value on the topic)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    specversion: Literal["1.0"] = "1.0"
    id: UUID = Field(description="Derived from the consumer and the refused record's position.")
    source: str = Field(description="`/automation/consumers/<consumer group>`.")
    type: Literal["automation.dead-letter"] = TYPE
    dataversion: Literal[1] = VERSION
    time: datetime = Field(description="When the record was refused.")
    subject: str = Field(description="The refused record: `<topic>/<partition>/<offset>`.")
    datacontenttype: Literal["application/json"] = "application/json"
    data: DeadLetter
