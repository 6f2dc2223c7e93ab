"""The worker's dispatch, without a broker: commits never pass an unfinished record, runs take
turns, and both limits hold."""

from __future__ import annotations

import asyncio

from aiokafka import ConsumerRecord

from stage_workers.pump import Dispatcher, Limits, Watermark, run_of


def record(offset: int, key: str, partition: int = 0) -> ConsumerRecord:
    return ConsumerRecord(
        topic="stage-4",
        partition=partition,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=key.encode(),
        value=b"{}",
        checksum=None,
        serialized_key_size=len(key),
        serialized_value_size=2,
        headers=(),
    )


async def drained(dispatcher: Dispatcher, timeout: float = 5.0) -> None:
    """Wait until every job the dispatcher holds has run to its end: its tasks, and those each
    starts as it ends (a job's task starts the next ones before it finishes)."""
    try:
        async with asyncio.timeout(timeout):
            while dispatcher.tasks:
                await asyncio.wait(set(dispatcher.tasks))
    except TimeoutError:
        raise AssertionError(
            f"dispatcher not drained after {timeout:g} s: {dispatcher.in_flight} in flight, "
            f"{dispatcher.queued} queued"
        ) from None
    assert not dispatcher.queued, "jobs left queued with nothing in flight to start them"


def test_the_watermark_stops_at_the_first_record_not_done():
    mark = Watermark()
    for offset in (10, 11, 12):
        mark.take(offset)
    mark.finish(12)
    mark.finish(11)
    assert mark.committable is None  # 10 is still in flight: a crash must redeliver it
    mark.finish(10)
    assert mark.committable == 13


def test_a_record_belongs_to_the_run_in_its_key():
    assert run_of(record(0, "run_a:4-2")) == "run_a"
    assert run_of(record(0, "run_a")) == "run_a"


async def test_runs_take_turns_within_both_limits():
    gate = asyncio.Event()
    started: list[str] = []
    most = {"all": 0}
    dispatcher = Dispatcher(Limits(max_in_flight=4, per_run=2))

    async def handle(rec: ConsumerRecord) -> None:
        started.append(run_of(rec))
        most["all"] = max(most["all"], dispatcher.in_flight)
        await gate.wait()

    mark = Watermark()
    for offset in range(6):  # a big run first, in one partition
        dispatcher.submit(record(offset, f"run_big:{offset}"), handle, mark)
    dispatcher.submit(record(6, "run_small:1"), handle, mark)
    await asyncio.sleep(0)
    assert sorted(started) == ["run_big", "run_big", "run_small"]  # per_run holds the big one
    gate.set()
    await drained(dispatcher)
    assert started.count("run_big") == 6 and most["all"] <= 4
    assert mark.committable == 7


async def test_a_failing_handler_is_retried_in_place_and_holds_the_watermark():
    attempts: list[int] = []
    watermarks: list[int | None] = []  # what could be committed as each attempt began
    dispatcher = Dispatcher(Limits(retry_first_seconds=0.01))
    mark = Watermark()

    async def handle(rec: ConsumerRecord) -> None:
        attempts.append(rec.offset)
        watermarks.append(mark.committable)
        if len(attempts) < 3:
            raise ConnectionError("database down")

    dispatcher.submit(record(0, "run_a:1"), handle, mark)
    await drained(dispatcher)
    assert attempts == [0, 0, 0] and mark.committable == 1
    assert watermarks == [None, None, None]  # the failures held it at the record


class CommitsSeen:
    """The part of a consumer a pump uses, keeping what it was asked to commit and which
    partitions it paused."""

    def __init__(self, assigned=()) -> None:
        self.commits: list[dict] = []
        self.assigned, self.paused_now = set(assigned), set()

    async def commit(self, offsets) -> None:
        self.commits.append({tp: meta.offset for tp, meta in offsets.items()})

    def assignment(self) -> set:
        return set(self.assigned)

    def paused(self) -> set:
        return set(self.paused_now)

    def pause(self, *partitions) -> None:
        self.paused_now |= set(partitions)

    def resume(self, *partitions) -> None:
        self.paused_now -= set(partitions)


