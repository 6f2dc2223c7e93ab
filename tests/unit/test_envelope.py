from uuid import UUID

import pytest

from contracts.codec import UnreadableMessage, decode, encode, kafka_headers
from contracts.envelope import as_cloudevent, new_message
from contracts.events import RunPaused, RunStarted
from contracts.tracing import run_root, run_trace_id
from contracts.values import RunConfig

CLOUDEVENTS_REQUIRED = {"specversion", "id", "source", "type"}


def run_root_span_hex(run_id: str) -> str:
    return f"{run_root(run_id).span_id:016x}"


def started(**kw):
    return new_message(
        RunStarted(trigger="manual", config=RunConfig(stage_concurrency=2)),
        source="/automation/orchestrator",
        account_id=1,
        site_id=2,
        run_id="run_a",
        **kw,
    )


def test_envelope_round_trips_with_typed_payload():
    message = started()
    back = decode(encode(message))
    assert back == message
    assert isinstance(back.data, RunStarted)
    assert back.data.config.stage_concurrency == 2


def test_envelope_is_a_structured_cloudevent():
    event = as_cloudevent(started())
    assert event.keys() >= CLOUDEVENTS_REQUIRED
    assert event["specversion"] == "1.0"
    assert event["type"] == "automation.run.started"
    assert event["subject"] == "run_a"
    assert event["datacontenttype"] == "application/json"
    extensions = {"dataversion", "accountid", "siteid", "runid", "causationid", "correlationid"}
    assert extensions <= event.keys()
    assert all(name.isalnum() and name.islower() for name in extensions)
    assert kafka_headers(started()) == [
        ("content-type", b"application/cloudevents+json"),
        ("type", b"automation.run.started"),  # not `ce_type`: that would mean binary mode
        # Untraced, the run's root context (ADR 20): trace and span ids from the run id.
        ("traceparent", f"00-{run_trace_id('run_a')}-{run_root_span_hex('run_a')}-01".encode()),
    ]


def test_caused_message_carries_causation_and_correlation():
    first = started()
    second = new_message(
        RunPaused(), source="/x", account_id=1, site_id=2, run_id="run_a", caused_by=first
    )
    third = new_message(
        RunPaused(), source="/x", account_id=1, site_id=2, run_id="run_a", caused_by=second
    )
    assert first.correlation_id == first.message_id and first.causation_id is None
    assert second.causation_id == first.message_id
    assert third.causation_id == second.message_id
    assert third.correlation_id == first.message_id


def test_site_is_the_kafka_key():
    assert started().key == b"2"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (None, "empty record"),
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"type": "automation.nope"}', "unknown message type"),
        (b'{"type": "automation.run.started", "dataversion": 1}', "missing dataversion or data"),
    ],
)
def test_unreadable_records_say_why(raw, reason):
    with pytest.raises(UnreadableMessage, match=reason):
        decode(raw)


def test_invalid_payload_names_the_field():
    document = as_cloudevent(started())
    document["data"]["trigger"] = "sometimes"
    import json

    with pytest.raises(UnreadableMessage, match="trigger"):
        decode(json.dumps(document).encode())


def test_message_ids_are_uuids():
    assert isinstance(started().message_id, UUID)
