"""A SERVER span for every HTTP request the gateway answers, when tracing is on (ADR 20).

The span is named `{METHOD} {route template}` (`GET /api/v1/automation/run`, never the path
with its ids) with the HTTP attributes of OpenTelemetry's semantic conventions. A request that
names a run (`run_id` in the query, or a path segment that is a run id, as in
`/runs/{run_id}/events`) is a span of that run's trace; any other request is a trace of its own.
A client's `traceparent` is linked, not continued, as for the run commands.

Not traced here: the run-command routes, which make their own span (`run_commands.request_span`:
run_now's is the run's root, with ids derived from a run id that exists only once the handler
made it), the health check and the metrics (polled every few seconds, about nothing), and the
console's static files. With tracing off a request costs one check of `tracing.enabled()`.

A plain ASGI middleware installed beside the request metrics: inside `HeadAsGet`, so that it
sees the route the router matched (a HEAD is routed, counted and named as the GET it runs).
The route is known only once the router has matched it, so the span starts named `{METHOD}`
and takes its route's name when the answer starts (as the conventions name a request that
matched no route: just the method).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl
from weakref import WeakKeyDictionary

from fastapi.routing import iter_route_contexts
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from contracts import tracing
from contracts.values import RUN_ID_PATTERN

UNTRACED_PATHS = frozenset({"/healthz", "/metrics"})
UNTRACED_PREFIXES = ("/static/",)
_RUN_ID = re.compile(RUN_ID_PATTERN)


class RequestSpans:
    def __init__(self, app: ASGIApp, self_traced: Iterable[tuple[str, str]] = ()) -> None:
        """`self_traced`: (method, path) of the routes that make their own span."""
        self.app = app
        self.self_traced = frozenset(self_traced)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not tracing.enabled() or self._untraced(scope):
            await self.app(scope, receive, send)
            return
        await self._traced(scope, receive, send)

    def _untraced(self, scope: Scope) -> bool:
        path: str = scope["path"]
        return (
            path in UNTRACED_PATHS
            or path.startswith(UNTRACED_PREFIXES)
            or (scope["method"], path) in self.self_traced
        )

    async def _traced(self, scope: Scope, receive: Receive, send: Send) -> None:
        method: str = scope["method"]
        run_id = run_named(scope)
        attributes = {"http.request.method": method, "url.path": scope["path"]}
        if run_id is not None:
            attributes["automation.run.id"] = run_id
        with tracing.in_run(
            method,
            run_id,
            kind=tracing.SpanKind.SERVER,
            attributes=attributes,
            links=tracing.links_to(Headers(scope=scope)),
        ) as span:

            async def answering(message: Message) -> None:
                if message["type"] == "http.response.start":
                    _name(span, scope)
                    _answered(span, message["status"])
                await send(message)

            try:
                await self.app(scope, receive, answering)
            except Exception as error:
                # No answer yet (else it is cut short): the server's error handler makes it.
                span.set_attribute("error.type", type(error).__qualname__)
                raise  # the span records the exception and its ERROR status on the way out
            finally:
                _name(span, scope)


def run_named(scope: Scope) -> str | None:
    """The run a request is about: a well-formed `run_id` in its query, or a path segment
    that is a run id."""
    query = scope.get("query_string", b"")
    if b"run_id" in query:
        for name, value in parse_qsl(query.decode("latin-1")):
            if name == "run_id" and _RUN_ID.fullmatch(value):
                return value
    if "/run_" in scope["path"]:
        for segment in scope["path"].split("/"):
            if _RUN_ID.fullmatch(segment):
                return segment
    return None


def route_template(scope: Scope) -> str | None:
    """The path template of the route the router matched (None before it matched one): with
    the prefixes of the routers it was included by, which the route's own `path` lacks."""
    route = scope.get("route")
    if route is None:
        return None
    app = scope.get("app")
    if app is None:
        return getattr(route, "path", None)
    templates = _TEMPLATES.get(app)
    if templates is None:
        templates = _TEMPLATES[app] = {
            id(found.original_route): found.path for found in iter_route_contexts(app.routes)
        }
    return templates.get(id(route), getattr(route, "path", None))


# Per app: its routes' full templates by the identity of the route objects the router matches.
_TEMPLATES: WeakKeyDictionary[Any, dict[int, str]] = WeakKeyDictionary()


def _name(span: tracing.Span, scope: Scope) -> None:
    """`{METHOD} {route template}` once the router has matched a route."""
    route = route_template(scope)
    if route is not None:
        span.update_name(f"{scope['method']} {route}")
        span.set_attribute("http.route", route)


def _answered(span: tracing.Span, status: int) -> None:
    """A 4xx is an answer (the client's mistake), a 5xx an error of the span."""
    span.set_attribute("http.response.status_code", status)
    if status >= 500:
        span.set_attribute("error.type", str(status))
        span.set_status(tracing.StatusCode.ERROR)
