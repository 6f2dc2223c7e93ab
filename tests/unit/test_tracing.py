"""One trace per run (ADR 20), with the SDK's in-memory exporter: the run's derived ids, the
trace context through Kafka-style headers and the outbox, consumers that continue or link,
the GenAI span of an AI call, and what is left when tracing is off."""

from __future__ import annotations

import re
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from api_gateway.run_commands import request_span
from api_gateway.run_views import RunSummary
from contracts import commands as cmd
from contracts import events as ev
from contracts import run_logs, tracing
from contracts.codec import kafka_headers
from contracts.dead_letter import DeadLetter
from contracts.envelope import Envelope, deterministic_id, new_message
from contracts.values import ItemRef, RunConfig
from log_sink.projection import Projector
from stage_workers.ai.factory import gated_alone, offline_ai
from stage_workers.ai.offline import OfflineProvider
from stage_workers.gate.calls import SCOPE, CallScope
from stage_workers.outbox import enqueue, sent_headers
from tests.support.fake_openai import FakeOpenAI
from tests.support.otlp import Collector
from tests.support.outbox import OutboxConnection
from tests.support.runs import T0
from tests.support.tracing import recorded_spans

RUN = "run_20261122_083015_manual_abc123"
OTHER_RUN = "run_20261122_083015_manual_def456"
TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-01$")


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    with recorded_spans() as exporter:
        yield exporter


def message(payload, run_id: str = RUN, **kw) -> Envelope:
    base = {"source": "/tests", "account_id": 7, "site_id": 42, "run_id": run_id, "time": T0}
    return new_message(payload, **(base | kw))


def start_run(run_id: str = RUN) -> Envelope:
    payload = cmd.StartRun(run_id=run_id, trigger="manual", config=RunConfig())
    return message(payload, run_id, message_id=deterministic_id(run_id, "start"))


def process_batch() -> Envelope:
    payload = cmd.ProcessBatch(run_id=RUN, stage=4, batch_id="4-1", item_ids=(1,), lease_until=T0)
    return message(payload, caused_by=start_run())


def item_processed() -> Envelope:
    item = ItemRef(id=1, title="Cold brew")
    payload = ev.StageItemProcessed(stage=4, batch_id="4-1", item=item, total=1, credits=5)
    return message(payload, caused_by=process_batch(), message_id=deterministic_id("processed"))


def record(headers, topic: str = "automation.run-events", offset: int = 3) -> Any:
    """A Kafka record as aiokafka hands it to a consumer."""
    return SimpleNamespace(topic=topic, partition=1, offset=offset, key=b"42", headers=headers)


def carried(headers) -> tuple[str, str]:
    """The trace id and span id a record's traceparent names."""
    found = TRACEPARENT.match(dict(headers)["traceparent"].decode())
    assert found, headers
    return found.group(1), found.group(2)


def hex_ids(span: ReadableSpan) -> tuple[str, str]:
    context = span.get_span_context()
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"


def parent_of(span: ReadableSpan) -> str | None:
    return f"{span.parent.span_id:016x}" if span.parent else None


# --- the run's trace id ---------------------------------------------------------------------


def test_the_trace_id_is_derived_from_the_run_id_alone():
    trace_id = tracing.run_trace_id(RUN)
    assert re.fullmatch(r"[0-9a-f]{32}", trace_id)
    assert tracing.run_trace_id(RUN) == trace_id  # every service derives the same
    assert tracing.run_trace_id(OTHER_RUN) != trace_id
    root = tracing.run_root(RUN)
    assert f"{root.trace_id:032x}" == trace_id and root.span_id != 0 and root.is_remote


def test_the_gateway_and_the_run_log_show_the_derived_trace_id():
    summary = RunSummary.model_validate(
        dict.fromkeys(RunSummary.model_fields)
        | {"run_id": RUN, "site_id": 42, "trigger": "manual", "status": "running"}
        | {"current_stage": 1, "credits_used": 0}
    )
    assert summary.model_dump()["trace_id"] == tracing.run_trace_id(RUN)

    projector = Projector()
    projector.apply(message(ev.RunStarted(trigger="manual", estimate=10, balance=100)))
    files = projector.runs[RUN].files
    assert f"trace {tracing.run_trace_id(RUN)}" in files[run_logs.MAIN_LOG][0]
    assert f'"trace_id":"{tracing.run_trace_id(RUN)}"' in files[run_logs.TRACE][0]


# --- headers --------------------------------------------------------------------------------


