"""What lands on the dead-letter topic: the record as it was and why it was refused."""

from __future__ import annotations

import base64
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from contracts.envelope import utcnow


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
    def of(
        cls,
        *,
        consumer: str,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        reason: str,
    ) -> DeadLetter:
        return cls(
            consumer=consumer,
            topic=topic,
            partition=partition,
            offset=offset,
            key=key.decode(errors="replace") if key is not None else None,
            reason=reason,
            value_base64=base64.b64encode(value or b"").decode(),
        )

    def value(self) -> bytes:
        return base64.b64decode(self.value_base64)
