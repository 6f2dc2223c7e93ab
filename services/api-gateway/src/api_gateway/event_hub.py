"""The gateway's one consumer of the run events: it answers waiting commands and feeds live
streams.

Each gateway instance reads every partition of the stream from the newest offsets, outside any
consumer group (it commits nothing, so a group per instance would only be left behind on the
broker). Two things listen:
- a run command waits for the event whose causation id is the command's message id;
- live streams of a run get its events in stream order (one site's events share a partition).
Events of runs seen since start-up are kept (bounded) so a stream opened mid-run replays them
first, and so a run started here is known before the read model catches up.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer

from contracts import events as ev
from contracts.codec import UnreadableMessage, decode
from contracts.envelope import Envelope

log = logging.getLogger(__name__)

RUN_ENDINGS = frozenset(
    {ev.RunCompleted.TYPE, ev.RunCancelled.TYPE, ev.RunFailed.TYPE, ev.RunRejected.TYPE}
)
COMMAND_OUTCOMES = frozenset(outcome.TYPE for outcome in ev.COMMAND_OUTCOMES)
MAX_RUNS_KEPT = 500
MAX_EVENTS_PER_RUN = 50_000


@dataclass
class RunLog:
    account_id: int
    site_id: int
    events: list[Envelope] = field(default_factory=list)
    subscribers: set[asyncio.Queue[Envelope]] = field(default_factory=set)


class RunEventHub:
    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self._consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=None,
            auto_offset_reset="latest",
            enable_auto_commit=False,
        )
        self._waiting: dict[uuid.UUID, asyncio.Future[Envelope]] = {}
        self._runs: OrderedDict[str, RunLog] = OrderedDict()
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

    def owner_of(self, run_id: str) -> tuple[int, int] | None:
        """(account id, site id) of a run this gateway has seen events of."""
        run = self._runs.get(run_id)
        return (run.account_id, run.site_id) if run else None

    def subscribe(
        self, run_id: str, account_id: int, site_id: int
    ) -> tuple[list[Envelope], asyncio.Queue[Envelope]]:
        """Events seen so far and a queue for the rest, taken together so none is lost."""
        run = self._run(run_id, account_id, site_id)
        queue: asyncio.Queue[Envelope] = asyncio.Queue()
        run.subscribers.add(queue)
        return list(run.events), queue

    def unsubscribe(self, run_id: str, queue: asyncio.Queue[Envelope]) -> None:
        run = self._runs.get(run_id)
        if run is not None:
            run.subscribers.discard(queue)

    async def _consume(self) -> None:
        await self._wait_for_positions()
        self.ready.set()
        while True:
            batches = await self._consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    self._receive(record.value)

    async def _wait_for_positions(self) -> None:
        """Took every partition and fixed the start offsets, so no answer can slip past."""
        while not self._consumer.assignment():
            await asyncio.sleep(0.05)
        for partition in self._consumer.assignment():
            await self._consumer.position(partition)

    def _receive(self, raw: bytes | None) -> None:
        try:
            message = decode(raw)
        except UnreadableMessage as exc:
            log.warning("skipping unreadable run event: %s", exc.reason)
            return
        self.dispatch(message)

    def dispatch(self, message: Envelope) -> None:
        if message.causation_id is not None and message.type in COMMAND_OUTCOMES:
            future = self._waiting.pop(message.causation_id, None)
            if future is not None and not future.done():
                future.set_result(message)
        if message.run_id is None:
            return
        run = self._run(message.run_id, message.account_id, message.site_id)
        if len(run.events) < MAX_EVENTS_PER_RUN:
            run.events.append(message)
        for queue in run.subscribers:
            queue.put_nowait(message)

    def _run(self, run_id: str, account_id: int, site_id: int) -> RunLog:
        run = self._runs.get(run_id)
        if run is None:
            run = self._runs[run_id] = RunLog(account_id, site_id)
            while len(self._runs) > MAX_RUNS_KEPT:
                oldest = next(iter(self._runs))
                if self._runs[oldest].subscribers:
                    break
                del self._runs[oldest]
        self._runs.move_to_end(run_id)
        return run
