"""One trace per run, across every service and every Kafka hop (ADR 20).

A run's trace id, and the span id of its root, are derived from the run id: every service joins
the run's trace without storing or asking anything, and the gateway and the run log can show
the trace id of any run. The span that starts a run (the gateway's run_now, the scheduler's
start) is the root, with exactly those ids; every other span of the run descends from it.

Every record carries the W3C `traceparent` (and `tracestate`, when there is one) of the span
that produced it, injected by OpenTelemetry's propagator. A consumer continues the record's
context when it belongs to the run's trace; otherwise (a record written before tracing, or by a
producer that traced elsewhere) it starts under the run's root and links to what the record
carried.

Spans are exported over OTLP (HTTP/protobuf) only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set
(`configure`). Without it nothing is recorded: `span` and `consuming` hand back a shared
non-recording span without touching the OpenTelemetry context, and a record's `traceparent` is
the run root's, computed once per run. That is the whole cost of tracing when it is off.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import Link, Span, SpanContext, TraceFlags

# Re-exported, so that the services need no opentelemetry import of their own.
from opentelemetry.trace import SpanKind as SpanKind
from opentelemetry.trace import StatusCode as StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from contracts.envelope import Envelope

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
INSTRUMENTATION = "content-automation"
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
# Sampled: a service that records joins the run's trace even when the one before it did not.
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_PROPAGATOR = TraceContextTextMapPropagator()
# The span a helper hands back when tracing is off (it records nothing), and the context
# manager around it, which callers also use for a block they do not trace.
NO_SPAN = trace.INVALID_SPAN
UNTRACED = contextlib.nullcontext(NO_SPAN)

KafkaHeaders = Sequence[tuple[str, bytes]]


# --- the run's trace ------------------------------------------------------------------------


@lru_cache(maxsize=4096)
def run_root(run_id: str) -> SpanContext:
    """The run's root span as a remote parent: trace id and span id from a hash of the run id
    (run ids are readable strings, not UUIDs, so their own bits cannot serve)."""
    digest = hashlib.sha256(b"automation-run-trace/" + run_id.encode()).digest()
    trace_id = int.from_bytes(digest[:16], "big") or 1
    span_id = int.from_bytes(digest[16:24], "big") or 1
    return SpanContext(trace_id, span_id, is_remote=True, trace_flags=_SAMPLED)


def run_trace_id(run_id: str) -> str:
    """The run's trace id as 32 lower-case hex digits, as tracing backends show and search it."""
    return trace.format_trace_id(run_root(run_id).trace_id)


def run_links(run_ids: Iterable[str], most: int = 100) -> list[Link]:
    """Links to the roots of runs' traces, for a span that works for many runs at once (a
    sink's write); empty when tracing is off. The SDK keeps 128 links a span at most."""
    if _tracer is None:
        return []
    return [Link(run_root(run_id)) for run_id in sorted(run_ids)[:most]]


def run_context(run_id: str) -> Context:
    """A context whose current span is the run's root: spans started in it join the run."""
    return trace.set_span_in_context(trace.NonRecordingSpan(run_root(run_id)), Context())


# --- the tracer: off unless configured ------------------------------------------------------

_tracer: trace.Tracer | None = None
# While set, the next ids the SDK generates are this run's root ids (see `starting_run`).
_root_of: ContextVar[str | None] = ContextVar("run_root_of", default=None)


def enabled() -> bool:
    return _tracer is not None


def configure(service_name: str, endpoint: str | None = None) -> bool:
    """Export this process's spans over OTLP/HTTP when an endpoint is given (from settings) or
    in the environment; otherwise leave tracing off. True when it is on."""
    if _tracer is not None:  # configured before (a service started twice in one process)
        return True
    if not (endpoint or any(os.environ.get(name) for name in ENDPOINT_VARIABLES)):
        return False
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    exporter = otlp_exporter(endpoint)
    sdk = provider(service_name, BatchSpanProcessor(exporter))
    trace.set_tracer_provider(sdk)
    install(sdk)
    return True


def otlp_exporter(endpoint: str | None) -> SpanExporter:
    """OTLP over HTTP/protobuf to `<endpoint>/v1/traces`. The SDK reads the variables itself
    (the traces-only one first) when they are set; a value that came from a .env file reaches
    it only through the settings, as `endpoint`."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    if any(os.environ.get(name) for name in ENDPOINT_VARIABLES):
        return OTLPSpanExporter()
    return OTLPSpanExporter(endpoint=f"{(endpoint or '').rstrip('/')}/v1/traces")


def provider(service_name: str, *processors: SpanProcessor) -> TracerProvider:
    """An SDK tracer provider for this service whose ids make a run's starting span its root.
    `OTEL_SERVICE_NAME`, when set, names the service instead; the sampler is the SDK's
    (`OTEL_TRACES_SAMPLER`), by default: record what the parent recorded, and every root."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": service_name}
    sdk = TracerProvider(resource=Resource.create(attributes), id_generator=_run_ids())
    for processor in processors:
        sdk.add_span_processor(processor)
    return sdk


