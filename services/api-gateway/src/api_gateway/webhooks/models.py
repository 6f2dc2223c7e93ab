"""What the webhooks API takes and answers: endpoints, their secret, deliveries and attempts.

Strict like the other bodies: `true` is no site id and `"run.failed"` must be spelled exactly; a
list may not repeat an item (JSON Schema's `uniqueItems`), so a repeated type is refused rather
than quietly merged.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator

from api_gateway.params import MAX_ID, JsonInteger
from api_gateway.webhooks.addresses import MAX_URL_LENGTH
from api_gateway.webhooks.payloads import WEBHOOK_TYPES
from contracts.db import tables as t

SubscribableType = Literal[WEBHOOK_TYPES]  # type: ignore[valid-type]
DeliveryStatus = Literal[t.WEBHOOK_DELIVERY_STATUSES]  # type: ignore[valid-type]
AttemptOutcome = Literal[t.WEBHOOK_ATTEMPT_OUTCOMES]  # type: ignore[valid-type]
MAX_SITES = 1000
MAX_DESCRIPTION = 500
SiteIdItem = Annotated[int, Field(ge=1, le=MAX_ID), JsonInteger]

_URL = (
    f"https:// (http:// only where WEBHOOK_ALLOW_HTTP is set), at most {MAX_URL_LENGTH} ASCII "
    "characters, no user name or password. Every address its host resolves to must be public "
    "(not loopback, private, link-local, shared, reserved or a cloud metadata address) unless "
    "WEBHOOK_ALLOWED_NETWORKS opens its range; checked on save and again at every attempt."
)
# A new endpoint and a change read the subscription's two lists by the same rules; a change may
# also leave `event_types` out (null).
_EVENT_TYPES = Field(
    min_length=1,
    max_length=len(WEBHOOK_TYPES),
    json_schema_extra={"uniqueItems": True},
    description="The webhook types it gets, each once: run.completed, run.failed, run.paused "
    "(with its reason), run.cancelled, review.ready (articles wait for review), credits.low (the "
    "balance will not pay for the next scheduled run), endpoint.disabled (another endpoint of "
    "the account was disabled).",
)
SiteIds = Annotated[
    list[SiteIdItem] | None,
    Field(
        min_length=1,
        max_length=MAX_SITES,
        json_schema_extra={"uniqueItems": True},
        description="Sites of your account whose events it gets, each once; null: every site, "
        "later ones too.",
    ),
]


def _unique(values: list | None) -> list | None:
    if values is not None and len(set(values)) != len(values):
        raise ValueError("each item may be given once")
    return values


class EndpointIn(BaseModel):
    """A new endpoint."""

    model_config = ConfigDict(extra="forbid", strict=True)

    url: str = Field(min_length=1, max_length=MAX_URL_LENGTH, description=_URL)
    event_types: Annotated[list[SubscribableType], _EVENT_TYPES]
    site_ids: SiteIds = None
    description: str = Field("", max_length=MAX_DESCRIPTION, description="For people.")

    _unique_lists = field_validator("event_types", "site_ids")(_unique)


class EndpointChange(BaseModel):
    """Fields to change; those left out (or null) keep their value, except `site_ids`, where
    null means every site."""

    model_config = ConfigDict(extra="forbid", strict=True)

    url: str | None = Field(None, min_length=1, max_length=MAX_URL_LENGTH, description=_URL)
    event_types: Annotated[list[SubscribableType] | None, _EVENT_TYPES] = None
    site_ids: SiteIds = None
    description: str | None = Field(None, max_length=MAX_DESCRIPTION)
    enabled: bool | None = Field(
        None,
        description="false: no new deliveries, and the pending ones fail. true: deliveries "
        "resume for new events, and the reason it was disabled and its failing time are "
        "cleared (deliveries that failed meanwhile stay failed: redeliver them one by one).",
    )

    _unique_lists = field_validator("event_types", "site_ids")(_unique)

    def changes(self) -> dict[str, object]:
        """The columns to set: what was given and is not null, and `site_ids` when given."""
        given = self.model_dump(include=self.model_fields_set)
        return {k: v for k, v in given.items() if v is not None or k == "site_ids"}


class EndpointOut(BaseModel):
    id: int
    url: str
    description: str
    event_types: list[str]
    site_ids: list[int] | None = Field(description="null: every site of the account.")
    enabled: bool
    disabled_reason: str | None = Field(
        description="Why it is disabled: by you, a 410 Gone answer, or 5 days of failures."
    )
    disabled_at: datetime | None
    failing_since: datetime | None = Field(
        description="The first failed attempt since the last delivered one; null when the last "
        "attempt was delivered. Failing for 5 days disables the endpoint."
    )
    created_at: datetime
    updated_at: datetime


class EndpointCreated(EndpointOut):
    secret: str = Field(
        description="The signing secret (`whsec_` + base64), for verifying the "
        "`webhook-signature` header; GET .../secret shows it again."
    )


class EndpointPage(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[EndpointOut]


class SecretOut(BaseModel):
    endpoint_id: int
    secret: str = Field(description="The newest secret: every delivery is signed with it.")
    created_at: datetime
    previous_expires_at: datetime | None = Field(
        description="Until then an older secret signs too, as a second entry of the header "
        "(after a rotation); null when only this one signs."
    )


class DeliveryOut(BaseModel):
    id: UUID = Field(description="The `webhook-id` header: the same on every attempt.")
    endpoint_id: int
    event_type: str
    site_id: int | None
    run_id: str | None
    status: DeliveryStatus
    attempts: int = Field(description="Attempts begun in this round (redelivery starts a round).")
    next_attempt_at: datetime | None = Field(description="When pending: the next attempt's time.")
    in_flight: bool = Field(description="An attempt is being made now.")
    last_attempt_at: datetime | None
    last_status: int | None = Field(description="HTTP status of the last answer, if one came.")
    last_latency_ms: int | None
    last_error: str | None
    last_response: str | None = Field(description="The start of the last answer's body.")
    created_at: datetime
    updated_at: datetime


class DeliveryPage(BaseModel):
    endpoint_id: int
    total: int
    limit: int
    offset: int
    items: list[DeliveryOut]


class AttemptOut(BaseModel):
    attempt: int = Field(description="Its number within its round, from 1.")
    at: datetime
    outcome: AttemptOutcome = Field(
        description="delivered (a 2xx in time), failed, or refused (the address check stopped "
        "it before any connection)."
    )
    status: int | None
    latency_ms: int
    error: str | None
    response: str | None


class DeliveryDetail(DeliveryOut):
    body: str = Field(description="The exact JSON every attempt sends (and signs).")
    attempt_log: list[AttemptOut] = Field(description="Every attempt, oldest first.")
