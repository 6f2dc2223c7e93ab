"""Many stage commands in flight at once, shared fairly between runs, committed only past what is
done.

A consumer that handled one record at a time made a run exactly as slow as its AI calls, and
made every run wait behind the others on the same partition. Here each stage consumer only
fetches; records queue per run, and one process-wide `Dispatcher` starts them as tasks, round
robin between runs, at most `per_run` of one run and `max_in_flight` in all. A partition's offset
is committed up to its first record not yet done (`Watermark`), so a crash redelivers what was
in flight, never skips it: the handlers are idempotent, so at-least-once is exactly-once in
effect. A handler that raises (the database is down, say) is retried with backoff, in place, so
its offset cannot move past it. Offsets are committed at most once a second (and on a
revocation): a commit per finished command cost the broker more CPU than the records did, and a
crash then only redelivers up to a second more of what the handlers recognise as done.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata

from stage_workers import metrics

log = logging.getLogger(__name__)

Handle = Callable[[ConsumerRecord], Awaitable[None]]


class CommitPace:
    """When a consumer of this process may commit its offsets again: at most once a second."""

    every_seconds = 1.0

    def __init__(self) -> None:
        self.last = float("-inf")

    def due(self) -> bool:
        return time.monotonic() - self.last >= self.every_seconds

    def committed(self) -> None:
        self.last = time.monotonic()


@dataclass(frozen=True)
class Limits:
    max_in_flight: int = 64
    per_run: int = 16
    retry_first_seconds: float = 0.5
    retry_max_seconds: float = 30.0


class Watermark:
    """One partition's records in the order fetched, and how far they are done without a gap."""

    def __init__(self) -> None:
        self.taken: deque[int] = deque()
        self.done: set[int] = set()
        self.committable: int | None = None

    def take(self, offset: int) -> None:
        self.taken.append(offset)

    def finish(self, offset: int) -> None:
        self.done.add(offset)
        while self.taken and self.taken[0] in self.done:
            first = self.taken.popleft()
            self.done.discard(first)
            self.committable = first + 1


def run_of(record: ConsumerRecord) -> str:
    """Stage commands are keyed `run_id` or `run_id:batch_id`; an unkeyed record is its own."""
    key = (record.key or b"").decode(errors="replace")
    return key.split(":", 1)[0] or f"{record.topic}/{record.partition}@{record.offset}"


@dataclass
class _Job:
    record: ConsumerRecord
    handle: Handle
    mark: Watermark


@dataclass
class Dispatcher:
    """Starts queued jobs as tasks: round robin over runs, within both limits."""

    limits: Limits
    queues: OrderedDict[str, deque[_Job]] = field(default_factory=OrderedDict)
    running: dict[str, int] = field(default_factory=dict)
    tasks: set[asyncio.Task] = field(default_factory=set)
    freed: asyncio.Event = field(default_factory=asyncio.Event)
    stopped: bool = False  # nothing more starts: the process is on its way out

    @property
    def in_flight(self) -> int:
        return len(self.tasks)

    @property
    def queued(self) -> int:
        return sum(len(q) for q in self.queues.values())

    def submit(self, record: ConsumerRecord, handle: Handle, mark: Watermark) -> None:
        mark.take(record.offset)
        self.queues.setdefault(run_of(record), deque()).append(_Job(record, handle, mark))
        self.start_what_fits()

    def drop(self, mark: Watermark) -> None:
        """Forget the queued jobs of a partition this process no longer owns."""
        for run in list(self.queues):
            kept = deque(job for job in self.queues[run] if job.mark is not mark)
            if kept:
                self.queues[run] = kept
            else:
                del self.queues[run]

    def start_what_fits(self) -> None:
        if self.stopped:
            return
        while self.in_flight < self.limits.max_in_flight and self._start_next():
            pass
        metrics.IN_FLIGHT.set(self.in_flight)

    def _start_next(self) -> bool:
        for run in list(self.queues):
            if self.running.get(run, 0) >= self.limits.per_run:
                continue
            queue = self.queues.pop(run)
            job = queue.popleft()
            if queue:
                self.queues[run] = queue  # to the back of the line: the next run goes first
            self.running[run] = self.running.get(run, 0) + 1
            task = asyncio.create_task(self._run(run, job))
            self.tasks.add(task)
            return True
        return False

    async def _run(self, run: str, job: _Job) -> None:
        try:
            await self._until_done(job)
            job.mark.finish(job.record.offset)
        finally:
            self.running[run] -= 1
            if not self.running[run]:
                del self.running[run]
            self.tasks.discard(asyncio.current_task())
            self.freed.set()
            self.start_what_fits()

    async def _until_done(self, job: _Job) -> None:
        wait = self.limits.retry_first_seconds
        while True:
            try:
                await job.handle(job.record)
                return
            except Exception:
                record = job.record
                log.exception(
                    "%s/%s@%s failed; trying again in %.1f s",
                    record.topic,
                    record.partition,
                    record.offset,
                    wait,
                )
                await asyncio.sleep(wait)
                wait = min(wait * 2, self.limits.retry_max_seconds)

    async def stop(self) -> None:
        """Cancel what runs; what is queued stays unstarted (its offsets are not committed, so
        the next owner of the partition handles it). A cancelled job's end must not start
        another that nothing would wait for."""
        self.stopped = True
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