def install(sdk: trace.TracerProvider | None) -> None:
    """Trace through `sdk` from now on (None: tracing off). `configure` calls it; tests call it
    with a provider over an in-memory exporter, and with None afterwards."""
    global _tracer
    _tracer = sdk.get_tracer(INSTRUMENTATION) if sdk is not None else None


def _run_ids() -> Any:
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

    class RunRootIds(RandomIdGenerator):
        """Random ids, except for the span that starts a run: the run root's."""

        def generate_trace_id(self) -> int:
            run_id = _root_of.get()
            return run_root(run_id).trace_id if run_id else super().generate_trace_id()

        def generate_span_id(self) -> int:
            run_id = _root_of.get()
            return run_root(run_id).span_id if run_id else super().generate_span_id()

        def is_trace_id_random(self) -> bool:
            return _root_of.get() is None  # a derived id is not random (W3C level 2 flag)

    return RunRootIds()


# --- spans ----------------------------------------------------------------------------------


def current_span() -> Span:
    return trace.get_current_span()


def span(
    name: str,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Mapping[str, Any] | None = None,
    context: Context | None = None,
    links: Sequence[Link] = (),
) -> contextlib.AbstractContextManager[Span]:
    """A span made current for the block; a shared no-op when tracing is off. Set attributes
    known only later behind `span.is_recording()`, so that an untraced process skips them."""
    if _tracer is None:
        return UNTRACED
    return _tracer.start_as_current_span(
        name, context=context, kind=kind, attributes=attributes, links=links
    )


def in_run(name: str, run_id: str | None, **kwargs: Any) -> contextlib.AbstractContextManager[Span]:
    """A span in the run's trace: under the current span when that is in the run's trace (or
    there is no run), else under the run's root."""
    if _tracer is None:
        return UNTRACED
    if run_id is not None and not _in_trace_of(run_id, trace.get_current_span()):
        kwargs["context"] = run_context(run_id)
    return span(name, **kwargs)


@contextlib.contextmanager
def starting_run(
    run_id: str, name: str, *, kind: SpanKind = SpanKind.INTERNAL, **kwargs: Any
) -> Iterator[Span]:
    """The run's root span: the one whose ids every service derives from the run id. Whatever
    trace was current (an HTTP client's) is linked, not continued: the run has its own."""
    if _tracer is None:
        yield NO_SPAN
        return
    current = trace.get_current_span().get_span_context()
    links = [*kwargs.pop("links", ()), *([Link(current)] if current.is_valid else [])]
    token = _root_of.set(run_id)
    try:
        root = _tracer.start_span(name, context=Context(), kind=kind, links=links, **kwargs)
    finally:
        _root_of.reset(token)
    with trace.use_span(root, end_on_exit=True):
        yield root


def consuming(
    record: Any, group: str, message: Envelope | None = None
) -> contextlib.AbstractContextManager[Span]:
    """The CONSUMER span `process <topic>` of one Kafka record (and the message read from it,
    when it could be read), with the messaging attributes of OpenTelemetry's semantic
    conventions, in the run's trace (`parent_of`)."""
    if _tracer is None:
        return UNTRACED
    run_id = message.run_id if message is not None else None
    context, links = parent_of(record.headers, run_id)
    attributes: dict[str, Any] = {
        "messaging.system": "kafka",
        "messaging.operation.name": "process",
        "messaging.operation.type": "process",
        "messaging.destination.name": record.topic,
        "messaging.destination.partition.id": str(record.partition),
        "messaging.consumer.group.name": group,
        "messaging.kafka.offset": record.offset,
    }
    if record.key is not None:
        attributes["messaging.kafka.message.key"] = record.key.decode(errors="replace")
    if message is not None:
        attributes |= _message_attributes(message)
    return span(
        f"process {record.topic}",
        kind=SpanKind.CONSUMER,
        attributes=attributes,
        context=context,
        links=links,
    )


