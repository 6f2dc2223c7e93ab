"""Wiring: a FastStream app (lifecycle, metrics, the producer for dead letters), one stage
pump per configured stage sharing one dispatcher (see pump.py), the run watch (run_watch.py),
the outbox relay and the pruning of what is past the redelivery window (retention.py)."""

from __future__ import annotations

import asyncio
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from functools import partial

from aiokafka import AIOKafkaConsumer
from faststream import FastStream
from faststream.kafka import KafkaBroker
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from prometheus_client import start_http_server

from contracts import tracing
from contracts.db.engines import sync_engine
from contracts.db.migrate import upgrade
from contracts.dead_letter import DeadLetter
from stage_workers import metrics
from stage_workers.ai.factory import lane_rules, make_ai
from stage_workers.deps import WorkerDeps
from stage_workers.gate.store import LaneStore
from stage_workers.handlers import handle_record
from stage_workers.metrics import Readiness
from stage_workers.outbox import OutboxRelay
from stage_workers.pump import Dispatcher, Limits, StagePump
from stage_workers.retention import keep_pruning
from stage_workers.run_watch import WATCH_GROUP, record_stops, watch_runs
from stage_workers.settings import WorkerSettings
from stage_workers.tracking import consumer_name

log = logging.getLogger("stage_workers")


def build_app(settings: WorkerSettings) -> FastStream:
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
    )
    broker = KafkaBroker(
        settings.kafka_bootstrap_servers.split(","),  # FastStream reads a str as one server
        acks="all",
        middlewares=[
            KafkaPrometheusMiddleware(registry=metrics.REGISTRY, app_name="stage-workers")
        ],
    )
    readiness = Readiness(settings.stages())

    async def send_dead_letter(letter: DeadLetter) -> None:
        headers = {name: value.decode() for name, value in letter.kafka_headers}
        await broker.publish(
            letter.encode(), topic=topics.dead_letter, key=letter.kafka_key, headers=headers
        )
        metrics.DEAD_LETTERS.labels(letter.topic).inc()

    def write_stops_now(stops: dict[str, bool]) -> None:
        with engine.begin() as conn:
            record_stops(conn, stops)

    async def write_stops(stops: dict[str, bool]) -> None:
        # Not on the handlers' threads: a stop must not queue behind the work it stops.
        await asyncio.to_thread(write_stops_now, stops)

    limits = Limits(max_in_flight=settings.worker_max_in_flight, per_run=settings.worker_per_run)
    dispatcher = Dispatcher(limits)
    stopping = asyncio.Event()
    running: list[tuple[AIOKafkaConsumer, asyncio.Task]] = []
    pruning: list[asyncio.Task] = []
    app = FastStream(broker)

    @app.on_startup
    async def migrate() -> None:
        await asyncio.to_thread(upgrade, settings.database_url)
        await relay.start()

    @app.after_startup
    async def start_pumps() -> None:
        for stage in settings.stages():
            consumer = stage_consumer(settings, stage)
            pump = StagePump(
                consumer,
                dispatcher,
                handle=partial(handle_record, deps, stage, dead_letter=send_dead_letter),
                on_assigned=lambda stage=stage: readiness.assigned(stage),
            )
            await consumer.start()
            consumer.subscribe([topics.stage(stage)], listener=pump)
            task = asyncio.create_task(pump.run(stopping), name=f"stage-{stage}-pump")
            task.add_done_callback(_exit_if_failed)
            running.append((consumer, task))
        watch = AIOKafkaConsumer(
            topics.run_events,
            bootstrap_servers=settings.kafka_bootstrap_servers,
            group_id=settings.kafka_group_prefix + WATCH_GROUP,
            client_id="stage-worker-run-watch",
            enable_auto_commit=False,
            auto_offset_reset="earliest",  # a new group learns every run's last word
        )
        await watch.start()
        task = asyncio.create_task(
            watch_runs(watch, deps.stops, write_stops, stopping), name="run-watch"
        )
        task.add_done_callback(_exit_if_failed)
        running.append((watch, task))
        pruning.append(
            asyncio.create_task(
                keep_pruning(
                    deps,
                    relay.topics,
                    [consumer_name(stage) for stage in settings.stages()],
                    timedelta(hours=settings.retention_hours),
                    settings.prune_every_seconds,
                    stopping,
                ),
                name="pruning",
            )
        )

    @app.on_shutdown
    async def stop() -> None:
        stopping.set()
        await asyncio.gather(*(task for _, task in running), *pruning, return_exceptions=True)
        await dispatcher.stop()
        for consumer, _ in running:
            await consumer.stop()
        await relay.stop()
        engine.dispose()

    return app


def _exit_if_failed(task: asyncio.Task) -> None:
    """A pump that died takes the process down: a restart rebuilds it from the committed
    offsets, where a half-alive worker would hold its partitions and do nothing."""
    if not task.cancelled() and task.exception() is not None:
        log.critical("%s died", task.get_name(), exc_info=task.exception())
        os._exit(1)


def stage_consumer(settings: WorkerSettings, stage: int) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=settings.kafka_group_prefix + consumer_name(stage),
        client_id=f"stage-worker-{stage}",
        enable_auto_commit=False,
        # A new group takes the commands already waiting: they are work, not news.
        auto_offset_reset="earliest",
    )


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = WorkerSettings()
    tracing.configure("stage-workers", settings.otel_exporter_otlp_endpoint)
    start_http_server(settings.metrics_port, registry=metrics.REGISTRY)
    metrics.watch(settings)
    asyncio.run(build_app(settings).run())
