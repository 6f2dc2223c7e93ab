"""Prometheus metrics: readiness, and requests by route template (never by site or run)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from functools import partial, wraps
from typing import Any

from fastapi import FastAPI, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.routing import Match

# The service's own registry, so that services imported into one process (the test suite) do
# not clash on names they share, such as automation_service_ready.
REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)
counter = partial(Counter, registry=REGISTRY)
gauge = partial(Gauge, registry=REGISTRY)
histogram = partial(Histogram, registry=REGISTRY)

READY = gauge("automation_service_ready", "1 once the run-event consumer is assigned")
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


def _route_template(request: Request) -> str:
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match == Match.FULL:
            return getattr(route, "path", "unmatched")
    return "unmatched"


class RequestMetrics(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = _route_template(request)
        status = str(response.status_code)
        LATENCY.labels(request.method, route, status).observe(time.perf_counter() - started)
        REQUESTS.labels(request.method, route, status).inc()
        return response


def install(app: FastAPI) -> None:
    app.add_middleware(RequestMetrics)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
