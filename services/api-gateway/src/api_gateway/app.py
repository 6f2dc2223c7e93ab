"""Wiring: settings, database, Kafka producer and event hub, routers, the console, OpenAPI;
`api-gateway` (the API) and `api-gateway webhooks` (the webhooks process)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import typer
import uvicorn
from aiokafka import AIOKafkaProducer
from fastapi import APIRouter, FastAPI
from fastapi.openapi.utils import get_openapi
from prometheus_client import start_http_server

from api_gateway import errors, metrics, request_body
from api_gateway.body_limit import BodyLimit
from api_gateway.console import routes as console
from api_gateway.db import create_engine
from api_gateway.event_hub import RunEventHub
from api_gateway.head import HeadAsGet
from api_gateway.live_replay import Replayer
from api_gateway.request_spans import RequestSpans
from api_gateway.routes import (
    charts,
    config,
    content,
    costs,
    keywords,
    live,
    planning,
    provider_webhooks,
    review,
    run_control,
    run_status,
    vocabulary,
    webhooks,
)
from api_gateway.run_commands import CommandSender
from api_gateway.security_headers import SecurityHeaders
from api_gateway.session import SessionSigner
from api_gateway.settings import Settings
from contracts import tracing

API_PREFIX = "/api/v1/automation"
ERROR_SCHEMA_REF = {"$ref": "#/components/schemas/ErrorBody"}
log = logging.getLogger("api_gateway")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    topics = settings.topics
    app.state.engine = create_engine(settings.database_url)
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers, enable_idempotence=True, acks="all"
    )
    hub = RunEventHub(
        settings.kafka_bootstrap_servers, topics.run_events, settings.live_buffer_bytes
    )
    await producer.start()
    await hub.start()
    app.state.hub = hub
    metrics.LIVE_BUFFERED.set_function(lambda: hub.buffered_bytes)
    app.state.replayer = Replayer(settings.kafka_bootstrap_servers, topics.run_events)
    app.state.commands = CommandSender(
        producer, hub, topics.run_commands, settings.outcome_timeout_seconds
    )
    ready = asyncio.create_task(_mark_ready(hub))
    try:
        yield
    finally:
        ready.cancel()
        metrics.READY.set(0)
        await hub.stop()
        await producer.stop()
        await app.state.engine.dispose()


async def _mark_ready(hub: RunEventHub) -> None:
    await hub.ready.wait()
    metrics.READY.set(1)
    log.info("ready: consuming %s", hub.topic)


def api_router() -> APIRouter:
    api = APIRouter(prefix=API_PREFIX, responses=errors.ERROR_RESPONSES)
    modules = (
        config,
        run_control,
        run_status,
        costs,
        planning,
        keywords,
        content,
        review,
        live,
        webhooks,
        vocabulary,
        charts,
        provider_webhooks,
    )
    for module in modules:
        api.include_router(module.router)
    return api


def run_command_routes() -> set[tuple[str, str]]:
    """(method, path) of the run commands, whose handlers make their own span (run_now's is
    the run's root): the request spans leave them alone."""
    return {
        (method, API_PREFIX + route.path)
        for route in run_control.router.routes
        for method in getattr(route, "methods", ())
    }


def create_app(settings: Settings | None = None) -> FastAPI:
    app = FastAPI(
        title="Content automation API",
        version="1.0.0",
        description="Runs, configuration and content of the content-automation platform.",
        lifespan=lifespan,
        # FastAPI's own request spans would continue a client's trace and know no run: the
        # gateway makes its own (request_spans, run_commands; ADR 20).
        telemetry={"tracing": False},
    )
    app.state.settings = settings = settings or Settings()
    # Read once, so a malformed WEBHOOK_ALLOWED_NETWORKS stops the start, not a request.
    app.state.webhook_policy = settings.webhook_policy()
    app.state.sessions = SessionSigner(
        settings.session_secret, timedelta(hours=settings.session_hours)
    )
    errors.install(app)
    metrics.install(app, on_api_port=settings.metrics_on_api_port)
    # Beside the metrics, inside HeadAsGet: it sees the route matched. ADR 20.
    app.add_middleware(RequestSpans, self_traced=run_command_routes())
    app.include_router(api_router())
    app.include_router(console.router)
    app.mount("/static", console.STATIC, name="static")
    app.add_middleware(HeadAsGet)
    app.add_middleware(BodyLimit)
    app.add_middleware(SecurityHeaders)  # added last: outermost, so BodyLimit's 413 has them too

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, bool]:
        return {"ok": True, "ready": metrics.READY._value.get() == 1}

    app.openapi = lambda: openapi_document(app)  # type: ignore[method-assign]
    return app


def openapi_document(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, made truthful: no 422 (this API answers 400), errors always JSON,
    and optional parameters that are simply absent rather than `null`."""
    if app.openapi_schema is None:
        document = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        for path in document.get("paths", {}).values():
            for operation in path.values():
                _tidy_operation(operation)
        request_body.add_schemas(document)  # of the bodies routes read themselves
        schemas = document.get("components", {}).get("schemas", {})
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
        app.openapi_schema = document
    return app.openapi_schema


def _tidy_operation(operation: dict[str, Any]) -> None:
    responses = operation.get("responses", {})
    responses.pop("422", None)
    for status, response in responses.items():
        if not status.startswith("2"):
            response["content"] = {"application/json": {"schema": ERROR_SCHEMA_REF}}
    for parameter in operation.get("parameters", []):
        schema = parameter.get("schema", {})
        options = [o for o in schema.get("anyOf", ()) if o.get("type") != "null"]
        if len(options) == 1 and len(schema["anyOf"]) == 2:
            del schema["anyOf"]
            schema.update(options[0])


cli = typer.Typer(
    add_completion=False, help="The API gateway: `api-gateway` serves the REST API and console."
)


@cli.callback(invoke_without_command=True)
def serve_api(ctx: typer.Context) -> None:
    """Serve the REST API, the console and live streams (metrics on METRICS_PORT)."""
    if ctx.invoked_subcommand is not None:
        return
    settings = Settings()
    tracing.configure("api-gateway", settings.otel_exporter_otlp_endpoint)
    start_http_server(settings.metrics_port, addr=settings.http_host, registry=metrics.REGISTRY)
    uvicorn.run(create_app(settings), host=settings.http_host, port=settings.http_port)


@cli.command("webhooks")
def deliver_webhooks() -> None:
    """Deliver webhooks: consume run events, send due deliveries (metrics on
    METRICS_PORT: give it another than the API's). Run as many beside the API as you like."""
    from api_gateway.webhooks import service

    service.main(Settings())


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    cli(args=argv, prog_name="api-gateway")


if __name__ == "__main__":
    main()