def test_untraced_records_carry_the_run_roots_context_and_no_ce_header():
    for envelope in (start_run(), process_batch(), item_processed()):
        headers = kafka_headers(envelope)
        assert carried(headers) == (
            tracing.run_trace_id(RUN),
            f"{tracing.run_root(RUN).span_id:016x}",
        )
        assert not [name for name, _ in headers if name.lower().startswith("ce_")]
        assert dict(headers)["type"] == envelope.type.encode()


def test_untraced_spans_are_one_shared_no_op():
    assert not tracing.enabled()
    assert tracing.span("x") is tracing.UNTRACED
    assert tracing.consuming(record([]), "group", item_processed()) is tracing.UNTRACED
    assert tracing.in_run("tick", RUN) is tracing.UNTRACED
    assert tracing.run_links([RUN]) == []


def test_inject_and_extract_round_trip_through_kafka_headers(spans):
    with tracing.span("producing", context=tracing.run_context(RUN)) as span:
        headers = kafka_headers(process_batch())
    context = span.get_span_context()
    assert carried(headers) == (f"{context.trace_id:032x}", f"{context.span_id:016x}")

    back = trace.get_current_span(tracing.extract(headers)).get_span_context()
    assert (back.trace_id, back.span_id, back.is_remote) == (
        context.trace_id,
        context.span_id,
        True,
    )
    assert tracing.extract([("type", b"x")]) == tracing.extract(None)  # nothing carried


def test_tracestate_travels_with_the_traceparent(spans):
    arriving = [
        ("traceparent", f"00-{tracing.run_trace_id(RUN)}-00f067aa0ba902b7-01".encode()),
        ("tracestate", b"vendor=opaque"),
    ]
    with tracing.consuming(record(arriving), "automation-orchestrator", start_run()):
        headers = kafka_headers(process_batch())
    assert dict(headers)["tracestate"] == b"vendor=opaque"


def test_a_consumer_continues_a_record_of_the_runs_trace(spans):
    with tracing.starting_run(RUN, "POST /run_now"):
        headers = kafka_headers(start_run())
    with tracing.consuming(record(headers, "automation.run-commands"), "orch", start_run()):
        pass

    root, consumer = spans.get_finished_spans()
    assert hex_ids(root) == (tracing.run_trace_id(RUN), f"{tracing.run_root(RUN).span_id:016x}")
    assert root.parent is None  # the run's root, with the ids every service derives
    assert hex_ids(consumer)[0] == tracing.run_trace_id(RUN)
    assert parent_of(consumer) == hex_ids(root)[1]
    assert consumer.kind is SpanKind.CONSUMER and consumer.name == "process automation.run-commands"
    assert consumer.attributes == {
        "messaging.system": "kafka",
        "messaging.operation.name": "process",
        "messaging.operation.type": "process",
        "messaging.destination.name": "automation.run-commands",
        "messaging.destination.partition.id": "1",
        "messaging.consumer.group.name": "orch",
        "messaging.kafka.offset": 3,
        "messaging.kafka.message.key": "42",
        "messaging.message.id": str(start_run().message_id),
        "messaging.message.conversation_id": str(start_run().correlation_id),
        "cloudevents.event_type": "automation.run.start",
        "automation.run.id": RUN,
    }


def test_a_record_of_another_trace_is_linked_and_the_span_joins_the_run(spans):
    foreign = [("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")]
    with tracing.consuming(record(foreign), "log-sink", item_processed()):
        pass
    with tracing.consuming(record([]), "log-sink", item_processed()):  # written before tracing
        pass

    linked, bare = spans.get_finished_spans()
    for span in (linked, bare):
        assert hex_ids(span)[0] == tracing.run_trace_id(RUN)
        assert parent_of(span) == f"{tracing.run_root(RUN).span_id:016x}"
    assert [f"{link.context.trace_id:032x}" for link in linked.links] == [
        "0af7651916cd43dd8448eb211c80319c"
    ]
    assert not bare.links


def test_a_dead_letter_continues_the_refused_records_trace_traced_or_not(spans):
    arriving = [("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")]
    refused = SimpleNamespace(
        topic="automation.run-events", partition=0, offset=9, key=None, value=b"{", headers=arriving
    )
    letter = DeadLetter.of("log-sink", refused, "not JSON")
    with tracing.continuing(refused.headers), tracing.consuming(refused, "log-sink"):
        traced = letter.kafka_headers
    tracing.install(None)
    with tracing.continuing(refused.headers):
        untraced = letter.kafka_headers
    assert carried(traced)[0] == "0af7651916cd43dd8448eb211c80319c"  # under the consumer span
    assert carried(untraced) == ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331")
    assert carried(letter.kafka_headers)  # about no run and no record: a trace of its own


