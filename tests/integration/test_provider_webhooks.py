"""The provider's webhook route of the gateway (a process on the real database): a signed
`batch.completed` is passed on to the stage workers on the PostgreSQL channel; an unsigned or
wrongly signed one is refused and passed on to nobody; without a configured secret the route is
not there."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import psycopg
import pytest
from sqlalchemy.engine import make_url
from standardwebhooks.webhooks import Webhook

from contracts.db.tables import PROVIDER_BATCH_CHANNEL
from tests.support.gateway import Gateway, start_gateway

SECRET = "whsec_" + base64.b64encode(b"another signing secret, 32 bytes").decode()
ROUTE = "/api/v1/automation/provider_webhooks/openai"


@pytest.fixture(scope="module")
def signed_gateway(stack, topics, tmp_path_factory) -> Iterator[Gateway]:
    run_dir = tmp_path_factory.mktemp("gateway-webhooks")
    services, started = start_gateway(stack, topics, run_dir, {"OPENAI_WEBHOOK_SECRET": SECRET})
    yield started
    services.stop_all()


@pytest.fixture
def channel(stack) -> Iterator[psycopg.Connection]:
    url = make_url(stack.database_url).set(drivername="postgresql")
    with psycopg.connect(url.render_as_string(hide_password=False), autocommit=True) as conn:
        conn.execute(f"LISTEN {PROVIDER_BATCH_CHANNEL}")
        yield conn


def webhook(event_type: str, batch_id: str, secret: str = SECRET) -> tuple[str, dict[str, str]]:
    now = datetime.now(UTC)
    body = json.dumps(
        {
            "object": "event",
            "id": f"evt_{batch_id}",
            "type": event_type,
            "created_at": int(now.timestamp()),
            "data": {"id": batch_id},
        }
    )
    message_id = f"wh_{batch_id}"
    headers = {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, now, body),
    }
    return body, headers


def heard(channel: psycopg.Connection, batch_id: str) -> list[str]:
    """What the channel passed on about `batch_id`. The channel is the database's, so tests
    running beside this one (economy runs with their own webhooks) may be heard on it too."""
    return [n.payload for n in channel.notifies(timeout=2.0) if n.payload == batch_id]


def batch_id(name: str) -> str:
    return f"batch_{name}_{uuid.uuid4().hex[:8]}"


def test_a_signed_batch_end_is_passed_on_to_the_workers(signed_gateway, channel):
    signed = batch_id("signed")
    body, headers = webhook("batch.completed", signed)
    answer = httpx.post(signed_gateway.url + ROUTE, content=body, headers=headers)

    assert answer.status_code == 204, answer.text
    assert heard(channel, signed) == [signed]


def test_a_wrong_signature_is_refused_and_passed_on_to_nobody(signed_gateway, channel):
    other = "whsec_" + base64.b64encode(b"not the secret the gateway knows").decode()
    forged_id = batch_id("forged")
    body, headers = webhook("batch.completed", forged_id, secret=other)
    forged = httpx.post(signed_gateway.url + ROUTE, content=body, headers=headers)
    unsigned = httpx.post(signed_gateway.url + ROUTE, content=body)

    assert forged.status_code == unsigned.status_code == 400
    assert "signed" in forged.json()["detail"]
    assert heard(channel, forged_id) == []


def test_without_a_secret_the_route_is_not_there(gateway):
    body, headers = webhook("batch.completed", "batch_nobody")
    assert httpx.post(gateway.url + ROUTE, content=body, headers=headers).status_code == 404