async def test_the_pump_commits_at_most_once_a_second_except_on_a_revocation(monkeypatch):
    from aiokafka import TopicPartition

    from stage_workers import pump as pump_module

    clock = [100.0]
    monkeypatch.setattr(pump_module.time, "monotonic", lambda: clock[0])
    consumer = CommitsSeen()
    pump = pump_module.StagePump(consumer, Dispatcher(Limits()), handle=None)
    tp = TopicPartition("stage-4", 0)
    mark = pump.marks[tp] = Watermark()
    for offset in (0, 1, 2):
        mark.take(offset)

    mark.finish(0)
    await pump.commit()
    mark.finish(1)
    clock[0] += 0.5
    await pump.commit()  # half a second later: waits
    assert consumer.commits == [{tp: 1}]
    clock[0] += 0.5
    await pump.commit()
    assert consumer.commits == [{tp: 1}, {tp: 2}]
    mark.finish(2)
    await pump.on_partitions_revoked({tp})  # at once, whatever the clock
    assert consumer.commits == [{tp: 1}, {tp: 2}, {tp: 3}]


async def test_the_round_that_sees_the_stop_commits_whatever_the_pace():
    from aiokafka import TopicPartition

    from stage_workers.pump import StagePump

    stopping = asyncio.Event()

    class StopsOnFetch(CommitsSeen):
        async def getmany(self, timeout_ms, max_records):
            stopping.set()  # the stop comes while the pump waits for records
            return {}

    consumer = StopsOnFetch()
    pump = StagePump(consumer, Dispatcher(Limits()), handle=None)
    tp = TopicPartition("stage-4", 0)
    mark = pump.marks[tp] = Watermark()
    mark.take(0)
    mark.finish(0)
    pump.pace.committed()  # a commit just went: the pace alone would wait a second
    await pump.run(stopping)
    assert consumer.commits == [{tp: 1}]


async def test_a_full_pump_keeps_polling_with_its_partitions_paused():
    """Every slot held (the AI gate waits out a provider outage): the pump still polls, or the
    consumer would be taken for dead after max_poll_interval_ms and leave the group; it fetches
    nothing more until a slot is free."""
    from aiokafka import TopicPartition

    from stage_workers.pump import StagePump

    tp = TopicPartition("stage-4", 0)
    stopping, release = asyncio.Event(), asyncio.Event()

    class Polls(CommitsSeen):
        def __init__(self) -> None:
            super().__init__(assigned=[tp])
            self.polls: list[set] = []  # the partitions paused at each poll
            self.waiting = [record(n, "run_a") for n in range(4)]

        async def getmany(self, timeout_ms, max_records):
            await asyncio.sleep(0.01)
            self.polls.append(self.paused())
            if tp in self.paused_now or not self.waiting:
                return {}
            taken, self.waiting = self.waiting[:max_records], self.waiting[max_records:]
            return {tp: taken}

    async def handle(rec: ConsumerRecord) -> None:
        await release.wait()

    consumer = Polls()
    dispatcher = Dispatcher(Limits(max_in_flight=1, per_run=1))
    pump = StagePump(consumer, dispatcher, handle)
    running = asyncio.create_task(pump.run(stopping))
    async with asyncio.timeout(5):
        while len([paused for paused in consumer.polls if paused]) < 3:
            await asyncio.sleep(0.01)
    assert dispatcher.in_flight + dispatcher.queued == 2  # the room: twice what can run
    release.set()
    async with asyncio.timeout(5):
        while consumer.waiting or consumer.paused_now:
            await asyncio.sleep(0.01)
    await drained(dispatcher)
    stopping.set()
    await running
    assert dispatcher.in_flight == 0 and not consumer.paused_now


async def test_a_stop_starts_none_of_the_queued_jobs():
    started: list[int] = []

    async def handle(rec: ConsumerRecord) -> None:
        started.append(rec.offset)
        await asyncio.Event().wait()  # until cancelled

    dispatcher = Dispatcher(Limits(max_in_flight=1, per_run=1))
    mark = Watermark()
    for offset in range(3):
        dispatcher.submit(record(offset, "run_a"), handle, mark)
    await asyncio.sleep(0)  # the first job starts
    await dispatcher.stop()
    await asyncio.sleep(0)
    assert started == [0] and not dispatcher.tasks and dispatcher.queued == 2
