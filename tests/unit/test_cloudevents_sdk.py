"""Every kind of record we write reads right with the official CloudEvents SDK (ADR 18).

Each record is built the way its producer sends it (key, value, headers), then read with the
SDK's Kafka binding: its automatic mode detection (binary as soon as any `ce_` header is there)
and its explicit structured-mode readers, the current one and the legacy `cloudevents.v1` one.
"""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from cloudevents.core.bindings import kafka as ce_kafka
from cloudevents.core.exceptions import CloudEventValidationError
from cloudevents.v1 import kafka as ce_kafka_v1

from contracts import commands as cmd
from contracts.codec import decode, encode, kafka_headers, structured_headers
from contracts.dead_letter import DeadLetter
from contracts.envelope import Envelope, as_cloudevent, deterministic_id, new_message
from contracts.events import RunPaused, StageItemProcessed
from contracts.values import ItemRef, RunConfig
from orchestrator.decide import Outgoing
from stage_workers.outbox import enqueue, payload_bytes, sent_headers
from tests.support.outbox import OutboxConnection

NOW = datetime(2026, 11, 22, 8, 30, 15, 123456, tzinfo=UTC)
RUN = "run_20261122_083015_manual_abc123"


class Record(SimpleNamespace):
    """A Kafka record as a consumer sees it: key, value and the headers as a list of pairs."""

    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]


def message(payload, **kw) -> Envelope:
    base = {"account_id": 7, "site_id": 42, "run_id": RUN, "time": NOW}
    return new_message(payload, **(base | kw))


def start_run() -> Envelope:
    """A run command as the gateway sends it (api_gateway.run_commands)."""
    return message(
        cmd.StartRun(run_id=RUN, trigger="manual", config=RunConfig()),
        source="/automation/api-gateway",
        message_id=deterministic_id("start"),
    )


def process_batch() -> Envelope:
    return message(
        cmd.ProcessBatch(run_id=RUN, stage=4, batch_id="4-1", item_ids=(1, 2), lease_until=NOW),
        source="/automation/orchestrator",
        caused_by=start_run(),
        message_id=deterministic_id("batch"),
    )


def item_processed() -> Envelope:
    payload = StageItemProcessed(
        stage=4, batch_id="4-1", item=ItemRef(id=1, title="Cold brew"), total=2, credits=5
    )
    return message(
        payload,
        source="/automation/stage-workers",
        caused_by=process_batch(),
        message_id=deterministic_id("processed"),
    )


def direct(envelope: Envelope, key: bytes | None = None) -> Record:
    """Sent by a producer (gateway, orchestrator, scheduler): encode + kafka_headers."""
    return Record(key=key or envelope.key, value=encode(envelope), headers=kafka_headers(envelope))


def stored(envelope: Envelope) -> dict[str, Any]:
    conn = OutboxConnection()
    assert enqueue(conn, "run-events", envelope)  # type: ignore[arg-type]
    return conn.row


def relayed(row: dict[str, Any]) -> Record:
    """Sent by the outbox relay (stage workers' run events) from a stored row."""
    return Record(
        key=row["message_key"],
        value=payload_bytes(row["payload"]),
        headers=sent_headers(row["headers"], row["payload"].get("runid")),
    )


def refused(topic: str = "automation.stage-3.commands") -> DeadLetter:
    poison = SimpleNamespace(topic=topic, partition=2, offset=17, key=b"x", value=b"{not json")
    return DeadLetter.of("automation-stage-3", poison, "not JSON: Expecting value")


def letter_record(letter: DeadLetter, framework_headers: bool = False) -> Record:
    """Sent with aiokafka (by every service now) or, with the headers FastStream adds (an empty
    content-type, which ours replace, and a correlation id), by the stage workers before ADR 8's
    amendment: such letters stay on the topic."""
    headers = dict(letter.kafka_headers)
    if framework_headers:
        headers = {"content-type": b"", "correlation_id": b"f00d"} | headers
    return Record(key=letter.kafka_key, value=letter.encode(), headers=list(headers.items()))


ENVELOPES = {
    "run command (gateway)": lambda: direct(start_run()),
    "run event (orchestrator)": lambda: direct(
        message(RunPaused(), source="/automation/orchestrator", caused_by=start_run())
    ),
    "run event (outbox relay)": lambda: relayed(stored(item_processed())),
    "stage command (orchestrator)": lambda: direct(
        process_batch(), key=Outgoing(process_batch(), stage=4).key
    ),
}


def auto(record: Record):
    return ce_kafka.from_kafka_event(_sdk_message(record))


def structured(record: Record):
    return ce_kafka.from_structured_event(_sdk_message(record))


def _sdk_message(record: Record) -> ce_kafka.KafkaMessage:
    return ce_kafka.KafkaMessage(headers=dict(record.headers), key=record.key, value=record.value)


def legacy_structured(record: Record):
    message = ce_kafka_v1.KafkaMessage(dict(record.headers), record.key, record.value)
    return ce_kafka_v1.from_structured(message)


