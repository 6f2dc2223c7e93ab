"""One run is one trace across the processes (ADR 20): the gateway, the orchestrator, the stage
workers and the log-sink, each a process of its own, export their spans over OTLP/HTTP to a
receiver in the test (tests/support/otlp.py), as they would to Jaeger. A run started with
`POST run_now` on the gateway, through to its completion, reads back as one tree under the
gateway's run_now span, whose ids every service derives from the run id alone."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator

import pytest

from contracts import tracing
from contracts.events import RunCompleted
from contracts.topics import STAGE_NUMBERS
from tests.support.otlp import Collector, ReceivedSpan
from tests.support.pipeline import Pipeline, api_client, new_site
from tests.support.services import free_port
from tests.support.wait import WaitTimeout, wait_until

API = "/api/v1/automation"
FAST = {"LEASE_SECONDS": "15", "TICK_SECONDS": "0.2"}
TRACED_SERVICES = {"api-gateway", "orchestrator", "stage-workers", "log-sink"}


@pytest.fixture
def collector() -> Iterator[Collector]:
    with Collector() as receiver:
        yield receiver


async def test_a_runs_spans_from_every_process_form_one_trace(
    collector, db, services, kafka_bootstrap, topics
):
    # The collector is set up before the services: it still answers while they stop.
    traced = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "200"}
    port = free_port()
    services.start("orchestrator", "orchestrator", env=traced | FAST)
    services.start("workers", "stage-worker", env=traced | {"OFFLINE_LATENCY_MS": "10"})
    services.start("log-sink", "log-sink", env=traced, timeout=90)
    services.start("gateway", "api-gateway", env=traced | {"GATEWAY_PORT": str(port)})
    site = new_site(db, keyword_count=10, credits=100_000)
    api = api_client(db, site, port)

    started = api.post("/run_now", params={"site_id": site.site_id})
    assert started.status_code == 200, started.text
    run_id = started.json()["run_id"]
    state = await Pipeline(kafka_bootstrap, topics).finished(run_id, timeout=300)
    assert state.status == "completed", state.error

    def shown_completed() -> dict | None:
        answer = api.get("/run", params={"run_id": run_id})  # a read of the run: in its trace
        return (
            answer.json()
            if answer.status_code == 200 and answer.json()["status"] == "completed"
            else None
        )

    run = await asyncio.to_thread(wait_until, shown_completed, timeout=60, what="the run read")
    trace_id = tracing.run_trace_id(run_id)
    assert run["trace_id"] == trace_id
    root_id = f"{tracing.run_root(run_id).span_id:016x}"

    def exported() -> list[ReceivedSpan] | None:
        """The run's spans once the last of them is in: the root, the completion handled by
        the orchestrator and the log-sink, the read above, and no span whose parent is still
        on its way."""
        spans = [s for s in collector.spans() if s.trace_id == trace_id]
        ids = {s.span_id for s in spans}
        completed = {
            s.service
            for s in spans
            if s.kind == "CONSUMER"
            and s.attributes.get("cloudevents.event_type") == RunCompleted.TYPE
        }
        read = any(s.name == f"GET {API}/run" for s in spans)
        whole = all(s.parent_id in ids for s in spans if s.parent_id is not None)
        done = root_id in ids and completed >= {"orchestrator", "log-sink"} and read and whole
        return spans if done else None

    try:
        spans = await asyncio.to_thread(
            wait_until, exported, timeout=60, what="the run's spans at the collector"
        )
    except WaitTimeout:
        spans = [s for s in collector.spans() if s.trace_id == trace_id]  # say what is missing

    # Every span about the run is in the run's trace, and the trace is one tree under the root.
    about_the_run = [
        s for s in collector.spans() if s.attributes.get("automation.run.id") == run_id
    ]
    assert about_the_run and {s.trace_id for s in about_the_run} == {trace_id}
    [root] = [s for s in spans if s.parent_id is None]
    assert (root.span_id, root.service, root.kind) == (root_id, "api-gateway", "SERVER")
    assert root.name == f"POST {API}/run_now"
    assert root.attributes["http.route"] == f"{API}/run_now"
    assert root.attributes["http.response.status_code"] == 200
    ids = {s.span_id for s in spans}
    assert len(ids) == len(spans), "a span id twice"
    orphans = [(s.service, s.name, s.parent_id) for s in spans if s.parent_id not in ids | {None}]
    assert not orphans, orphans

    finished_by = {
        s.service
        for s in spans
        if s.kind == "CONSUMER" and s.attributes.get("cloudevents.event_type") == RunCompleted.TYPE
    }
    assert finished_by == {"orchestrator", "log-sink"}
    by_service = Counter(s.service for s in spans)
    assert set(by_service) >= TRACED_SERVICES, by_service

    # Each AI call is a GenAI client span, with the model and the tokens.
    calls = [s for s in spans if "gen_ai.operation.name" in s.attributes]
    assert calls, Counter(s.name for s in spans)
    for call in calls:
        assert (call.service, call.kind) == ("stage-workers", "CLIENT")
        assert call.attributes["gen_ai.request.model"] == "offline"
        assert call.name == f"{call.attributes['gen_ai.operation.name']} offline"
        assert {"gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens"} <= set(call.attributes)
    chats = [c for c in calls if c.attributes["gen_ai.operation.name"] == "chat"]
    assert chats and all(c.attributes["gen_ai.usage.input_tokens"] > 0 for c in chats)

    # Each record handled is a Kafka consumer span on a topic of this test's namespace.
    consumed = [s for s in spans if s.kind == "CONSUMER"]
    for span in consumed:
        assert span.attributes["messaging.system"] == "kafka"
        assert span.attributes["messaging.destination.name"].startswith(topics.namespace)
        assert span.name == f"process {span.attributes['messaging.destination.name']}"
    topics_by_service = {(s.service, s.attributes["messaging.destination.name"]) for s in consumed}
    assert topics_by_service >= {
        ("orchestrator", topics.run_commands),
        ("orchestrator", topics.run_events),
        ("log-sink", topics.run_events),
        *{("stage-workers", topics.stage(n)) for n in STAGE_NUMBERS},
    }, topics_by_service

    # The gateway's read of the run joined it; the log-sink's writes, for many runs, link it.
    reads = [s for s in spans if s.name == f"GET {API}/run"]
    assert {(s.service, s.kind, s.parent_id) for s in reads} == {("api-gateway", "SERVER", root_id)}
    assert 200 in {s.attributes["http.response.status_code"] for s in reads}
    writes = [
        s for s in collector.spans() if s.service == "log-sink" and s.name == "write run logs"
    ]
    assert any((trace_id, root_id) in s.links for s in writes)
    assert all(s.trace_id != trace_id for s in writes)