# --- the outbox -----------------------------------------------------------------------------


def test_an_outbox_row_keeps_the_context_of_the_span_that_enqueued_it(spans):
    conn = OutboxConnection()
    with tracing.span("stage 4 item", context=tracing.run_context(RUN)) as span:
        enqueue(conn, "automation.run-events", item_processed())  # type: ignore[arg-type]
    row = conn.row
    sent = sent_headers(row["headers"], row["payload"]["runid"])
    assert carried(sent) == hex_ids(spans.get_finished_spans()[0]) == hex_ids(span)
    assert [name for name, _ in sent] == ["content-type", "type", "traceparent"]


def test_an_outbox_row_from_before_tracing_goes_out_in_the_runs_trace():
    stored = [["content-type", "application/cloudevents+json"], ["ce_type", "x.y"]]
    sent = sent_headers(stored, RUN)
    assert [name for name, _ in sent] == ["content-type", "type", "traceparent"]
    assert carried(sent)[0] == tracing.run_trace_id(RUN)


# --- the gateway ----------------------------------------------------------------------------


def request(path: str, headers: list[tuple[bytes, bytes]] = ()) -> Any:
    from starlette.requests import Request

    route = SimpleNamespace(path=path)
    scope = {"type": "http", "method": "POST", "path": path, "headers": list(headers)}
    return Request(scope | {"route": route, "query_string": b""})


def test_run_now_is_the_runs_root_and_a_clients_trace_is_linked(spans):
    client = (b"traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    with request_span(request("/api/v1/automation/run_now", [client]), RUN, starts_run=True):
        pass
    with request_span(request("/api/v1/automation/pause"), RUN):
        pass

    root, pause = spans.get_finished_spans()
    assert root.name == "POST /api/v1/automation/run_now" and root.kind is SpanKind.SERVER
    assert hex_ids(root) == (tracing.run_trace_id(RUN), f"{tracing.run_root(RUN).span_id:016x}")
    assert [f"{link.context.span_id:016x}" for link in root.links] == ["b7ad6b7169203331"]
    assert root.attributes["http.response.status_code"] == 200
    assert root.attributes["http.route"] == "/api/v1/automation/run_now"
    assert parent_of(pause) == hex_ids(root)[1]  # a later command of the run hangs under it


# --- the AI call ----------------------------------------------------------------------------


async def ask_in_scope(ai, function: str, *args) -> Any:
    token = SCOPE.set(CallScope(run_id=RUN))
    try:
        with tracing.span("stage 4 item", context=tracing.run_context(RUN)):
            return await getattr(ai, function)(*args)
    finally:
        SCOPE.reset(token)


async def test_an_offline_ai_call_is_a_genai_client_span(spans):
    draft = await ask_in_scope(offline_ai(), "write_article", "Cold brew", "how", ["coffee"])

    call, item = spans.get_finished_spans()
    assert call.name == "chat offline" and call.kind is SpanKind.CLIENT
    assert parent_of(call) == hex_ids(item)[1] and hex_ids(call)[0] == tracing.run_trace_id(RUN)
    attributes = dict(call.attributes)
    assert attributes == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "offline",
        "gen_ai.request.model": "offline",
        "gen_ai.response.model": "offline",
        "gen_ai.output.type": "text",
        "gen_ai.usage.input_tokens": attributes["gen_ai.usage.input_tokens"],
        "gen_ai.usage.output_tokens": len(draft.markdown) // 4,
        "gen_ai.response.finish_reasons": ("stop",),
        "automation.ai.function": "write_article",
    }
    assert attributes["gen_ai.usage.input_tokens"] > 0
    (attempt,) = call.events
    assert attempt.name == "gen_ai.attempt"
    assert attempt.attributes["automation.ai.outcome"] == "answered"


async def test_an_image_is_generate_content(spans):
    await ask_in_scope(gated_alone(OfflineProvider()), "render_image", "a cup of coffee")
    call = spans.get_finished_spans()[0]
    assert call.name == "generate_content offline"
    assert call.attributes["gen_ai.output.type"] == "image"