class StagePump(ConsumerRebalanceListener):
    """One stage topic's consumer: fetch, hand to the dispatcher, commit the watermarks."""

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        dispatcher: Dispatcher,
        handle: Handle,
        on_assigned: Callable[[], None] = lambda: None,
    ) -> None:
        self.consumer = consumer
        self.dispatcher = dispatcher
        self.handle = handle
        self.on_assigned = on_assigned
        self.marks: dict[TopicPartition, Watermark] = {}
        self.committed: dict[TopicPartition, int] = {}
        self.pace = CommitPace()

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.commit(now=True)
        for tp in revoked:
            mark = self.marks.pop(tp, None)
            if mark is not None:
                self.dispatcher.drop(mark)
            self.committed.pop(tp, None)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        for tp in assigned:
            self.marks.setdefault(tp, Watermark())
        self.on_assigned()

    async def run(self, stopping: asyncio.Event) -> None:
        # The round that sees the stop commits whatever the pace says: a graceful stop leaves
        # nothing finished to redeliver.
        while not stopping.is_set():
            room = self._room()
            # Full, it still polls, with its partitions paused: a consumer that stops polling is
            # taken for dead after max_poll_interval_ms (5 min) and leaves the group, and a
            # provider outage can hold every slot at the AI gate for longer than that.
            self._fetch(room > 0)
            batches = await self.consumer.getmany(
                timeout_ms=100 if room > 0 else 0, max_records=max(room, 1)
            )
            for tp, records in batches.items():
                mark = self.marks.setdefault(tp, Watermark())
                for record in records:
                    self.dispatcher.submit(record, self.handle, mark)
            if room <= 0:
                await self._wait_for_room()
            await self.commit(now=stopping.is_set())

    def _fetch(self, on: bool) -> None:
        if on:
            if paused := self.consumer.paused():
                self.consumer.resume(*paused)
        else:
            self.consumer.pause(*self.consumer.assignment())

    def _room(self) -> int:
        # Fetch ahead a little past what can run, so a slot never waits on a fetch.
        limits = self.dispatcher.limits
        return 2 * limits.max_in_flight - self.dispatcher.in_flight - self.dispatcher.queued

    async def _wait_for_room(self) -> None:
        self.dispatcher.freed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.dispatcher.freed.wait(), 0.5)

    async def commit(self, *, now: bool = False) -> None:
        """Commit each partition's watermark, unless the last commit was under a second ago."""
        if not now and not self.pace.due():
            return
        offsets = {
            tp: OffsetAndMetadata(mark.committable, "")
            for tp, mark in self.marks.items()
            if mark.committable is not None and mark.committable != self.committed.get(tp)
        }
        if not offsets:
            return
        try:
            await self.consumer.commit(offsets)
        except KafkaError as error:  # a rebalance under way: the next owner starts from before
            log.warning("commit of %s failed: %s", sorted(offsets), error)
            return
        self.committed.update({tp: o.offset for tp, o in offsets.items()})
        self.pace.committed()
