"""The gateway's one consumer of the run events: it answers waiting commands and feeds live
streams.

Each gateway instance reads every partition of the stream from the newest offsets, outside any
consumer group (it commits nothing, so a group per instance would only be left behind on the
broker). Two things listen:
- a run command waits for the event whose causation id is the command's message id;
- a live stream of a run gets its events as they arrive (one site's events share a partition).

The hub keeps no run's events. What it holds is bounded in bytes, whatever the number and size
of runs: each open stream's buffer of events not yet sent (`buffer_bytes`; a stream that falls
further behind is told to read the rest from the topic, see live_replay), and a small register
of the runs it has seen (where each began, so a run started here can be followed and controlled
before the read model has it; `MAX_RUNS_SEEN` entries of a few hundred bytes).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import OrderedDict, deque
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer

from contracts import events as ev
from contracts.codec import UnreadableMessage, decode
from contracts.envelope import Envelope

log = logging.getLogger(__name__)

COMMAND_OUTCOMES = frozenset(outcome.TYPE for outcome in ev.COMMAND_OUTCOMES)
MAX_RUNS_SEEN = 10_000
BUFFER_BYTES = 64 * 1024


@dataclass(frozen=True)
class RunSeen:
    """A run this gateway has seen events of: whose it is, and where its first event here lay."""

    account_id: int
    site_id: int
    partition: int
    first_offset: int


class FellBehind(Exception):
    """A stream's buffer overflowed: it reads on from the topic instead."""


@dataclass(eq=False)
class Follower:
    """One live stream's feed: the events of its run that arrived since it began to follow, at
    offsets from `start` on, waiting to be sent."""

    run_id: str
    start: int
    limit: int
    events: deque[tuple[int, Envelope, int]] = field(default_factory=deque)
    size: int = 0
    fell_behind: bool = False
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def push(self, offset: int, message: Envelope, size: int) -> None:
        if self.fell_behind:
            return
        if self.size + size > self.limit:
            self.fell_behind = True
            self.events.clear()
            self.size = 0
        else:
            self.events.append((offset, message, size))
            self.size += size
        self.arrived.set()

    async def next(self, timeout: float) -> tuple[int, Envelope] | None:
        """The next event, or None when none came within `timeout`; FellBehind when the buffer
        overflowed (the events from the last one sent on must then be read from the topic)."""
        if not self.events and not self.fell_behind:
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), timeout)
            except TimeoutError:
                return None
        if self.fell_behind:
            raise FellBehind(self.run_id)
        offset, message, size = self.events.popleft()
        self.size -= size
        return offset, message


class RunEventHub:
    def __init__(self, bootstrap: str, topic: str, buffer_bytes: int = BUFFER_BYTES) -> None:
        self.topic = topic
        self.buffer_bytes = buffer_bytes
        self._consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=None,
            auto_offset_reset="latest",
            enable_auto_commit=False,
        )
        self._waiting: dict[uuid.UUID, asyncio.Future[Envelope]] = {}
        self._seen: OrderedDict[str, RunSeen] = OrderedDict()
        self._followers: dict[str, set[Follower]] = {}
        self._next_offset: dict[int, int] = {}
        self._task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()

    async def start(self) -> None:
        await self._consumer.start()
        self._task = asyncio.create_task(self._consume(), name="run-event-hub")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._consumer.stop()

    def expect(self, causation_id: uuid.UUID) -> asyncio.Future[Envelope]:
        """A future for the answer to a command; register it before publishing the command."""
        future: asyncio.Future[Envelope] = asyncio.get_running_loop().create_future()
        self._waiting[causation_id] = future
        return future

    def forget(self, causation_id: uuid.UUID) -> None:
        self._waiting.pop(causation_id, None)

    def seen(self, run_id: str) -> RunSeen | None:
        return self._seen.get(run_id)

    def owner_of(self, run_id: str) -> tuple[int, int] | None:
        """(account id, site id) of a run this gateway has seen events of."""
        run = self._seen.get(run_id)
        return (run.account_id, run.site_id) if run else None

    def follow(self, run_id: str, partition: int) -> Follower:
        """Start buffering the run's new events. Every event before the follower's `start`
        offset was handed out before it existed: read those from the topic."""
        start = self._next_offset.get(partition, 0)
        follower = Follower(run_id, start, self.buffer_bytes)
        self._followers.setdefault(run_id, set()).add(follower)
        return follower

    def position(self, partition: int) -> int:
        """The offset of the next event this gateway will read on the partition: every event
        before it was handed out, and can be read from the topic."""
        return self._next_offset.get(partition, 0)

    def unfollow(self, follower: Follower) -> None:
        followers = self._followers.get(follower.run_id)
        if followers is not None:
            followers.discard(follower)
            if not followers:
                del self._followers[follower.run_id]

    @property
    def buffered_bytes(self) -> int:
        return sum(f.size for followers in self._followers.values() for f in followers)

    async def _consume(self) -> None:
        await self._wait_for_positions()
        self.ready.set()
        while True:
            batches = await self._consumer.getmany(timeout_ms=500)
            for partition, records in batches.items():
                for record in records:
                    self._receive(partition.partition, record.offset, record.value)

    async def _wait_for_positions(self) -> None:
        """Took every partition and fixed the start offsets, so no answer can slip past."""
        while not self._consumer.assignment():
            await asyncio.sleep(0.05)
        for partition in self._consumer.assignment():
            self._next_offset[partition.partition] = await self._consumer.position(partition)

    def _receive(self, partition: int, offset: int, raw: bytes | None) -> None:
        self._next_offset[partition] = offset + 1
        message = readable(raw)
        if message is not None:
            self.dispatch(message, partition, offset, len(raw or b""))

    def dispatch(self, message: Envelope, partition: int, offset: int, size: int) -> None:
        if message.causation_id is not None and message.type in COMMAND_OUTCOMES:
            future = self._waiting.pop(message.causation_id, None)
            if future is not None and not future.done():
                future.set_result(message)
        if message.run_id is None:
            return
        self._remember(message, partition, offset)
        for follower in self._followers.get(message.run_id, ()):
            follower.push(offset, message, size)

    def _remember(self, message: Envelope, partition: int, offset: int) -> None:
        run_id = message.run_id
        assert run_id is not None
        if run_id in self._seen:
            self._seen.move_to_end(run_id)
            return
        self._seen[run_id] = RunSeen(message.account_id, message.site_id, partition, offset)
        while len(self._seen) > MAX_RUNS_SEEN:
            self._seen.popitem(last=False)


def readable(raw: bytes | None) -> Envelope | None:
    """The run event a record holds, or None (logged) when it cannot be read: the dead-letter
    topic is for the consumers that own the stream, not for this reader."""
    try:
        return decode(raw)
    except UnreadableMessage as exc:
        log.warning("skipping unreadable run event: %s", exc.reason)
        return None
