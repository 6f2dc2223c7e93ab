"""One attempt over HTTP, against a network backend that plays the receiver: the connection
goes to the address that was checked, never to one the check refused; the answer's status,
Retry-After and first bytes are kept, and a slow or silent receiver is a failed attempt."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
import standardwebhooks.webhooks as reference
from standardwebhooks import Webhook

from api_gateway.webhooks import client, signing
from api_gateway.webhooks.addresses import AddressPolicy, Target
from tests.support.webhook_mock import Receiver, http, resolver

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
STRICT = AddressPolicy()
SECRET = signing.new_secret(lambda n: b"\x05" * n)
BODY = json.dumps({"type": "run.completed", "timestamp": "2026-12-06T12:00:00Z", "data": {}})


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        self.now += 0.04  # each reading: 40 ms later
        return self.now


async def attempt(
    receiver: Receiver, url: str, policy: AddressPolicy = STRICT, timeout: float = 15.0, **table
):
    pool = client.new_pool(policy, 4, resolver(**table), receiver)
    headers = signing.headers("wh-1", NOW, BODY.encode(), [SECRET])
    async with pool:
        return await client.send(pool, url, headers, BODY.encode(), policy, Clock(), timeout)


async def test_a_2xx_is_delivered_and_the_request_is_a_signed_post(monkeypatch):
    receiver = Receiver(http(204))
    sent = await attempt(
        receiver, "https://hooks.example/in?k=1", **{"hooks.example": ["93.184.215.14"]}
    )
    assert sent.outcome == "delivered" and sent.answer.status == 204
    assert sent.latency_ms == 40 and sent.response is None
    assert receiver.connected == [("93.184.215.14", 443)]  # the address that was checked
    [request] = receiver.requests
    assert request.line == "POST /in?k=1 HTTP/1.1"
    received, body = request.headers, request.body
    assert received["host"] == "hooks.example"
    assert received["content-length"] == str(len(BODY))
    assert received["content-type"] == "application/json"
    monkeypatch.setattr(reference, "datetime", _clock_at(NOW))
    assert Webhook(SECRET).verify(body, received) == json.loads(BODY)


def _clock_at(at: datetime):
    class Fixed(datetime):
        @classmethod
        def now(cls, tz=None):
            return at.astimezone(tz)

    return Fixed


async def test_a_name_that_resolves_inside_is_refused_without_connecting():
    receiver = Receiver(http(200))
    sent = await attempt(receiver, "https://sneaky.example/", **{"sneaky.example": ["10.0.0.7"]})
    assert sent.outcome == "refused" and sent.answer.status is None
    assert "10.0.0.7, a private address" in (sent.answer.error or "")
    assert receiver.connected == []


async def test_a_refused_url_never_reaches_the_network():
    receiver = Receiver(http(200))
    sent = await attempt(receiver, "http://hooks.example/", **{"hooks.example": ["93.184.215.14"]})
    assert (sent.outcome, sent.latency_ms) == ("refused", 0)
    assert "https" in (sent.answer.error or "") and receiver.connected == []


async def test_the_test_setting_reaches_a_local_receiver_on_its_port():
    receiver = Receiver(http(200))
    local = AddressPolicy.of(allow_http=True, allowed_networks=["127.0.0.0/8"])
    sent = await attempt(receiver, "http://localhost:8099/hook", local, localhost=["127.0.0.1"])
    assert sent.outcome == "delivered"
    assert receiver.connected == [("127.0.0.1", 8099)]
    assert receiver.requests[0].headers["host"] == "localhost:8099"


async def test_the_next_address_is_tried_when_one_does_not_connect():
    receiver = Receiver(http(200), refuse=["2606:4700::1111"])
    table = {"two.example": ["2606:4700::1111", "93.184.215.14"]}
    sent = await attempt(receiver, "https://two.example/", **table)
    assert sent.outcome == "delivered"
    assert receiver.connected == [("2606:4700::1111", 443), ("93.184.215.14", 443)]


async def test_a_failure_keeps_the_status_retry_after_and_the_first_bytes():
    answer = http(429, "Retry-After: 120", body=b"slow down " * 1000)
    sent = await attempt(Receiver(answer), "https://h.example/", **{"h.example": ["8.8.8.8"]})
    assert sent.outcome == "failed"
    assert (sent.answer.status, sent.answer.retry_after) == (429, "120")
    assert sent.response is not None and len(sent.response) == client.RESPONSE_CAP
    assert sent.response.startswith("slow down")


async def test_a_nul_in_the_answer_is_kept_as_a_replacement_character():
    """PostgreSQL's text cannot hold NUL: the attempt could not be recorded, and the delivery
    would be claimed and sent again every lease, with no end."""
    answer = http(200, body=b"ok\x00done")
    sent = await attempt(Receiver(answer), "https://h.example/", **{"h.example": ["8.8.8.8"]})
    assert sent.outcome == "delivered" and sent.response == "ok\ufffddone"


async def test_a_redirect_is_not_followed():
    answer = http(307, "Location: https://169.254.169.254/latest/meta-data/")
    receiver = Receiver(answer)
    sent = await attempt(receiver, "https://r.example/", **{"r.example": ["8.8.8.8"]})
    assert sent.outcome == "failed" and sent.answer.status == 307
    assert receiver.connected == [("8.8.8.8", 443)]


async def test_a_receiver_that_never_answers_is_a_failed_attempt():
    receiver = Receiver(hang=True)
    sent = await attempt(receiver, "https://h.example/", timeout=0.01, **{"h.example": ["8.8.8.8"]})
    assert sent.outcome == "failed" and sent.answer.status is None
    assert sent.answer.error == "no answer within 0.01 s"


async def test_a_dropped_connection_is_a_failed_attempt():
    receiver = Receiver(b"HTTP/1.1 2")  # cut off inside the status line
    sent = await attempt(receiver, "https://h.example/", **{"h.example": ["8.8.8.8"]})
    assert sent.outcome == "failed" and sent.answer.status is None
    assert (
        sent.answer.error == "RemoteProtocolError: Server disconnected without sending a response."
    )


@pytest.mark.parametrize(
    ("host", "port", "scheme", "header"),
    [
        ("hooks.example", 443, "https", "hooks.example"),
        ("hooks.example", 8443, "https", "hooks.example:8443"),
        ("hooks.example", 80, "http", "hooks.example"),
        ("::1", 8080, "http", "[::1]:8080"),
    ],
)
def test_the_host_header(host: str, port: int, scheme: str, header: str):
    target = Target(url="", scheme=scheme, host=host, port=port)
    assert client.host_header(target) == header