@pytest.mark.parametrize("read", [auto, structured], ids=["auto", "structured"])
@pytest.mark.parametrize("kind", ENVELOPES)
def test_the_sdk_reads_every_envelope_with_its_ids(kind, read):
    record = ENVELOPES[kind]()
    ours = decode(record.value)

    event = read(record)

    attributes = event.get_attributes()
    assert event.get_specversion() == "1.0"
    assert event.get_type() == ours.type
    assert event.get_source() == ours.source
    assert event.get_id() == str(ours.message_id)
    assert event.get_time() == ours.time == NOW
    assert event.get_subject() == RUN
    assert event.get_datacontenttype() == "application/json"
    assert {name: attributes[name] for name in EXTENSIONS} == {
        "accountid": 7,
        "siteid": 42,
        "runid": RUN,
        "causationid": str(ours.causation_id) if ours.causation_id else None,
        "correlationid": str(ours.correlation_id),
        "dataversion": ours.version,
    }
    assert attributes["partitionkey"] == record.key.decode()
    assert event.get_data() == as_cloudevent(ours)["data"]


EXTENSIONS = ("accountid", "siteid", "runid", "causationid", "correlationid", "dataversion")


@pytest.mark.parametrize("kind", ENVELOPES)
def test_the_legacy_sdk_structured_reader_reads_every_envelope(kind):
    record = ENVELOPES[kind]()
    ours = decode(record.value)
    event = legacy_structured(record)
    assert (event["type"], event["source"], event["id"]) == (
        ours.type,
        ours.source,
        str(ours.message_id),
    )
    assert (event["accountid"], event["siteid"], event["runid"]) == (7, 42, RUN)
    assert event["correlationid"] == str(ours.correlation_id)


def test_causation_and_correlation_follow_the_chain():
    event = auto(relayed(stored(item_processed())))
    assert event.get_extension("causationid") == str(process_batch().message_id)
    assert event.get_extension("correlationid") == str(start_run().message_id)


@pytest.mark.parametrize("read", [auto, structured], ids=["auto", "structured"])
@pytest.mark.parametrize("framework_headers", [False, True], ids=["aiokafka", "faststream"])
def test_the_sdk_reads_a_dead_letter(read, framework_headers):
    letter = refused()
    event = read(letter_record(letter, framework_headers))
    assert event.get_specversion() == "1.0"
    assert event.get_type() == "automation.dead-letter"
    assert event.get_source() == "/automation/consumers/automation-stage-3"
    assert event.get_id() == str(letter.message_id)
    assert event.get_time() == letter.refused_at
    assert event.get_subject() == "automation.stage-3.commands/2/17"
    assert event.get_extension("dataversion") == 1
    assert event.get_extension("partitionkey") == "x"
    assert DeadLetter.model_validate(event.get_data()) == letter


def test_a_dead_letter_is_the_same_message_when_sent_again():
    assert refused().message_id == refused().message_id
    assert refused().message_id != refused(topic="automation.run-commands").message_id


def test_dead_letters_read_back_in_both_shapes():
    letter = refused()
    assert DeadLetter.decode(letter.encode()) == letter
    assert DeadLetter.decode(letter.model_dump_json()) == letter  # written before ADR 18


@pytest.mark.parametrize("kind", [*ENVELOPES, "dead letter"])
def test_no_record_has_a_binary_mode_header(kind):
    record = letter_record(refused(), True) if kind == "dead letter" else ENVELOPES[kind]()
    names = [name for name, _ in record.headers]
    assert not [name for name in names if name.lower().startswith("ce_")]
    assert dict(record.headers)["content-type"] == b"application/cloudevents+json"
    assert "type" in names
    assert "traceparent" in names  # the trace context is a plain W3C header (ADR 20)


LEGACY_HEADERS = [["content-type", "application/cloudevents+json"], ["ce_type", "x.y"]]


def test_the_old_mix_of_modes_is_what_the_sdk_misread():
    """Why ADR 18: a structured value beside a `ce_type` header is read as binary mode."""
    record = direct(start_run())
    record.headers = [(n, v.encode()) for n, v in LEGACY_HEADERS]
    with pytest.raises(CloudEventValidationError):
        auto(record)


def test_outbox_rows_stored_by_an_older_release_go_out_in_structured_mode():
    row = stored(item_processed()) | {"headers": LEGACY_HEADERS}
    record = relayed(row)
    assert record.headers[:2] == [
        ("content-type", b"application/cloudevents+json"),
        ("type", b"x.y"),
    ]
    assert [name for name, _ in record.headers[2:]] == ["traceparent"]  # the run's (ADR 20)
    assert auto(record).get_id() == row["payload"]["id"]


def test_structured_headers_keep_other_headers():
    mixed = [("traceparent", b"00-ab-cd-01"), ("ce_source", b"/x"), ("ce_type", b"t")]
    assert structured_headers(mixed) == [("traceparent", b"00-ab-cd-01"), ("type", b"t")]


def test_the_record_keys_are_the_producers_keys():
    assert ENVELOPES["run command (gateway)"]().key == b"42"
    assert ENVELOPES["stage command (orchestrator)"]().key == f"{RUN}:4-1".encode()
    assert ENVELOPES["run event (outbox relay)"]().key == b"42"
    assert letter_record(refused()).key == b"x"
