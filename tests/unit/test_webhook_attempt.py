"""A delivery's attempts end to end without a database: signed with the secrets valid at each
attempt, verified by the receiver with the `standardwebhooks` package, retried on the schedule,
and delivered once in effect (every attempt carries the same webhook-id)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest
from standardwebhooks import Webhook

from api_gateway.webhooks import client, signing
from api_gateway.webhooks.addresses import AddressPolicy
from api_gateway.webhooks.attempt import NO_SECRET, attempt
from api_gateway.webhooks.retry import SCHEDULE
from api_gateway.webhooks.signing import Secret
from api_gateway.webhooks.store import Claimed
from tests.support.webhook_mock import (
    Receiver,
    ReceiverClock,
    hold_receiver_clock,
    http,
    resolver,
)

T0 = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
POLICY = AddressPolicy()
OLD = signing.new_secret(lambda n: b"\x01" * n)
NEW = signing.new_secret(lambda n: b"\x02" * n)
BODY = json.dumps({"type": "run.completed", "timestamp": "2026-12-06T12:00:00Z", "data": {}})
CLAIMED = Claimed(
    delivery_id=UUID("5d3c1d7e-2b8e-5f0e-a1a2-0c3d4e5f6a7b"),
    endpoint_id=3,
    url="https://hooks.example/in",
    event_type="run.completed",
    body=BODY.encode(),
    attempt=1,
    lease_token=UUID("00000000-0000-4000-8000-000000000001"),
    failing_since=None,
    secrets=(Secret(NEW, T0 - timedelta(days=1)),),
)


@pytest.fixture(autouse=True)
def receiver_clock(monkeypatch: pytest.MonkeyPatch) -> type[ReceiverClock]:
    return hold_receiver_clock(monkeypatch, T0)


def pool_for(receiver: Receiver):
    return client.new_pool(POLICY, 4, resolver(**{"hooks.example": ["93.184.215.14"]}), receiver)


async def test_fails_three_times_then_succeeds_and_is_received_once_in_effect(receiver_clock):
    receiver = Receiver(http(503), http(500), http(503), http(200))
    claimed, now, times = CLAIMED, T0, []
    async with pool_for(receiver) as pool:
        while True:
            receiver_clock.at = now
            attempted, step = await attempt(claimed, pool, POLICY, now)
            times.append(now)
            if step.delivery != "pending":
                break
            claimed = replace(
                claimed, attempt=claimed.attempt + 1, failing_since=step.failing_since
            )
            now = step.next_attempt_at
    assert step.delivery == "delivered" and attempted.outcome == "delivered"
    assert [t - T0 for t in times] == [
        timedelta(0),
        SCHEDULE[1],
        SCHEDULE[1] + SCHEDULE[2],
        SCHEDULE[1] + SCHEDULE[2] + SCHEDULE[3],
    ]
    seen: set[str] = set()
    effects = 0
    for request, at in zip(receiver.requests, times, strict=True):
        receiver_clock.at = at  # each verified when it arrived
        assert Webhook(NEW).verify(request.body, request.headers) == json.loads(BODY)
        if request.headers["webhook-id"] not in seen:  # what the spec asks receivers to do
            seen.add(request.headers["webhook-id"])
            effects += 1
    assert seen == {str(CLAIMED.delivery_id)} and effects == 1


async def test_during_a_rotation_a_receiver_with_either_secret_accepts_the_attempt():
    held = [Secret(OLD, T0 - timedelta(days=30))]
    rotated = tuple(signing.rotate(held, NEW, T0 - timedelta(hours=1)))
    receiver = Receiver(http(204))
    async with pool_for(receiver) as pool:
        _, step = await attempt(replace(CLAIMED, secrets=rotated), pool, POLICY, T0)
    assert step.delivery == "delivered"
    [request] = receiver.requests
    for secret in (OLD, NEW):
        Webhook(secret).verify(request.body, request.headers)


async def test_without_a_valid_secret_nothing_is_sent():
    expired = (Secret(NEW, T0 - timedelta(days=2), T0 - timedelta(days=1)),)
    receiver = Receiver(http(200))
    async with pool_for(receiver) as pool:
        attempted, step = await attempt(replace(CLAIMED, secrets=expired), pool, POLICY, T0)
    assert receiver.connected == []
    assert (attempted.outcome, attempted.error) == ("failed", NO_SECRET)
    assert step.delivery == "pending" and step.failing_since == T0


async def test_a_410_disables_the_endpoint_and_the_log_keeps_the_answer():
    receiver = Receiver(http(410, body=b"this hook was removed"))
    async with pool_for(receiver) as pool:
        attempted, step = await attempt(CLAIMED, pool, POLICY, T0)
    assert (attempted.status, attempted.response) == (410, "this hook was removed")
    assert step.delivery == "failed" and step.disable == "the endpoint answered 410 Gone"


async def test_an_endpoint_whose_name_now_points_inside_is_refused_and_retried():
    receiver = Receiver(http(200))
    inside = client.new_pool(POLICY, 4, resolver(**{"hooks.example": ["127.0.0.1"]}), receiver)
    async with inside as pool:
        attempted, step = await attempt(CLAIMED, pool, POLICY, T0)
    assert attempted.outcome == "refused" and "loopback" in (attempted.error or "")
    assert receiver.connected == []
    assert step.delivery == "pending" and step.next_attempt_at == T0 + SCHEDULE[1]