async def test_an_openai_call_says_which_model_answered_and_why_it_stopped(spans):
    fake = FakeOpenAI().start()
    try:
        await ask_in_scope(gated_alone(fake.provider()), "write_ideas", "Coffee", ["cold brew"])
    finally:
        fake.stop()
    call = spans.get_finished_spans()[0]
    assert call.name == "chat gpt-4o-mini"
    assert call.attributes["gen_ai.provider.name"] == "openai"
    assert call.attributes["gen_ai.response.model"].startswith("gpt-4o-mini-")  # dated
    assert call.attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert call.attributes["gen_ai.output.type"] == "json"
    assert call.attributes["gen_ai.usage.output_tokens"] > 0


async def test_a_call_that_gives_up_says_why(spans):
    class Broken(OfflineProvider):
        async def write_article(self, *args):
            raise ValueError("unreadable answer")

    with pytest.raises(Exception, match="unreadable answer"):
        await ask_in_scope(gated_alone(Broken()), "write_article", "t", "b", ["k"])
    call = spans.get_finished_spans()[0]
    assert call.attributes["error.type"] == "PoisonedItem"
    assert not call.status.is_ok


# --- one run, across the services -----------------------------------------------------------


async def test_one_runs_spans_form_one_trace_from_run_now_to_the_log_sink(spans):
    """The hops of a run as the services make them, each record's headers handed to the next
    consumer as Kafka would: gateway -> orchestrator -> stage worker (its AI call, its event
    through the outbox) -> orchestrator and log-sink."""
    run_now = request("/api/v1/automation/run_now")
    with (
        request_span(run_now, RUN, starts_run=True),
        tracing.sending("automation.run-commands", start_run()),
    ):
        command = kafka_headers(start_run())
    with tracing.consuming(record(command, "automation.run-commands"), "orch", start_run()):
        batch = kafka_headers(process_batch())
    conn = OutboxConnection()
    stage_command = record(batch, "automation.stage-4.commands")
    with tracing.consuming(stage_command, "w", process_batch()), tracing.span("stage 4 item"):
        await offline_ai().write_article("Cold brew", "how", ["coffee"])
        enqueue(conn, "automation.run-events", item_processed())  # type: ignore[arg-type]
    event = sent_headers(conn.row["headers"], RUN)
    for group in ("orch", "log-sink"):
        with tracing.consuming(record(event), group, item_processed()):
            pass

    finished = spans.get_finished_spans()
    assert {hex_ids(span)[0] for span in finished} == {tracing.run_trace_id(RUN)}
    by_id = {hex_ids(span)[1]: span for span in finished}
    roots = [span for span in finished if span.parent is None]
    assert [span.name for span in roots] == ["POST /api/v1/automation/run_now"]
    for span in finished:  # every span descends from the root, none from a missing parent
        while span.parent is not None:
            span = by_id[parent_of(span)]
        assert span is roots[0]
    names = [span.name for span in finished]
    assert names.count("process automation.run-events") == 2 and "chat offline" in names


# --- export ---------------------------------------------------------------------------------


def test_spans_go_out_over_otlp_http_with_the_service_name(monkeypatch):
    for name in (*tracing.ENDPOINT_VARIABLES, "OTEL_SERVICE_NAME"):
        monkeypatch.delenv(name, raising=False)
    with Collector() as collector:
        sdk = tracing.provider(
            "orchestrator", SimpleSpanProcessor(tracing.otlp_exporter(f"{collector.endpoint}/"))
        )
        tracing.install(sdk)
        try:
            attributes = {"http.response.status_code": 200, "reasons": ("stop",), "ok": True}
            root = tracing.starting_run(
                RUN, "POST /api/v1/automation/run_now", kind=SpanKind.SERVER, attributes=attributes
            )
            with root, tracing.span("send", kind=SpanKind.PRODUCER):
                pass
        finally:
            tracing.install(None)
            sdk.shutdown()

    assert set(collector.paths) == {"/v1/traces"}
    child, span = collector.spans()  # as they ended
    root_id = f"{tracing.run_root(RUN).span_id:016x}"
    assert span.service == child.service == "orchestrator"
    assert span.name == "POST /api/v1/automation/run_now" and span.kind == "SERVER"
    assert (span.trace_id, span.span_id, span.parent_id) == (
        tracing.run_trace_id(RUN),
        root_id,
        None,
    )
    assert span.attributes == {"http.response.status_code": 200, "reasons": ("stop",), "ok": True}
    assert (child.kind, child.parent_id, child.trace_id) == ("PRODUCER", root_id, span.trace_id)


def test_no_endpoint_no_tracing(monkeypatch):
    for name in tracing.ENDPOINT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert tracing.configure("tests") is False
    assert not tracing.enabled()
