"""The orchestrator process: settings, tracing, the metrics endpoint, then the runner that
bootstrap.py wires, until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal

from prometheus_client import start_http_server

from contracts import tracing
from orchestrator import metrics
from orchestrator.bootstrap import bootstrap
from orchestrator.settings import Settings


async def serve(settings: Settings) -> None:
    runner = bootstrap(settings)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, runner.stopping.set)
    await runner.run()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = Settings()
    tracing.configure("orchestrator", settings.otel_exporter_otlp_endpoint)
    metrics.ready.set(0)
    start_http_server(settings.metrics_port, registry=metrics.REGISTRY)
    metrics.watch(settings)
    asyncio.run(serve(settings))
