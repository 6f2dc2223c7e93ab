"""The AI provider's webhooks: OpenAI's `batch.completed` (and `.expired`, `.cancelled`,
`.failed`), verified against the signing secret the provider gave (Standard Webhooks signatures,
checked by the openai SDK), then passed on to the stage workers as a wake-up on a PostgreSQL
channel, so an economy run goes on when the provider says rather than at its next look.

Polling stays the truth: a webhook lost or never configured delays nothing past the next poll,
and one that names a batch nobody waits for wakes a loop that finds nothing new."""

from __future__ import annotations

import logging
from functools import cache
from typing import TYPE_CHECKING

import sqlalchemy as sa
from fastapi import APIRouter, Request, Response

from api_gateway.db import DbConn
from api_gateway.errors import bad_request, not_found
from contracts.db.tables import PROVIDER_BATCH_CHANNEL

if TYPE_CHECKING:
    from openai import AsyncOpenAI

log = logging.getLogger(__name__)
router = APIRouter(tags=["provider webhooks"])
_NOTIFY = sa.text("SELECT pg_notify(:channel, :batch_id)")


@cache
def _verifier() -> AsyncOpenAI:
    """A client that only verifies signatures and never sends a request. The SDK is imported on
    the first webhook, not at start-up: it adds about a second to every gateway's start."""
    from openai import AsyncOpenAI

    return AsyncOpenAI(api_key="unused", base_url="http://127.0.0.1:9")


@router.post(
    "/provider_webhooks/openai",
    status_code=204,
    summary="OpenAI's webhooks: a provider batch has ended",
    responses={204: {"description": "Verified and passed on (or not about a batch)."}},
)
async def on_openai_webhook(request: Request, conn: DbConn) -> Response:
    secret = request.app.state.settings.openai_webhook_secret
    if not secret:
        raise not_found("provider webhooks (OPENAI_WEBHOOK_SECRET is not set)")
    body = await request.body()
    from openai import InvalidWebhookSignatureError

    try:
        event = _verifier().webhooks.unwrap(body, request.headers, secret=secret)
    except (InvalidWebhookSignatureError, ValueError) as refused:
        raise bad_request(f"not a webhook signed with the configured secret: {refused}") from None
    if event.type.startswith("batch."):
        await conn.execute(_NOTIFY, {"channel": PROVIDER_BATCH_CHANNEL, "batch_id": event.data.id})
        await conn.commit()
        log.info("provider batch %s: %s", event.data.id, event.type)
    return Response(status_code=204)
