"""A SERVER span for every gateway request (ADR 20), with the SDK's in-memory exporter, through
FastAPI's TestClient without the app's lifespan (no database, no Kafka): named by the route
template, in the trace of the run the request names or a trace of its own, a 5xx an error,
the run commands left to their own span, and nothing at all when tracing is off."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from api_gateway import errors
from api_gateway.app import API_PREFIX, create_app, run_command_routes
from api_gateway.errors import ApiError
from api_gateway.request_spans import RequestSpans, route_template
from api_gateway.settings import Settings
from contracts import tracing
from tests.support.tracing import recorded_spans

RUN = "run_20261122_083015_manual_abc123"
CLIENT_TRACE = "0af7651916cd43dd8448eb211c80319c"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    with recorded_spans() as exporter:
        yield exporter


@pytest.fixture
def client() -> TestClient:
    """The gateway without its lifespan: enough for answers that need no database."""
    return TestClient(create_app(Settings(_env_file=None)), follow_redirects=False)


def ids(span: ReadableSpan) -> tuple[str, str]:
    context = span.get_span_context()
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"


def only(spans: InMemorySpanExporter) -> ReadableSpan:
    (span,) = spans.get_finished_spans()
    spans.clear()
    return span


def test_a_request_about_a_run_is_a_server_span_of_the_runs_trace(client, spans):
    answer = client.get(f"{API_PREFIX}/run", params={"run_id": RUN})
    assert answer.status_code == 401  # no token: an answer, not an error

    span = only(spans)
    assert span.name == f"GET {API_PREFIX}/run" and span.kind is SpanKind.SERVER
    assert ids(span)[0] == tracing.run_trace_id(RUN)
    assert f"{span.parent.span_id:016x}" == f"{tracing.run_root(RUN).span_id:016x}"
    assert dict(span.attributes) == {
        "http.request.method": "GET",
        "http.route": f"{API_PREFIX}/run",
        "url.path": f"{API_PREFIX}/run",
        "http.response.status_code": 401,
        "automation.run.id": RUN,
    }
    assert span.status.status_code is StatusCode.UNSET


def test_the_name_is_the_route_template_and_a_run_id_in_the_path_counts(client, spans):
    client.get(f"{API_PREFIX}/runs/{RUN}/events")
    span = only(spans)
    assert span.name == f"GET {API_PREFIX}/runs/{{run_id}}/events"
    assert span.attributes["http.route"] == f"{API_PREFIX}/runs/{{run_id}}/events"
    assert span.attributes["url.path"] == f"{API_PREFIX}/runs/{RUN}/events"
    assert ids(span)[0] == tracing.run_trace_id(RUN)

    client.get("/sites/42")  # a console page: traced, by its template too
    assert only(spans).name == "GET /sites/{site_id}"


def test_a_request_about_no_run_is_a_trace_of_its_own_and_a_clients_trace_is_linked(client, spans):
    client.get(f"{API_PREFIX}/config", params={"site_id": 1})
    client.get(f"{API_PREFIX}/config", params={"site_id": 1, "run_id": "../not-a-run"})
    sent = {"traceparent": f"00-{CLIENT_TRACE}-b7ad6b7169203331-01"}
    client.get(f"{API_PREFIX}/config", params={"site_id": 1}, headers=sent)

    first, malformed, linked = spans.get_finished_spans()
    for span in (first, malformed, linked):
        assert span.parent is None and span.name == f"GET {API_PREFIX}/config"
        assert ids(span)[0] != tracing.run_trace_id(RUN)
    assert ids(first)[0] != ids(linked)[0] and "automation.run.id" not in malformed.attributes
    assert ids(linked)[0] != CLIENT_TRACE  # linked, not continued
    assert [f"{link.context.trace_id:032x}" for link in linked.links] == [CLIENT_TRACE]


def test_an_unmatched_request_is_named_by_its_method_alone(client, spans):
    assert client.get(f"{API_PREFIX}/no-such-call").status_code == 404
    span = only(spans)
    assert span.name == "GET" and "http.route" not in span.attributes
    assert span.attributes["http.response.status_code"] == 404


def test_the_template_has_the_prefixes_a_routes_own_path_lacks():
    """As the run commands' own span is named (run_commands.request_span)."""
    app = create_app(Settings(_env_file=None))
    run_now = next(
        found.original_route
        for found in iter_route_contexts(app.routes)
        if found.path == f"{API_PREFIX}/run_now"
    )
    assert run_now.path == "/run_now"  # what the router puts in the scope knows no prefix
    assert route_template({"app": app, "route": run_now}) == f"{API_PREFIX}/run_now"
    assert route_template({"app": app}) is None


def test_probes_static_files_and_the_run_commands_make_no_request_span(client, spans):
    assert run_command_routes() == {
        ("POST", f"{API_PREFIX}/{name}") for name in ("run_now", "pause", "resume", "cancel")
    }
    client.get("/healthz")
    client.get("/static/console.js")
    # Refused before its handler opens the command's own span: no span at all, not a second.
    assert client.post(f"{API_PREFIX}/pause", params={"run_id": RUN}).status_code == 401
    assert client.post(f"{API_PREFIX}/run_now", params={"site_id": 1}).status_code == 401
    assert spans.get_finished_spans() == ()


def test_fastapis_own_request_spans_stay_off_when_the_sdk_is_the_global_provider(
    client, spans, monkeypatch
):
    """`tracing.configure` makes the SDK the global provider, which turns FastAPI's native
    telemetry on unless the app says no: a second SERVER span per request, in the client's
    trace, and spans for dependencies and serialization."""
    global_spans = InMemorySpanExporter()
    sdk = tracing.provider("api-gateway", SimpleSpanProcessor(global_spans))
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", sdk)  # as trace.set_tracer_provider does

    client.get(f"{API_PREFIX}/run", params={"run_id": RUN})
    assert global_spans.get_finished_spans() == ()
    assert only(spans).name == f"GET {API_PREFIX}/run"


def erring_app() -> FastAPI:
    app = FastAPI()
    errors.install(app)
    app.add_middleware(RequestSpans)

    @app.get("/busy")
    async def busy() -> None:
        raise ApiError(503, "try again")

    @app.get("/broken/{item}")
    async def broken(item: int) -> None:
        raise RuntimeError("a bug")

    return app


def test_a_5xx_answer_and_an_exception_are_errors_of_the_span(spans):
    client = TestClient(erring_app(), raise_server_exceptions=False)
    assert client.get("/busy").status_code == 503
    assert client.get("/broken/7").status_code == 500

    busy, broken = spans.get_finished_spans()
    assert busy.attributes["error.type"] == "503" and busy.status.status_code is StatusCode.ERROR
    assert broken.name == "GET /broken/{item}"
    assert broken.attributes["error.type"] == "RuntimeError"
    assert broken.status.status_code is StatusCode.ERROR
    assert [event.name for event in broken.events] == ["exception"]


async def test_with_tracing_off_the_request_goes_through_untouched():
    assert not tracing.enabled()
    seen = []

    async def app(scope, receive, send) -> None:
        seen.append((scope, receive, send))

    scope = {"type": "http", "method": "GET", "path": f"{API_PREFIX}/run", "query_string": b""}

    async def receive() -> dict:
        return {}

    async def send(message) -> None:
        pass

    await RequestSpans(app)(scope, receive, send)
    assert seen == [(scope, receive, send)]  # the same objects: no wrapper, no parsing
    assert seen[0][0] is scope and seen[0][2] is send
