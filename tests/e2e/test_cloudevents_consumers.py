"""A consumer that knows nothing of this system reads every record a real run leaves on every
topic: the official CloudEvents SDK with its automatic mode detection (binary as soon as any
`ce_` header is present, else structured), and kcat (ADR 18)."""

from __future__ import annotations

import json
import subprocess
import uuid
from datetime import datetime

from aiokafka import ConsumerRecord, TopicPartition
from cloudevents.core.bindings import kafka as ce_kafka

from contracts.codec import TYPE_HEADER, decode
from contracts.dead_letter import DeadLetter
from tests.support.kafka import end_offsets, publish_raw, read_until
from tests.support.pipeline import Pipeline, new_site

FAST = {"LEASE_SECONDS": "15", "TICK_SECONDS": "0.2"}


async def test_every_record_of_a_run_reads_with_the_cloudevents_sdk(
    db, services, kafka_bootstrap, topics, kcat
):
    services.start("orchestrator", "orchestrator", env=FAST)
    services.start("workers", "stage-worker", env={"OFFLINE_LATENCY_MS": "10"})
    names = [spec.name for spec in topics.specs()]
    starts = {name: await end_offsets(kafka_bootstrap, name) for name in names}

    pipeline = Pipeline(kafka_bootstrap, topics)
    site = new_site(db, keyword_count=10, credits=10_000)
    run_id = await pipeline.start(site)
    state = await pipeline.finished(run_id, timeout=300)
    assert state.status == "completed", state.error

    # The orchestrator and a stage worker each refuse a poison record: their letters count too.
    poisons = {
        topics.run_commands: f"not a CloudEvent {uuid.uuid4()}".encode(),
        topics.stage(3): f"not a CloudEvent {uuid.uuid4()}".encode(),
    }
    for topic, value in poisons.items():
        await publish_raw(kafka_bootstrap, topic, value)

    def refused(records) -> set[bytes]:
        return {DeadLetter.decode(r.value).value() for r in records} & {*poisons.values()}

    letters = await read_until(
        kafka_bootstrap, starts[topics.dead_letter], lambda rs: len(refused(rs)) == 2, timeout=60
    )
    assert refused(letters) == {*poisons.values()}

    read: dict[str, int] = dict.fromkeys(names, 0)
    run_topics = set()
    for name in names:
        for record in await every_record_since(kafka_bootstrap, starts[name]):
            if poisons.get(record.topic) == record.value:
                continue  # our own poison: the one record on purpose not a CloudEvent
            event = read_with_sdk(record)
            assert_same_attributes(event, record)
            read[name] += 1
            if name == topics.dead_letter:
                letter = DeadLetter.model_validate(event.get_data())
                assert event.get_id() == str(letter.message_id)
                assert event.get_source() == f"/automation/consumers/{letter.consumer}"
            elif event.get_extension("runid") == run_id:
                assert event.get_extension("accountid") == site.account_id
                assert event.get_extension("siteid") == site.site_id
                assert decode(record.value).run_id == run_id  # and we read it as the SDK does
                run_topics.add(name)
    assert run_topics == set(names) - {topics.dead_letter}, "the run used every other topic"
    assert read[topics.dead_letter] >= 2

    # kcat shows the same records, headers and value as they are, and the SDK reads what it shows.
    shown = kcat_records(kcat, kafka_bootstrap, topics.run_events, starts[topics.run_events])
    assert len(shown) == read[topics.run_events]
    for record in shown:
        event = ce_kafka.from_kafka_event(
            ce_kafka.KafkaMessage(record["headers"], record["key"], record["payload"].encode())
        )
        assert record["headers"][TYPE_HEADER] == event.get_type().encode()
        assert event.get_source() and event.get_id() and event.get_extension("correlationid")


def read_with_sdk(record: ConsumerRecord):
    headers = dict(record.headers)
    assert not [name for name in headers if name.lower().startswith("ce_")], record
    assert headers["content-type"] == b"application/cloudevents+json", record
    event = ce_kafka.from_kafka_event(ce_kafka.KafkaMessage(headers, record.key, record.value))
    assert headers[TYPE_HEADER] == event.get_type().encode()
    return event


def assert_same_attributes(event, record: ConsumerRecord) -> None:
    """What the SDK read is what the value holds: every attribute, our extensions included."""
    value = json.loads(record.value)
    attributes = event.get_attributes()
    assert event.get_specversion() == value["specversion"] == "1.0"
    assert event.get_time() == datetime.fromisoformat(value["time"])
    for name in value.keys() - {"data", "time"}:
        assert attributes[name] == value[name], (name, record.topic, record.offset)
    assert attributes.get("partitionkey") == (record.key.decode() if record.key else None)
    assert event.get_data() == value["data"]


async def every_record_since(bootstrap: str, start: dict[TopicPartition, int]):
    ends = await end_offsets(bootstrap, next(iter(start)).topic)
    total = sum(ends[p] - start.get(p, 0) for p in ends)
    records = await read_until(bootstrap, start, lambda rs: len(rs) >= total, timeout=60)
    assert len(records) == total
    return records


def kcat_records(kcat: str, bootstrap: str, topic: str, start: dict[TopicPartition, int]):
    out = subprocess.run(
        [kcat, "-b", bootstrap, "-C", "-t", topic, "-o", "beginning", "-e", "-q", "-J"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    shown = []
    for line in out.splitlines():
        record = json.loads(line)
        if record["offset"] < start[TopicPartition(topic, record["partition"])]:
            continue
        headers = record.get("headers") or {}
        if isinstance(headers, list):  # some kcat builds list them flat: name, value, ...
            headers = dict(zip(headers[::2], headers[1::2], strict=True))
        record["headers"] = {name: value.encode() for name, value in headers.items()}
        shown.append(record)
    return shown
