"""One trace per run through the real broker (ADR 20): a run command sent under the run's root
span, handled by the orchestrator (in this process, with its real consumer and producer), and
what it decides, all in the run's trace; a dead letter the stage workers publish keeps the
refused record's trace."""

from __future__ import annotations

import asyncio
import uuid
from types import SimpleNamespace

from api_gateway.run_commands import new_run_id
from contracts import commands as cmd
from contracts import tracing
from contracts.codec import decode
from contracts.dead_letter import DeadLetter
from contracts.envelope import new_message
from contracts.values import RunConfig
from orchestrator.bootstrap import bootstrap
from orchestrator.settings import Settings
from stage_workers.bootstrap import DeadLetters
from tests.support.kafka import end_offsets, publish, read_until
from tests.support.tracing import recorded_spans
from tests.support.wait import wait_until_async

FOREIGN = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def traceparent(record) -> tuple[str, str]:
    _, trace_id, span_id, _ = dict(record.headers)["traceparent"].decode().split("-")
    return trace_id, span_id


def ids(span) -> tuple[str, str]:
    context = span.get_span_context()
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"


async def test_a_run_command_and_what_it_decides_are_one_trace_across_the_broker(
    kafka_bootstrap, topics
):
    settings = Settings(
        kafka_bootstrap_servers=kafka_bootstrap,
        topic_namespace=topics.namespace,
        kafka_group_prefix=f"tracing-{uuid.uuid4().hex[:8]}.",
        scheduler_enabled=False,
        snapshots_enabled=False,  # Kafka alone: no database on this path
        tick_seconds=0.2,
    )
    run_id = new_run_id()
    start = new_message(
        cmd.StartRun(run_id=run_id, trigger="manual", estimate=1, balance=100, config=RunConfig()),
        source="/tests/tracing",
        account_id=9,
        site_id=int(uuid.uuid4().int % 10**9) + 10**9,
        run_id=run_id,
    )
    with recorded_spans() as spans:
        orchestrator = bootstrap(settings)
        running = asyncio.create_task(orchestrator.run())
        try:

            async def caught_up() -> bool:
                return orchestrator.ready

            await wait_until_async(caught_up, timeout=60, what="the orchestrator caught up")
            stage_1 = await end_offsets(kafka_bootstrap, topics.stage(1))
            with tracing.starting_run(run_id, "POST /api/v1/automation/run_now"):
                await publish(kafka_bootstrap, topics.run_commands, start)
            records = await read_until(
                kafka_bootstrap,
                stage_1,
                lambda found: any(decode(r.value).run_id == run_id for r in found),
                timeout=60,
            )
        finally:
            orchestrator.stopping.set()
            await asyncio.wait_for(running, 30)
        finished = spans.get_finished_spans()

    (stage_command,) = [r for r in records if decode(r.value).run_id == run_id]
    root = next(s for s in finished if s.name == "POST /api/v1/automation/run_now")
    handled = next(
        s
        for s in finished
        if s.name == f"process {topics.run_commands}"
        and s.attributes.get("messaging.message.id") == str(start.message_id)
    )
    assert ids(root) == (tracing.run_trace_id(run_id), f"{tracing.run_root(run_id).span_id:016x}")
    assert ids(handled)[0] == tracing.run_trace_id(run_id)
    assert f"{handled.parent.span_id:016x}" == ids(root)[1]  # continued across the broker
    # The stage command the orchestrator decided carries its consumer span's context.
    assert traceparent(stage_command) == ids(handled)
    assert not [name for name, _ in stage_command.headers if name.lower().startswith("ce_")]


async def test_a_dead_letter_sent_by_the_workers_keeps_the_refused_records_trace(
    kafka_bootstrap, topics
):
    refused = SimpleNamespace(
        topic=topics.stage(3),
        partition=0,
        offset=17,
        key=b"x",
        value=b"{not json",
        headers=[("traceparent", FOREIGN)],
    )
    letter = DeadLetter.of("automation-stage-3", refused, "not JSON")
    start = await end_offsets(kafka_bootstrap, topics.dead_letter)

    dead_letters = DeadLetters(kafka_bootstrap, topics.dead_letter)
    await dead_letters.start()
    try:
        with tracing.continuing(refused.headers):  # as stage_workers.handlers sends it
            await dead_letters.send(letter)
    finally:
        await dead_letters.stop()

    records = await read_until(
        kafka_bootstrap,
        start,
        lambda found: any(DeadLetter.decode(r.value) == letter for r in found),
    )
    (sent,) = [r for r in records if DeadLetter.decode(r.value) == letter]
    assert traceparent(sent) == ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331")
    assert not [name for name, _ in sent.headers if name.lower().startswith("ce_")]
