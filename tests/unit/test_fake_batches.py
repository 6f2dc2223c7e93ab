"""The test provider's Batch API, driven through the `openai` SDK as the workers would: upload,
create, wait, read the output and error files; partial errors, expiry, cancel, listing by
metadata, an outage, and the signed `batch.completed` webhook."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import openai
import pytest
from standardwebhooks.webhooks import Webhook

from tests.support.fake_openai import FakeOpenAI, ManualClock

SECRET = "whsec_" + "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"  # base64 of a 24-byte secret


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1000.0)


@pytest.fixture
def fake(clock: ManualClock) -> Iterator[FakeOpenAI]:
    server = FakeOpenAI(clock).start()
    server.batches.completion_seconds = 60
    yield server
    server.stop()


@pytest.fixture
def client(fake: FakeOpenAI) -> openai.OpenAI:
    return openai.OpenAI(base_url=fake.base_url, api_key="test", max_retries=0)


def chat_line(custom_id: str, topic: str) -> dict:
    body = {
        "model": "gpt-4.1-mini",
        "messages": [{"role": "user", "content": f"Write an article about {topic}."}],
        "max_completion_tokens": 400,
    }
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}


def submit(client: openai.OpenAI, lines: list[dict], **metadata: str) -> str:
    content = "".join(json.dumps(line) + "\n" for line in lines).encode()
    upload = client.files.create(file=("requests.jsonl", content), purpose="batch")
    batch = client.batches.create(
        input_file_id=upload.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata=metadata or None,
    )
    assert batch.status == "in_progress"
    return batch.id


def jsonl(client: openai.OpenAI, file_id: str | None) -> dict[str, dict]:
    if file_id is None:
        return {}
    text = client.files.content(file_id).text
    return {line["custom_id"]: line for line in map(json.loads, text.splitlines())}


def test_a_batch_is_answered_once_due_with_the_synchronous_content(client, fake, clock):
    lines = [chat_line(f"item-{n}", topic) for n, topic in enumerate(["tea", "coffee", "cocoa"])]
    batch_id = submit(client, lines, run="r1", stage="4")

    clock.advance(59)
    assert client.batches.retrieve(batch_id).status == "in_progress"
    clock.advance(1)
    batch = client.batches.retrieve(batch_id)

    assert batch.status == "completed" and batch.error_file_id is None
    assert batch.request_counts.model_dump() == {"total": 3, "completed": 3, "failed": 0}
    outputs = jsonl(client, batch.output_file_id)
    assert set(outputs) == {"item-0", "item-1", "item-2"}
    answer = outputs["item-1"]["response"]["body"]
    synchronous = client.chat.completions.create(**lines[1]["body"])
    assert answer["choices"][0]["message"]["content"] == synchronous.choices[0].message.content
    assert answer["usage"]["completion_tokens"] > 0
    assert fake.stats()["batch_answers"] == 3 and fake.stats()["batches"] == 1


def test_failing_requests_and_expiry_land_in_the_error_file(client, fake, clock):
    fake.batches.failing_ids = {"item-1"}
    fake.batches.expire_after = 3
    batch_id = submit(client, [chat_line(f"item-{n}", f"topic {n}") for n in range(5)])
    clock.advance(60)

    batch = client.batches.retrieve(batch_id)
    assert batch.status == "expired" and batch.expired_at is not None
    assert batch.request_counts.model_dump() == {"total": 5, "completed": 2, "failed": 1}
    assert set(jsonl(client, batch.output_file_id)) == {"item-0", "item-2"}
    errors = jsonl(client, batch.error_file_id)
    assert errors["item-1"]["response"]["status_code"] == 500
    assert {errors[i]["error"]["code"] for i in ("item-3", "item-4")} == {"batch_expired"}


def test_a_cancelled_batch_keeps_only_what_was_done(client, fake, clock):
    batch_id = submit(client, [chat_line("only", "rain")])
    assert client.batches.cancel(batch_id).status == "cancelling"
    batch = client.batches.retrieve(batch_id)
    assert batch.status == "cancelled" and batch.output_file_id is None
    assert jsonl(client, batch.error_file_id)["only"]["error"]["code"] == "batch_cancelled"
    with pytest.raises(openai.ConflictError):
        client.batches.cancel(batch_id)


def test_batches_are_listed_newest_first_with_their_metadata(client):
    first = submit(client, [chat_line("a", "x")], run="r1", stage="2")
    second = submit(client, [chat_line("a", "x")], run="r1", stage="3")
    listed = list(client.batches.list(limit=1))  # the SDK pages through `after`
    assert [b.id for b in listed] == [second, first]
    assert [b.metadata["stage"] for b in listed] == ["3", "2"]


def test_bad_input_is_refused_with_openai_errors(client):
    upload = client.files.create(file=("x.jsonl", b"not json\n"), purpose="batch")
    with pytest.raises(openai.BadRequestError, match="JSONL"):
        client.batches.create(
            input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
    twice = [chat_line("same", "a"), chat_line("same", "b")]
    with pytest.raises(openai.BadRequestError, match="unique"):
        submit(client, twice)


def test_an_outage_covers_the_batch_api(client, fake):
    batch_id = submit(client, [chat_line("a", "x")])
    fake.outage(503)
    with pytest.raises(openai.InternalServerError):
        client.batches.retrieve(batch_id)
    fake.outage(None)
    assert client.batches.retrieve(batch_id).id == batch_id


def test_the_end_of_a_batch_is_sent_as_a_signed_webhook(client, fake, clock):
    received: list[tuple[dict, bytes]] = []
    arrived = threading.Event()

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            received.append((dict(self.headers), body))
            self.send_response(200)
            self.end_headers()
            arrived.set()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        fake.batches.webhook = (f"http://127.0.0.1:{server.server_address[1]}/", SECRET)
        batch_id = submit(client, [chat_line("a", "x")])
        clock.advance(60)
        client.batches.retrieve(batch_id)
        assert arrived.wait(10), "no webhook arrived"
    finally:
        server.shutdown()
        server.server_close()

    headers, body = received[0]
    event = Webhook(SECRET).verify(body, {k.lower(): v for k, v in headers.items()})
    assert event["type"] == "batch.completed" and event["data"]["id"] == batch_id
