"""The live sink's loop, without a broker: when it writes what it has folded. A stand-in consumer
hands it the run's events a few at a time; a stand-in output notes what each write holds."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from aiokafka import ConsumerRecord, TopicPartition

from contracts import events as ev
from contracts.codec import encode
from contracts.envelope import Envelope
from contracts.run_rows import stage_row
from contracts.topics import Topics
from contracts.values import ItemRef
from log_sink.projection import Projector
from log_sink.runner import LiveSink
from tests.support.runs import T0, Clock, message

RUN = "run_20261102_090000_manual_live"
TOPICS = Topics()
PARTITION = TopicPartition(TOPICS.run_events, 0)
TASKS = (ItemRef(id=31, title="Write: A"), ItemRef(id=32, title="Write: B"))
LEASE = T0 + timedelta(hours=1)


def record(offset: int, message: Envelope) -> ConsumerRecord:
    value = encode(message)
    return ConsumerRecord(
        topic=PARTITION.topic,
        partition=PARTITION.partition,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=None,
        value=value,
        checksum=None,
        serialized_key_size=0,
        serialized_value_size=len(value),
        headers=(),
    )


class Consumer:
    """One partition; each poll hands over the next arrival. The broker's end of the log is
    either what has arrived so far (the sink keeps up) or everything (the sink is behind)."""

    def __init__(self, arrivals: list[list[Envelope]], stopping: asyncio.Event, behind: bool):
        self.arrivals = arrivals
        self.stopping = stopping
        self.read = 0
        self.end_of_log = sum(map(len, arrivals)) if behind else 0

    def subscribe(self, topics: list[str], listener: object) -> None:
        pass

    async def getmany(self, timeout_ms: int, max_records: int) -> dict:
        if not self.arrivals:
            self.stopping.set()
            return {}
        messages = self.arrivals.pop(0)
        records = [record(self.read + n, m) for n, m in enumerate(messages)]
        self.read += len(records)
        self.end_of_log = max(self.end_of_log, self.read)
        return {PARTITION: records}

    def assignment(self) -> set[TopicPartition]:
        return {PARTITION}

    async def position(self, tp: TopicPartition) -> int:
        return self.read

    def highwater(self, tp: TopicPartition) -> int:
        return self.end_of_log

    async def commit(self, offsets: dict) -> None:
        pass


class Outputs:
    """Notes, per write, what the read model would show as in progress in stage 4."""

    def __init__(self) -> None:
        self.in_progress: list[list[int]] = []

    def flush(self, projector: Projector, replaying: frozenset[int]) -> bool:
        if not projector.dirty:
            return True
        view = projector.runs[RUN]
        row = stage_row(RUN, view.state.stage(4))
        self.in_progress.append([item["id"] for item in row["currently_processing"]])
        projector.dirty.clear()
        return True


def arrivals() -> list[list[Envelope]]:
    """Stage 4 one task at a time: each arrival is what the stream holds next."""
    clock, seq = Clock(), iter(range(100))

    def m(payload) -> Envelope:
        return message(payload, RUN, clock, seq=next(seq))

    def task(batch: str, item: ItemRef) -> list[list[Envelope]]:
        dispatched = ev.StageBatchDispatched(
            stage=4, batch_id=batch, item_ids=(item.id,), lease_until=LEASE
        )
        processed = ev.StageItemProcessed(stage=4, batch_id=batch, item=item, total=2)
        completed = ev.StageBatchCompleted(stage=4, batch_id=batch, processed=1, failed=0)
        return [[m(dispatched)], [m(processed), m(completed)]]

    return [
        [m(ev.RunStarted(trigger="manual")), m(ev.StageStarted(stage=4, items=TASKS))],
        *task("4-1", TASKS[0]),
        *task("4-2", TASKS[1]),
    ]


def sink_writes(behind: bool, flush_interval: float) -> list[list[int]]:
    async def run() -> list[list[int]]:
        stopping = asyncio.Event()
        outputs = Outputs()
        consumer = Consumer(arrivals(), stopping, behind)
        # A clock that stands still: only the interval's length decides, never the machine's
        # uptime (time.monotonic() starts near 0 on a freshly booted machine).
        sink = LiveSink(
            consumer, None, outputs, TOPICS, "g", flush_interval, 1.0, clock=lambda: 0.0
        )
        await sink.run(stopping)
        return outputs.in_progress

    return asyncio.run(run())


def test_a_sink_that_keeps_up_writes_each_state_the_run_rests_in():
    """However soon the next event follows (a fast AI), the task in flight reaches the read
    model: the sink writes whenever it has read all there is, not at the next quiet poll."""
    writes = sink_writes(behind=False, flush_interval=3600)
    assert writes == [[], [31], [], [32], []]


def test_a_sink_that_is_behind_writes_once_per_interval_until_it_has_caught_up():
    """Behind, it batches: the first write is due at once, the next when it reaches the end."""
    assert sink_writes(behind=True, flush_interval=3600) == [[], []]
