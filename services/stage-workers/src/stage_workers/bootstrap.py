"""Wiring, once per process: from the settings to the ports the handlers use (deps.py) and the
adapters behind them: the database engine, the AI behind its gate, the outbox relay, the
dead-letter producer, one stage pump per configured stage sharing one dispatcher (pump.py), the
run watch (run_watch.py) and the pruning of what is past the redelivery window (retention.py).

The stage topics are consumed by plain aiokafka loops, not a framework's subscribers: many
records of a partition are in flight at once and offsets are committed behind a watermark
(ADR 8 says why FastStream cannot do that)."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from sqlalchemy.engine import Engine

from contracts.db.engines import sync_engine
from contracts.db.migrate import upgrade
from contracts.dead_letter import DeadLetter
from stage_workers import metrics
from stage_workers.ai.factory import lane_rules, make_ai, make_economy
from stage_workers.deps import WorkerDeps
from stage_workers.economy import cancel_for_ended
from stage_workers.gate.store import LaneStore
from stage_workers.handlers import handle_record
from stage_workers.metrics import Readiness
from stage_workers.outbox import OutboxRelay
from stage_workers.provider_batch_wait import listen_for_batch_ends
from stage_workers.pump import Dispatcher, Limits, StagePump
from stage_workers.retention import keep_pruning
from stage_workers.run_watch import WATCH_GROUP, Stops, Watching, record_stops, watch_runs
from stage_workers.settings import WorkerSettings
from stage_workers.tracking import consumer_name

log = logging.getLogger("stage_workers")


class DeadLetters:
    """Sends records no stage can read to the dead-letter topic, counted by their topic."""

    def __init__(self, bootstrap_servers: str, topic: str) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        self.producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap_servers, acks="all")
        await self.producer.start()

    async def stop(self) -> None:
        if self.producer is not None:
            await self.producer.stop()

    async def send(self, letter: DeadLetter) -> None:
        assert self.producer is not None, "start() first"
        await self.producer.send_and_wait(
            self.topic, letter.encode(), key=letter.kafka_key, headers=letter.kafka_headers
        )
        metrics.DEAD_LETTERS.labels(letter.topic).inc()


@dataclass
class Worker:
    """A stage-worker process, wired: `start` migrates and starts every loop, `stop` ends them
    gracefully (each consumer commits what is done)."""

    settings: WorkerSettings
    engine: Engine
    deps: WorkerDeps
    relay: OutboxRelay
    dead_letters: DeadLetters
    dispatcher: Dispatcher
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    consumers: list[AIOKafkaConsumer] = field(default_factory=list)
    tasks: list[asyncio.Task] = field(default_factory=list)

    async def start(self) -> None:
        settings, topics = self.settings, self.settings.topics
        await asyncio.to_thread(upgrade, settings.database_url)
        await self.relay.start()
        await self.dead_letters.start()
        readiness = Readiness(settings.stages())
        for stage in settings.stages():
            consumer = stage_consumer(settings, stage)
            pump = StagePump(
                consumer,
                self.dispatcher,
                handle=partial(handle_record, self.deps, stage, dead_letter=self.dead_letters.send),
                on_assigned=partial(readiness.assigned, stage),
            )
            await consumer.start()
            consumer.subscribe([topics.stage(stage)], listener=pump)
            self._consume(consumer, pump.run(self.stopping), f"stage-{stage}-pump")
        watch = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            group_id=settings.kafka_group_prefix + WATCH_GROUP,
            client_id="stage-worker-run-watch",
            enable_auto_commit=False,
            auto_offset_reset="earliest",  # a new group learns whether each run is stopped
        )
        await watch.start()
        watching = Watching(self.deps.stops)
        watch.subscribe([topics.run_events], listener=watching)
        watching_runs = watch_runs(watch, watching, self.write_stops, self.stopping)
        self._consume(watch, watching_runs, "run-watch")
        pruning = keep_pruning(
            self.deps,
            self.relay.topics,
            [consumer_name(stage) for stage in settings.stages()],
            timedelta(hours=settings.retention_hours),
            settings.prune_every_seconds,
            self.stopping,
        )
        self.tasks.append(asyncio.create_task(pruning, name="pruning"))
        if self.deps.economy is not None:
            listening = listen_for_batch_ends(
                settings.database_url, self.deps.economy.wakeups, self.stopping
            )
            self.tasks.append(asyncio.create_task(listening, name="provider-batch-ends"))

    def _consume(self, consumer: AIOKafkaConsumer, loop: Coroutine[Any, Any, None], name: str):
        """Run a consumer's loop; it stops with the worker, and if it dies, so does the process."""
        task = asyncio.create_task(loop, name=name)
        task.add_done_callback(_exit_if_failed)
        self.consumers.append(consumer)
        self.tasks.append(task)

    async def write_stops(self, stops: Stops) -> None:
        # Not on the handlers' threads: a stop must not queue behind the work it stops.
        await asyncio.to_thread(self._write_stops, stops)
        await cancel_for_ended(self.deps, sorted(stops.ended))

    def _write_stops(self, stops: Stops) -> None:
        with self.engine.begin() as conn:
            record_stops(conn, stops)

    async def stop(self) -> None:
        self.stopping.set()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.dispatcher.stop()
        for consumer in self.consumers:
            await consumer.stop()
        await self.dead_letters.stop()
        await self.relay.stop()
        self.engine.dispose()


def bootstrap(settings: WorkerSettings) -> Worker:
    topics = settings.topics
    connections = settings.worker_db_connections
    # The relay holds one connection of its own besides the handlers' threads. No ping before
    # each checkout (a round trip per transaction): a connection found dead fails its
    # transaction, SQLAlchemy then drops every pooled connection, and the handler is retried.
    engine = sync_engine(settings.database_url, pool_size=connections, max_overflow=6)
    relay = OutboxRelay(
        engine, settings.kafka_bootstrap_servers, [spec.name for spec in topics.specs()]
    )
    # The gate's transactions take threads of their own: admission must not queue behind the
    # writes of the items it would admit.
    gate_threads = ThreadPoolExecutor(4, thread_name_prefix="gate")

    async def offload(function, *args):
        return await asyncio.get_running_loop().run_in_executor(gate_threads, function, *args)

    deps = WorkerDeps(
        engine=engine,
        ai=make_ai(settings, LaneStore(engine, lane_rules(settings)), offload),
        topics=topics,
        media_dir=settings.media_dir,
        wake_relay=relay.wake,
        executor=ThreadPoolExecutor(connections, thread_name_prefix="db"),
        economy=make_economy(settings),
    )
    limits = Limits(max_in_flight=settings.worker_max_in_flight, per_run=settings.worker_per_run)
    return Worker(
        settings,
        engine,
        deps,
        relay,
        DeadLetters(settings.kafka_bootstrap_servers, topics.dead_letter),
        Dispatcher(limits),
    )


def stage_consumer(settings: WorkerSettings, stage: int) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=settings.kafka_group_prefix + consumer_name(stage),
        client_id=f"stage-worker-{stage}",
        enable_auto_commit=False,
        # A new group takes the commands already waiting: they are work, not news.
        auto_offset_reset="earliest",
    )


def _exit_if_failed(task: asyncio.Task) -> None:
    """A consumer loop that died takes the process down: a restart rebuilds it from the
    committed offsets, where a half-alive worker would hold its partitions and do nothing."""
    if not task.cancelled() and task.exception() is not None:
        log.critical("%s died", task.get_name(), exc_info=task.exception())
        os._exit(1)
