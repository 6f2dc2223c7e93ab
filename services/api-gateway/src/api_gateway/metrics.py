"""Prometheus metrics: readiness, and requests by route template (never by site or run)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from contracts.metrics import ServiceMetrics

METRICS = ServiceMetrics(ready="1 once the run-event consumer is assigned")
REGISTRY = METRICS.registry
counter, gauge, histogram = METRICS.counter, METRICS.gauge, METRICS.histogram
READY = METRICS.ready
REQUESTS = counter(
    "automation_gateway_requests_total", "HTTP requests", ["method", "route", "status"]
)
LATENCY = histogram(
    "automation_gateway_request_seconds",
    "HTTP request latency, by method, route template and status",
    ["method", "route", "status"],
)
COMMANDS = counter(
    "automation_gateway_run_commands_total",
    "Run commands sent, by command and the orchestrator's answer (or timeout)",
    ["command", "outcome"],
)
LIVE_STREAMS = gauge("automation_gateway_live_streams", "Live event streams open")
LIVE_BUFFERED = gauge(
    "automation_gateway_live_buffered_bytes", "Run events held for live streams, not yet sent"
)
LIVE_REPLAYS = counter(
    "automation_gateway_live_replays_total",
    "Reads of a run's past events from the topic: a stream opening, or one that fell behind",
    ["reason"],
)


def counted_command(ask: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """Decorates `CommandSender.ask(self, payload, ...)`: counts the command by its answer."""

    @wraps(ask)
    async def counted(sender: Any, payload: Any, **kwargs: Any) -> Any:
        command = type(payload).__name__
        try:
            answer = await ask(sender, payload, **kwargs)
        except Exception:
            COMMANDS.labels(command, "unanswered").inc()
            raise
        COMMANDS.labels(command, answer.type.rsplit(".", 1)[-1]).inc()
        return answer

    return counted


class RequestMetrics:
    """Counts each HTTP request by its route template once its answer starts (a live stream
    counts when it opens, not when it ends). A plain ASGI middleware: the router has already
    put the matched route in the scope by then, so nothing is matched twice."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        counted = False

        def count(status: int) -> None:
            nonlocal counted
            counted = True
            route = getattr(scope.get("route"), "path", "unmatched")
            labels = (scope["method"], route, str(status))
            LATENCY.labels(*labels).observe(time.perf_counter() - started)
            REQUESTS.labels(*labels).inc()

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                count(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        except Exception:
            if not counted:
                count(500)
            raise


def install(app: FastAPI, on_api_port: bool = False) -> None:
    """Counts the app's requests; serves /metrics on the app's own port only when asked (it asks
    no token there). Otherwise the metrics port (`app.main`) alone serves them."""
    app.add_middleware(RequestMetrics)
    if not on_api_port:
        return

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
