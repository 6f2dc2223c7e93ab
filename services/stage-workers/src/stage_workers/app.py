"""The stage-worker process: settings, then the wired worker (bootstrap.py), run until SIGINT
or SIGTERM, then stopped gracefully."""

from __future__ import annotations

import asyncio
import logging
import signal

from prometheus_client import start_http_server

from contracts import tracing
from stage_workers import metrics
from stage_workers.bootstrap import bootstrap
from stage_workers.settings import WorkerSettings


async def serve(settings: WorkerSettings) -> None:
    worker = bootstrap(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await worker.start()
        await stop.wait()
    finally:
        await worker.stop()


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = WorkerSettings()
    tracing.configure("stage-workers", settings.otel_exporter_otlp_endpoint)
    start_http_server(settings.metrics_port, registry=metrics.REGISTRY)
    metrics.watch(settings)
    asyncio.run(serve(settings))
