"""What an account hears: the webhook events made from run events, their bodies and their ids.

A body is `{type, timestamp, data}` with `timestamp` the time of what happened, so every attempt
of a delivery sends the same bytes. The `webhook-id` is derived from the endpoint, the event it
came from and its type, so the same event enqueued twice (a record read again after a restart,
two processes) is one delivery. Pure: no database, no clock.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, get_args
from uuid import UUID, uuid5

from contracts import events as ev
from contracts.credits import Estimate
from contracts.envelope import Envelope

# `webhook.test` is sent only when an account asks for one (the API's test call): no endpoint
# subscribes to it, so it is not in WEBHOOK_TYPES.
WebhookType = Literal[
    "run.completed",
    "run.failed",
    "run.paused",
    "run.cancelled",
    "review.ready",
    "credits.low",
    "endpoint.disabled",
    "webhook.test",
]
WEBHOOK_TYPES: tuple[WebhookType, ...] = tuple(
    kind for kind in get_args(WebhookType) if kind != "webhook.test"
)
# The run events a webhook is made from: the consumer decodes these and skips every other
# record by its `type` header.
SOURCE_EVENTS: frozenset[str] = frozenset(
    (ev.RunCompleted.TYPE, ev.RunFailed.TYPE, ev.RunPaused.TYPE, ev.RunCancelled.TYPE)
)
PauseReason = Literal["requested", "insufficient_credits", "ai_provider_unavailable", "other"]
PAUSE_REASONS: tuple[PauseReason, ...] = get_args(PauseReason)
ID_NAMESPACE = UUID("2d0c61e7-3a55-4c8e-9d0b-51f4a2f6c7e3")


@dataclass(frozen=True)
class WebhookEvent:
    """One webhook to send to every endpoint that wants its type and covers its site."""

    type: WebhookType
    timestamp: datetime
    account_id: int
    site_id: int | None  # None: about the account (every endpoint of it may want it)
    data: dict[str, Any] = field(hash=False)
    # What it was made from (an event's message id, or a site and its slot): the id's root.
    origin: str
    run_id: str | None = None

    def body(self) -> bytes:
        document = {"type": self.type, "timestamp": iso(self.timestamp), "data": self.data}
        return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def iso(at: datetime) -> str:
    """RFC 3339 in UTC with a `Z`, as the spec's examples write it."""
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def webhook_id(endpoint_id: int, event: WebhookEvent) -> UUID:
    return uuid5(ID_NAMESPACE, f"{endpoint_id}/{event.origin}/{event.type}")


def pause_reason(reason: str) -> tuple[PauseReason, str | None]:
    """`insufficient_credits: the next item costs 5` → the code and the detail; a reason this
    version does not know is `other`, with the whole text as its detail."""
    code, _, detail = reason.partition(":")
    code = code.strip()
    if code in PAUSE_REASONS and code != "other":
        return code, detail.strip() or None  # type: ignore[return-value]
    return "other", reason


def _completed(m: Envelope, e: ev.RunCompleted) -> list[WebhookEvent]:
    ready = len(e.ready_for_review)
    made = [_of(m, "run.completed", credits_used=e.credits_used, ready_for_review=ready)]
    if e.ready_for_review:
        ids = list(e.ready_for_review)
        made.append(_of(m, "review.ready", content_ids=ids, count=len(ids)))
    return made


def _failed(m: Envelope, e: ev.RunFailed) -> list[WebhookEvent]:
    return [_of(m, "run.failed", error=e.error, stage=e.stage)]


def _paused(m: Envelope, e: ev.RunPaused) -> list[WebhookEvent]:
    reason, detail = pause_reason(e.reason)
    return [_of(m, "run.paused", reason=reason, detail=detail, requested_by=e.requested_by)]


def _cancelled(m: Envelope, e: ev.RunCancelled) -> list[WebhookEvent]:
    return [_of(m, "run.cancelled", requested_by=e.requested_by)]


_FROM_EVENT: dict[type, Callable[[Envelope, Any], list[WebhookEvent]]] = {
    ev.RunCompleted: _completed,
    ev.RunFailed: _failed,
    ev.RunPaused: _paused,
    ev.RunCancelled: _cancelled,
}


def from_event(message: Envelope) -> list[WebhookEvent]:
    """The webhooks a run event makes: none for most, two for a run that left articles for
    review (`run.completed` and `review.ready`)."""
    make = _FROM_EVENT.get(type(message.data))
    return make(message, message.data) if make else []


def _of(m: Envelope, type_: WebhookType, **details: Any) -> WebhookEvent:
    data = {"run_id": m.run_id, "site_id": m.site_id, **details}
    return WebhookEvent(
        type=type_,
        timestamp=m.time,
        account_id=m.account_id,
        site_id=m.site_id,
        run_id=m.run_id,
        data=data,
        origin=str(m.message_id),
    )


def credits_low(
    account_id: int, site_id: int, estimate: Estimate, next_run_at: datetime, now: datetime
) -> WebhookEvent | None:
    """`credits.low` when the balance does not pass the site's start check for its next
    scheduled run, else None. One per site and slot: the slot is the id's root."""
    if estimate.sufficient:
        return None
    data = {
        "site_id": site_id,
        "next_run_at": iso(next_run_at),
        "balance": estimate.balance,
        "required": estimate.required,
        "estimated_credits": estimate.checked_credits,
        "start_check": estimate.start_check,
    }
    return WebhookEvent(
        type="credits.low",
        timestamp=now,
        account_id=account_id,
        site_id=site_id,
        data=data,
        origin=f"credits.low/{site_id}/{iso(next_run_at)}",
    )


def endpoint_disabled(
    account_id: int, endpoint_id: int, url: str, reason: str, at: datetime
) -> WebhookEvent:
    """`endpoint.disabled`, for the account's other endpoints that want it: one per disabling
    (the time is part of the id, so an endpoint disabled, enabled and disabled again is told
    twice)."""
    data = {"endpoint_id": endpoint_id, "url": url, "reason": reason, "disabled_at": iso(at)}
    return WebhookEvent(
        type="endpoint.disabled",
        timestamp=at,
        account_id=account_id,
        site_id=None,
        data=data,
        origin=f"endpoint.disabled/{endpoint_id}/{iso(at)}",
    )
