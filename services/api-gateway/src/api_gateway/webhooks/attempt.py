"""One attempt of a claimed delivery: sign it with the endpoint's secrets valid now, send it,
and decide what follows (`retry.after_attempt`). The caller records the result
(`store.record`) in a transaction of its own; nothing here touches the database.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime

import httpcore

from api_gateway.webhooks import client, signing
from api_gateway.webhooks.addresses import AddressPolicy
from api_gateway.webhooks.retry import Answer, Next, after_attempt
from api_gateway.webhooks.store import Attempted, Claimed

NO_SECRET = "the endpoint has no secret valid now: rotate it to get a new one"


async def attempt(
    claimed: Claimed,
    pool: httpcore.AsyncConnectionPool,
    policy: AddressPolicy,
    now: datetime,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[Attempted, Next]:
    secrets = signing.signing_secrets(claimed.secrets, now)
    if not secrets:  # never sent unsigned; a failed attempt, so the log shows why
        answer = Answer(None, error=NO_SECRET)
        attempted = Attempted(at=now, outcome="failed", status=None, latency_ms=0, error=NO_SECRET)
        return attempted, after_attempt(claimed.attempt, answer, now, claimed.failing_since)
    headers = signing.headers(str(claimed.delivery_id), now, claimed.body, secrets)
    sent = await client.send(pool, claimed.url, headers, claimed.body, policy, clock)
    attempted = Attempted(
        at=now,
        outcome=sent.outcome,
        status=sent.answer.status,
        latency_ms=sent.latency_ms,
        error=sent.answer.error,
        response=sent.response,
    )
    return attempted, after_attempt(claimed.attempt, sent.answer, now, claimed.failing_since)
