"""The run watch without a broker: which records say a run stopped or went on (the latest
winning), and what a process holds of them when a partition moves away."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from aiokafka.structs import ConsumerRecord, TopicPartition

from contracts.codec import decode, encode, headers_for, kafka_headers
from contracts.envelope import new_message
from contracts.events import RunCancelled, RunPaused, RunResumed, StageItemProcessed
from contracts.values import ItemRef
from stage_workers import run_watch
from stage_workers.run_watch import HeardStops, Watching, stops_in


def record(payload, run_id: str, offset: int = 0, headers=None) -> ConsumerRecord:
    message = new_message(payload, source="/tests", account_id=1, site_id=1, run_id=run_id)
    return ConsumerRecord(
        topic="run-events",
        partition=0,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=b"1",
        value=encode(message),
        checksum=None,
        serialized_key_size=1,
        serialized_value_size=1,
        headers=kafka_headers(message) if headers is None else headers,
    )


def test_the_latest_event_per_run_wins():
    records = [
        record(RunPaused(), "run_a", 0),
        record(RunResumed(), "run_a", 1),
        record(RunCancelled(), "run_b", 2),
        record(RunPaused(), "run_c", 3),
    ]
    assert stops_in(records) == {"run_a": False, "run_b": True, "run_c": True}


def test_other_events_and_garbage_say_nothing():
    processed = StageItemProcessed(
        stage=2, batch_id="b", item=ItemRef(id=1, title="x"), total=1, credits=0, outputs=1
    )
    garbage = replace(record(RunPaused(), "run_a"), value=b"{not json")
    assert stops_in([record(processed, "run_a"), garbage]) == {}
    # A record without the type header is not parsed at all.
    assert stops_in([record(RunPaused(), "run_a", headers=[])]) == {}


def legacy_headers(type_: str) -> list[tuple[str, bytes]]:
    """What records written before ADR 18 carry (and stay on the run-events topic forever)."""
    return [("content-type", b"application/cloudevents+json"), ("ce_type", type_.encode())]


def test_records_with_the_old_type_header_are_still_heard():
    records = [
        record(RunPaused(), "run_a", 0, headers=legacy_headers(RunPaused.TYPE)),
        record(RunCancelled(), "run_b", 1, headers=legacy_headers(RunCancelled.TYPE)),
        record(RunResumed(), "run_a", 2),  # new header, after the old ones
    ]
    assert stops_in(records) == {"run_a": False, "run_b": True}


@pytest.mark.parametrize("old", [False, True], ids=["type", "ce_type"])
def test_only_records_whose_header_names_a_run_control_event_are_decoded(monkeypatch, old):
    processed = StageItemProcessed(
        stage=2, batch_id="b", item=ItemRef(id=1, title="x"), total=1, credits=0, outputs=1
    )
    headers = legacy_headers if old else headers_for
    records = [
        record(processed, "run_a", 0, headers=headers(processed.TYPE)),
        record(RunPaused(), "run_a", 1, headers=headers(RunPaused.TYPE)),
    ]
    decoded = []

    def counting_decode(raw):
        decoded.append(raw)
        return decode(raw)

    monkeypatch.setattr(run_watch, "decode", counting_decode)
    assert stops_in(records) == {"run_a": True}
    assert decoded == [records[1].value]


def test_heard_stops_hold_the_latest_runs_and_forget_the_oldest_once_trimmed():
    heard = HeardStops(capacity=2)
    heard.update({"run_a": True, "run_b": False}, partition=0)
    heard.update({"run_a": False}, partition=0)  # a newer stop on run_a makes it the newest
    heard.update({"run_c": True}, partition=0)
    assert len(heard) == 3  # nothing is forgotten before the table has them
    heard.trim()
    assert len(heard) == 2
    assert heard.get("run_b", True) is True  # forgotten: the table answers
    assert heard.get("run_a", True) is False
    assert heard.get("run_c", False) is True


class Consumer:
    """Stands in for the run-events consumer: hands out the batches given, one per poll, and
    lets the test move a partition away in between, as a rebalance does."""

    def __init__(self, batches: list[dict], between=None) -> None:
        self.batches, self.between = batches, between or {}
        self.polls = 0

    async def getmany(self, timeout_ms: int, max_records: int) -> dict:
        await asyncio.sleep(0)  # a poll yields, as the real one does
        if self.polls in self.between:
            await self.between[self.polls]()
        self.polls += 1
        return self.batches.pop(0) if self.batches else {}

    async def commit(self) -> None:
        pass


def watch_until_read(consumer: Consumer, watching: Watching, written: list) -> None:
    async def run() -> None:
        stopping = asyncio.Event()

        async def write(stops) -> None:
            written.append(dict(stops))

        task = asyncio.create_task(run_watch.watch_runs(consumer, watching, write, stopping))
        while consumer.batches or consumer.polls <= max(consumer.between, default=0):
            await asyncio.sleep(0)
        stopping.set()
        await task

    asyncio.run(run())


def test_a_partition_moved_to_another_process_leaves_its_runs_to_the_table():
    """Process A heard run_a paused on partition 0, then partition 0 moved to process B, which
    heard run_a resumed and wrote it to the table: A must ask the table, not what it heard."""
    p0, p1 = TopicPartition("run-events", 0), TopicPartition("run-events", 1)
    heard = HeardStops()
    watching = Watching(heard)
    moved = lambda: watching.on_partitions_revoked({p0})  # noqa: E731
    consumer = Consumer(
        [{p0: [record(RunPaused(), "run_a")], p1: [record(RunPaused(), "run_b")]}],
        between={1: moved},
    )
    written: list = []
    watch_until_read(consumer, watching, written)

    assert written == [{"run_a": True, "run_b": True}]
    assert heard.get("run_a") is None  # the table answers for it now
    assert heard.get("run_b") is True  # partition 1 is still read here
