"""Whether a run may go on, learnt from the run-events topic into the workers' own table
(`worker_run_status`), so a batch checks its run without reading another service's tables.

Records are told apart by their type header (`type`, or `ce_type` on records written before
ADR 18: both are read), so only the few run-control events are parsed.
The worker processes share one consumer group: each writes the stops of its partitions, all read
the table. Offsets are committed after the table is written (at least once; the writes are
idempotent and a run's events arrive in order, so the latest event per run wins).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from itertools import islice

import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import KafkaError
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Connection

from contracts.codec import UnreadableMessage, decode, type_from_headers
from contracts.db import tables as t
from contracts.events import RUN_ENDING_TYPES, RunPaused, RunResumed
from stage_workers.pump import CommitPace

log = logging.getLogger(__name__)

# Event type -> whether the run is stopped after it: paused or ended.
STOPS = {RunPaused.TYPE: True, RunResumed.TYPE: False} | dict.fromkeys(RUN_ENDING_TYPES, True)
WATCH_GROUP = "automation-stage-workers-run-watch"
# Runs whose latest stop this process holds in memory; older ones are read from the table.
HEARD_RUNS = 10_000


class HeardStops:
    """Whether each run this process heard of last is stopped (run id -> stopped), ahead of the
    table, which every worker process reads. Bounded: a worker lives for months and a run's stop
    matters only while its batches can still come; one trimmed away is in the table already, as
    the watch writes what it heard before it reads on.

    What was heard from a partition holds only while this process reads that partition: once it
    moves to another process, the run's later stops reach the table alone (`forget`)."""

    def __init__(self, capacity: int = HEARD_RUNS) -> None:
        self.capacity = capacity
        self._stopped: dict[str, tuple[bool, int]] = {}  # run id -> (stopped, partition)

    def get(self, run_id: str, default: bool | None = None) -> bool | None:
        heard = self._stopped.get(run_id)
        return default if heard is None else heard[0]

    def update(self, stops: Mapping[str, bool], partition: int) -> None:
        for run_id, stopped in stops.items():
            self._stopped.pop(run_id, None)  # re-inserted: the latest goes last
            self._stopped[run_id] = (stopped, partition)

    def forget(self, partitions: Iterable[int]) -> None:
        """Forget the runs heard from these partitions (no longer this process's to read)."""
        gone = set(partitions)
        for run_id in [run for run, (_, part) in self._stopped.items() if part in gone]:
            del self._stopped[run_id]

    def trim(self) -> None:
        """Forget the oldest runs beyond `capacity` (call once they are in the table)."""
        excess = len(self._stopped) - self.capacity
        if excess > 0:
            for run_id in list(islice(self._stopped, excess)):
                del self._stopped[run_id]

    def __len__(self) -> int:
        return len(self._stopped)


class Watching(ConsumerRebalanceListener):
    """The run watch's rebalance listener: a revoked partition's runs are forgotten, once the
    stops read from it are written (`lock`), so the next owner's writes are the ones that count
    and this process reads them from the table."""

    def __init__(self, heard: HeardStops) -> None:
        self.heard = heard
        self.lock = asyncio.Lock()

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        async with self.lock:
            self.heard.forget(tp.partition for tp in revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        pass


class Stops(dict[str, bool]):
    """Run id -> stopped, and which of the stopped runs have ended (not paused)."""

    def __init__(self) -> None:
        super().__init__()
        self.ended: set[str] = set()

    @classmethod
    def of(cls, parts: Iterable[Stops]) -> Stops:
        """The stops of several partitions together (a run's events are all on one)."""
        merged = cls()
        for part in parts:
            merged.update(part)
            merged.ended |= part.ended
        return merged


def stops_in(records: Iterable[ConsumerRecord]) -> Stops:
    """Whether each run among `records` is stopped after its latest run-control event (in
    partition order), and whether it has ended; other records are skipped."""
    stops = Stops()
    for record in records:
        if type_from_headers(record.headers) not in STOPS:
            continue
        try:
            event = decode(record.value)
        except UnreadableMessage:
            continue  # the orchestrator dead-letters it; here it says nothing about a run
        if event.run_id is not None and event.type in STOPS:
            stops[event.run_id] = STOPS[event.type]
            if event.type in RUN_ENDING_TYPES:
                stops.ended.add(event.run_id)
            else:
                stops.ended.discard(event.run_id)
    return stops


def record_stops(conn: Connection, stops: Stops) -> None:
    ended = stops.ended
    statement = insert(t.worker_run_status).values(
        [
            {"run_id": run_id, "stopped": stopped, "ended": run_id in ended}
            for run_id, stopped in stops.items()
        ]
    )
    excluded = statement.excluded
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=["run_id"],
            set_={
                "stopped": excluded.stopped,
                "ended": excluded.ended,
                "updated_at": sa.func.now(),
            },
        )
    )


_ENDED = sa.select(t.worker_run_status.c.ended).where(
    t.worker_run_status.c.run_id == sa.bindparam("run_id")
)


def run_ended(conn: Connection, run_id: str) -> bool | None:
    """Whether the run has ended (True), is paused (False) or was never stopped (None), as the
    workers' table has it."""
    return conn.execute(_ENDED, {"run_id": run_id}).scalar_one_or_none()


Write = Callable[[Stops], Awaitable[None]]


async def watch_runs(
    consumer: AIOKafkaConsumer, watching: Watching, write: Write, stopping: asyncio.Event
) -> None:
    """`watching.heard` gets each stop at once (this process's batches read it first); the
    table, for every worker process, right after."""
    heard = watching.heard
    uncommitted, pace = False, CommitPace()
    while not stopping.is_set():
        batches = await consumer.getmany(timeout_ms=200, max_records=2000)
        async with watching.lock:
            by_partition = {tp.partition: stops_in(records) for tp, records in batches.items()}
            stops = Stops.of(by_partition.values())
            if stops:
                for partition, partition_stops in by_partition.items():
                    heard.update(partition_stops, partition)
                await write(stops)
                heard.trim()
                log.info("run stops learnt: %s", stops)
        uncommitted = uncommitted or bool(batches)
        # At most once a second, and on the way out: nearly every record is skipped, and reading
        # some again after a crash rewrites the same stops.
        if uncommitted and (pace.due() or stopping.is_set()):
            try:
                await consumer.commit()
                uncommitted = False
                pace.committed()
            except KafkaError as error:  # a rebalance: the next owner reads them again
                log.warning("run watch commit failed: %s", error)
