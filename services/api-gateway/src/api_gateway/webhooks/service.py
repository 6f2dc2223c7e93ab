"""`api-gateway webhooks`: the process that delivers webhooks (ADR 19). It consumes the events
topic in its own group (`intake`, a FastStream subscriber), sends due deliveries (`delivery`)
and sweeps (`upkeep`), and serves its metrics on METRICS_PORT (set it apart from the API's).
The API process never sends a webhook."""

from __future__ import annotations

import asyncio
import logging
import signal

from aiokafka.abc import ConsumerRebalanceListener
from faststream.kafka import KafkaBroker
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from prometheus_client import start_http_server

from api_gateway.db import create_engine
from api_gateway.settings import Settings
from api_gateway.webhooks import client, intake, metrics
from api_gateway.webhooks.delivery import Deliverer
from api_gateway.webhooks.upkeep import Upkeep

GROUP = "automation-webhooks"
log = logging.getLogger("api_gateway.webhooks")


class _Ready(ConsumerRebalanceListener):
    async def on_partitions_revoked(self, revoked: object) -> None:
        pass

    async def on_partitions_assigned(self, assigned: object) -> None:
        metrics.READY.set(1)


def group_id(settings: Settings) -> str:
    return settings.kafka_group_prefix + GROUP


async def serve(settings: Settings) -> None:
    metrics.READY.set(0)
    start_http_server(settings.metrics_port, addr=settings.http_host, registry=metrics.REGISTRY)
    monitor = metrics.watch(settings, group_id(settings))
    policy = settings.webhook_policy()
    engine = create_engine(settings.database_url)
    pool = client.new_pool(policy, max_connections=settings.webhook_concurrency)
    stop = asyncio.Event()
    broker = KafkaBroker(
        settings.kafka_bootstrap_servers.split(","),  # FastStream reads a str as one server
        middlewares=(KafkaPrometheusMiddleware(registry=metrics.REGISTRY),),
        graceful_timeout=30,
        log_level=logging.DEBUG,  # a line per batch of records is noise at INFO
    )
    intake.subscribe(
        broker, settings.topics.run_events, group_id(settings), engine, stop, listener=_Ready()
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await broker.start()
    deliverer = Deliverer(
        engine,
        pool,
        policy,
        settings.webhook_concurrency,
        settings.webhook_endpoint_concurrency,
        settings.webhook_poll_seconds,
    )
    tasks = [
        asyncio.create_task(deliverer.run(stop), name="webhook-delivery"),
        asyncio.create_task(Upkeep(engine).run(stop), name="webhook-upkeep"),
    ]
    log.info(
        "delivering webhooks; consuming %s as %s", settings.topics.run_events, group_id(settings)
    )
    try:
        done, _ = await asyncio.wait(
            [*tasks, asyncio.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED
        )
        for task in done:
            if task in tasks and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
    finally:
        stop.set()
        metrics.READY.set(0)
        await asyncio.wait(tasks, timeout=30)
        for task in tasks:
            task.cancel()
        await broker.stop()
        await pool.aclose()
        await engine.dispose()
        monitor.stop()


def main(settings: Settings) -> None:
    asyncio.run(serve(settings))
