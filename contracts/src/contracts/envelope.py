"""The one envelope every message travels in.

It is a CloudEvents 1.0 event in structured mode: the Kafka record value is a JSON object whose
attributes are CloudEvents' own (specversion, id, source, type, subject, time, datacontenttype)
plus extension attributes for our ids (lower-case alphanumerics, as CloudEvents requires), and
the payload under `data`. Any CloudEvents-aware Kafka consumer can therefore read the stream.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar, Literal
from uuid import UUID, uuid4, uuid5

from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny

CONTENT_TYPE = "application/cloudevents+json"
ID_NAMESPACE = UUID("6f1c3b0e-8f0a-4a43-9d8e-2c4b7f0d5a11")


def deterministic_id(*parts: object) -> UUID:
    """A message id derived from what the message is about, so a retried publish is recognisable
    as the same message by every idempotent consumer."""
    return uuid5(ID_NAMESPACE, "/".join(str(p) for p in parts))


def utcnow() -> datetime:
    return datetime.now(UTC)


class Payload(BaseModel):
    """Base of every command and event body. Subclasses set a stable TYPE and a VERSION."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    TYPE: ClassVar[str]
    VERSION: ClassVar[int] = 1


class Envelope(BaseModel):
    """A message: CloudEvents attributes, our ids, and a typed payload."""

    model_config = ConfigDict(
        frozen=True, populate_by_name=True, serialize_by_alias=True, extra="forbid"
    )

    specversion: Literal["1.0"] = Field("1.0", description="CloudEvents spec version.")
    message_id: UUID = Field(alias="id", description="Unique message id (CloudEvents `id`).")
    source: str = Field(
        description="The service that produced it, e.g. `/automation/orchestrator`."
    )
    type: str = Field(description="Stable message type, e.g. `automation.run.started`.")
    version: int = Field(alias="dataversion", ge=1, description="Version of the payload schema.")
    time: datetime = Field(description="When the message was produced (UTC).")
    subject: str = Field(description="The run id when there is one, else `site/<site_id>`.")
    datacontenttype: Literal["application/json"] = "application/json"
    account_id: int = Field(alias="accountid", description="Owning account.")
    site_id: int = Field(alias="siteid", description="Site the message is about; the Kafka key.")
    run_id: str | None = Field(None, alias="runid", description="Run the message is about.")
    causation_id: UUID | None = Field(
        None, alias="causationid", description="Id of the message that caused this one."
    )
    correlation_id: UUID = Field(
        alias="correlationid", description="Id shared by every message of one conversation."
    )
    data: SerializeAsAny[Payload] = Field(description="The typed payload.")

    @property
    def key(self) -> bytes:
        """Kafka key: the site, so a site's messages stay in order on one partition."""
        return str(self.site_id).encode()


def new_message(
    payload: Payload,
    *,
    source: str,
    account_id: int,
    site_id: int,
    run_id: str | None = None,
    caused_by: Envelope | None = None,
    message_id: UUID | None = None,
    correlation_id: UUID | None = None,
    time: datetime | None = None,
) -> Envelope:
    """Wrap a payload. The causing message's ids flow into causation and correlation; without
    one, the correlation id is the one given, else the message's own id (a new conversation)."""
    message_id = message_id or uuid4()
    if caused_by is not None:
        correlation_id = caused_by.correlation_id
    return Envelope(
        message_id=message_id,
        source=source,
        type=payload.TYPE,
        version=payload.VERSION,
        time=time or utcnow(),
        subject=run_id or f"site/{site_id}",
        account_id=account_id,
        site_id=site_id,
        run_id=run_id,
        causation_id=caused_by.message_id if caused_by else None,
        correlation_id=correlation_id or message_id,
        data=payload,
    )


def as_cloudevent(message: Envelope) -> dict[str, Any]:
    """The JSON-ready structured-mode CloudEvent."""
    return message.model_dump(mode="json", by_alias=True)
