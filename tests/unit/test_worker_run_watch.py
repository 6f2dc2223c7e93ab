"""The run watch's pure part: which records say a run stopped or went on, the latest winning."""

from __future__ import annotations

from dataclasses import replace

import pytest
from aiokafka.structs import ConsumerRecord

from contracts.codec import decode, encode, headers_for, kafka_headers
from contracts.envelope import new_message
from contracts.events import RunCancelled, RunPaused, RunResumed, StageItemProcessed
from contracts.values import ItemRef
from stage_workers import run_watch
from stage_workers.run_watch import HeardStops, stops_in


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
    heard.update({"run_a": True, "run_b": False})
    heard["run_a"] = False  # a newer stop on run_a makes it the newest
    heard["run_c"] = True
    assert len(heard) == 3  # nothing is forgotten before the table has them
    heard.trim()
    assert len(heard) == 2
    assert heard.get("run_b", True) is True  # forgotten: the table answers
    assert heard.get("run_a", True) is False
    assert heard.get("run_c", False) is True
