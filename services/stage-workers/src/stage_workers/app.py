"""Wiring: one FastStream subscriber per configured stage, the outbox relay, metrics."""

from __future__ import annotations

import asyncio
import logging

from faststream import AckPolicy, FastStream
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from prometheus_client import start_http_server

from contracts.db.migrate import engine as make_engine
from contracts.db.migrate import upgrade
from contracts.dead_letter import DeadLetter
from contracts.outbox import OutboxRelay
from contracts.topics import Topics
from stage_workers import metrics
from stage_workers.ai.factory import make_provider
from stage_workers.ai.retry import RetryPolicy
from stage_workers.deps import WorkerDeps
from stage_workers.handlers import handle_record
from stage_workers.metrics import Readiness
from stage_workers.settings import WorkerSettings

log = logging.getLogger("stage_workers")
# Back off before a failed record is redelivered, so a database outage is not a busy loop.
REDELIVERY_PAUSE_SECONDS = 1.0


def raw_body(message: KafkaMessage) -> bytes:
    """Hand the handler the record's bytes: contracts.codec decodes them, not faststream."""
    return message.body


def build_app(settings: WorkerSettings) -> FastStream:
    topics = Topics.from_env()
    engine = make_engine(settings.database_url, pool_pre_ping=True)
    relay = OutboxRelay(
        engine, settings.kafka_bootstrap_servers, [spec.name for spec in topics.specs()]
    )
    deps = WorkerDeps(
        engine=engine,
        ai=metrics.InstrumentedProvider(make_provider(settings), settings.ai_provider),
        retry=RetryPolicy(
            max_attempts=settings.ai_max_attempts,
            first_wait_seconds=settings.ai_retry_first_wait_seconds,
            call_timeout_seconds=settings.openai_timeout_seconds * 2,
        ),
        topics=topics,
        media_dir=settings.media_dir,
        wake_relay=relay.wake,
    )
    broker = KafkaBroker(
        settings.kafka_bootstrap_servers,
        middlewares=[
            KafkaPrometheusMiddleware(registry=metrics.REGISTRY, app_name="stage-workers")
        ],
    )
    readiness = Readiness(settings.stages())

    async def send_dead_letter(letter: DeadLetter) -> None:
        await broker.publish(
            letter.model_dump_json().encode(), topic=topics.dead_letter, key=letter.topic.encode()
        )
        metrics.DEAD_LETTERS.labels(letter.topic).inc()

    for stage in settings.stages():
        subscribe_stage(broker, deps, topics, settings, readiness, stage, send_dead_letter)

    app = FastStream(broker)

    @app.on_startup
    async def migrate() -> None:
        await asyncio.to_thread(upgrade, settings.database_url)
        await relay.start()

    @app.on_shutdown
    async def stop_relay() -> None:
        await relay.stop()
        engine.dispose()

    return app


def subscribe_stage(broker, deps, topics, settings, readiness, stage, send_dead_letter) -> None:
    async def on_stage(body: bytes, message: KafkaMessage) -> None:
        try:
            await handle_record(deps, stage, message.raw_message, send_dead_letter)
        except Exception:
            log.exception("stage %s: handling failed; the record will be redelivered", stage)
            await asyncio.sleep(REDELIVERY_PAUSE_SECONDS)
            raise

    on_stage.__name__ = on_stage.__qualname__ = f"on_stage_{stage}"
    broker.subscriber(
        topics.stage(stage),
        group_id=f"{settings.kafka_group_prefix}automation-stage-{stage}",
        # Commit after the handler succeeded; on an error seek back so the record comes again.
        ack_policy=AckPolicy.NACK_ON_ERROR,
        # A new group takes the commands already waiting: they are work, not news.
        auto_offset_reset="earliest",
        max_poll_records=1,
        decoder=raw_body,
        listener=readiness.listener(stage),
    )(on_stage)


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = WorkerSettings()
    start_http_server(settings.metrics_port, registry=metrics.REGISTRY)
    metrics.watch(settings)
    asyncio.run(build_app(settings).run())