def sending(topic: str, message: Envelope) -> contextlib.AbstractContextManager[Span]:
    """The PRODUCER span `send <topic>` of one message, in its run's trace; the record sent
    within it carries its context."""
    if _tracer is None:
        return UNTRACED
    return in_run(
        f"send {topic}",
        message.run_id,
        kind=SpanKind.PRODUCER,
        attributes=send_attributes(topic, message),
    )


def send_attributes(topic: str, message: Envelope) -> dict[str, Any]:
    return {
        "messaging.system": "kafka",
        "messaging.operation.name": "send",
        "messaging.operation.type": "send",
        "messaging.destination.name": topic,
        "messaging.kafka.message.key": message.key.decode(),
        **_message_attributes(message),
    }


def _message_attributes(message: Envelope) -> dict[str, Any]:
    attributes = {
        "messaging.message.id": str(message.message_id),
        "messaging.message.conversation_id": str(message.correlation_id),
        "cloudevents.event_type": message.type,
    }
    if message.run_id is not None:
        attributes["automation.run.id"] = message.run_id
    return attributes


def parent_of(headers: KafkaHeaders | None, run_id: str | None) -> tuple[Context, list[Link]]:
    """Where a consumer's span of a record goes: under the context the record carries when it
    is in the run's trace (or the record is about no run); else under the run's root, linked to
    the carried context if there is one."""
    carried = extract(headers)
    carried_span = trace.get_current_span(carried)
    if run_id is None or _in_trace_of(run_id, carried_span):
        return carried, []
    found = carried_span.get_span_context()
    return run_context(run_id), [Link(found)] if found.is_valid else []


def _in_trace_of(run_id: str, current: Span) -> bool:
    found = current.get_span_context()
    return found.is_valid and found.trace_id == run_root(run_id).trace_id


@contextlib.contextmanager
def continuing(headers: KafkaHeaders | None) -> Iterator[None]:
    """Make the context a record carries current, traced or not: what is produced about it
    (a dead letter) continues its trace."""
    token = otel_context.attach(extract(headers))
    try:
        yield
    finally:
        otel_context.detach(token)


# --- Kafka headers --------------------------------------------------------------------------


class _KafkaGetter(Getter[KafkaHeaders]):
    def get(self, carrier: KafkaHeaders, key: str) -> list[str] | None:
        found = [value.decode(errors="replace") for name, value in carrier if name == key]
        return found or None

    def keys(self, carrier: KafkaHeaders) -> list[str]:
        return [name for name, _ in carrier]


_GETTER = _KafkaGetter()


def links_to(carrier: Mapping[str, str]) -> list[Link]:
    """A link to the trace an HTTP request's `traceparent` names, if it names one: a client's
    trace is linked, never continued (a run has its own)."""
    found = trace.get_current_span(_PROPAGATOR.extract(carrier, context=Context()))
    context = found.get_span_context()
    return [Link(context)] if context.is_valid else []


def extract(headers: KafkaHeaders | None) -> Context:
    """The context a record's headers carry (an empty one when they carry none)."""
    return _PROPAGATOR.extract(list(headers or ()), context=Context(), getter=_GETTER)


def inject(context: Context) -> list[tuple[str, bytes]]:
    """`traceparent` (and `tracestate`) headers for a context, by OpenTelemetry's propagator."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=context)
    return [(name, value.encode()) for name, value in carrier.items()]


def headers(run_id: str | None) -> list[tuple[str, bytes]]:
    """The trace headers of a record produced now about `run_id`: the current span's when it
    is in the run's trace, else the run root's; about no run, the current span's, else those
    of a new trace (every record carries a traceparent)."""
    current = trace.get_current_span()
    if current.get_span_context().is_valid and (run_id is None or _in_trace_of(run_id, current)):
        return inject(trace.set_span_in_context(current, Context()))
    if run_id is not None:
        return list(_run_root_headers(run_id))
    fresh = SpanContext(
        random.getrandbits(128) or 1, random.getrandbits(64) or 1, True, trace_flags=_SAMPLED
    )
    return inject(trace.set_span_in_context(trace.NonRecordingSpan(fresh), Context()))


@lru_cache(maxsize=4096)
def _run_root_headers(run_id: str) -> tuple[tuple[str, bytes], ...]:
    return tuple(inject(run_context(run_id)))


def with_run_headers(
    stored: Iterable[tuple[str, bytes]], run_id: str | None
) -> list[tuple[str, bytes]]:
    """Headers kept from before (an outbox row enqueued by an older release) with the run
    root's `traceparent` added when they carry none."""
    kept = list(stored)
    if run_id is None or any(name == TRACEPARENT for name, _ in kept):
        return kept
    return kept + list(_run_root_headers(run_id))
