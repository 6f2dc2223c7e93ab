"""A contract message goes through the real broker and comes back with its envelope intact."""

from __future__ import annotations

import json
import subprocess

from contracts.codec import decode
from contracts.envelope import new_message
from contracts.events import StageItemProcessed
from contracts.topics import TOPICS
from contracts.values import ItemRef
from tests.support.kafka import end_offsets, publish, read_until, topic_configs


async def test_event_round_trips_through_kafka_with_envelope_intact(kafka_bootstrap, topics):
    original = new_message(
        StageItemProcessed(
            stage=4,
            batch_id="4-7",
            item=ItemRef(id=99, title="Cold brew ratio"),
            total=12,
            credits=5,
            outputs=1,
        ),
        source="/tests/roundtrip",
        account_id=3,
        site_id=1234,
        run_id="run_20261122_000000_manual_rt",
    )
    start = await end_offsets(kafka_bootstrap, topics.run_events)

    await publish(kafka_bootstrap, topics.run_events, original)
    records = await read_until(
        kafka_bootstrap,
        start,
        lambda rs: any(decode(r.value).message_id == original.message_id for r in rs),
    )

    mine = [r for r in records if decode(r.value).message_id == original.message_id]
    assert len(mine) == 1
    record = mine[0]
    assert decode(record.value) == original
    assert record.key == b"1234"
    assert dict(record.headers)["content-type"] == b"application/cloudevents+json"
    assert dict(record.headers)["type"] == b"automation.stage.item-processed"
    assert not [name for name, _ in record.headers if name.startswith("ce_")]  # structured only
    cloudevent = json.loads(record.value)
    assert cloudevent["specversion"] == "1.0" and cloudevent["runid"] == original.run_id


async def test_messages_of_one_site_keep_their_order_on_one_partition(kafka_bootstrap, topics):
    messages = [
        new_message(
            StageItemProcessed(stage=1, batch_id="1-1", item=ItemRef(id=i, title=str(i)), total=20),
            source="/tests",
            account_id=3,
            site_id=777,
            run_id="run_order",
        )
        for i in range(20)
    ]
    ids = {m.message_id for m in messages}
    start = await end_offsets(kafka_bootstrap, topics.run_events)
    await publish(kafka_bootstrap, topics.run_events, *messages)
    records = await read_until(
        kafka_bootstrap,
        start,
        lambda rs: sum(decode(r.value).message_id in ids for r in rs) == len(ids),
    )
    mine = [r for r in records if decode(r.value).message_id in ids]
    assert {r.partition for r in mine} == {mine[0].partition}
    assert [decode(r.value).message_id for r in mine] == [m.message_id for m in messages]


def test_kcat_lists_the_project_topics(kafka_bootstrap, topics, kcat):
    listing = subprocess.run(
        [kcat, "-b", kafka_bootstrap, "-L", "-J"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    on_broker = {t["topic"]: len(t["partitions"]) for t in json.loads(listing)["topics"]}
    for spec in (*TOPICS, *topics.specs()):
        assert on_broker.get(spec.name) == spec.partitions, spec.name


async def test_the_event_stream_is_kept_forever(kafka_bootstrap, topics):
    configs = await topic_configs(kafka_bootstrap, topics.run_events)
    assert configs["retention.ms"] == "-1"
    assert configs["retention.bytes"] == "-1"
    commands = await topic_configs(kafka_bootstrap, topics.run_commands)
    assert commands["retention.ms"] == str(7 * 24 * 3600 * 1000)
