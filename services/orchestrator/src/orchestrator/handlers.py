"""The orchestrator's handlers: one function per input, over its ports (ports.py). Each takes
the site's state, asks the pure transitions what follows (transitions.py, decide.py), keeps
the new state and sends what was decided. The runner decodes records and commits; nothing here
knows Kafka, so a test drives these with fake outputs and no broker."""

from __future__ import annotations

import asyncio
import logging

from aiokafka import ConsumerRecord

from contracts import tracing
from contracts.dead_letter import DeadLetter
from contracts.envelope import Envelope
from orchestrator import credit_watch, metrics, transitions
from orchestrator.decide import Outgoing
from orchestrator.ports import Ports
from orchestrator.sites import SiteState

log = logging.getLogger("orchestrator")


async def on_run_command(ports: Ports, partition: int, message: Envelope) -> None:
    before = ports.sites.get(message.site_id, partition)
    with metrics.decide_seconds.time():
        decided, site = transitions.on_command(before, message, ports.clock(), ports.limits)
    outcome = decided[0].message.type.rsplit(".", 1)[-1] if decided else "repeat"
    metrics.commands.labels(type=message.type, outcome=outcome).inc()
    await keep(ports, site, decided, before)


async def on_run_event(ports: Ports, partition: int, message: Envelope, *, deciding: bool) -> None:
    """`deciding` False while catching up on history: the event is only folded."""
    before = ports.sites.get(message.site_id, partition)
    decided, site = transitions.on_event(
        before, message, ports.clock(), ports.limits, deciding=deciding
    )
    metrics.events_folded.inc()
    await keep(ports, site, decided, before)


async def on_unreadable(ports: Ports, record: ConsumerRecord, reason: str) -> None:
    log.warning(
        "unreadable record %s/%s@%s: %s", record.topic, record.partition, record.offset, reason
    )
    metrics.dead_letters.labels(record.topic).inc()
    await ports.outputs.dead_letter(DeadLetter.of(ports.group_id, record, reason))


async def on_tick(ports: Ports) -> None:
    """The clock: what every active run needs now."""
    for before in ports.sites.with_active_run():
        with metrics.decide_seconds.time():
            decided, site = transitions.on_tick(
                before, before.active_run_id, ports.clock(), ports.limits
            )
        # Most ticks decide nothing: only those that do make a span.
        traced = tracing.in_run("tick", before.active_run_id) if decided else tracing.UNTRACED
        with traced:
            await keep(ports, site, decided, before)
    metrics.count_active(ports.sites.active_runs())


async def check_credits(ports: Ports) -> None:
    """Resume the runs paused for credits whose balance now pays (credit_watch)."""
    waiting = credit_watch.waiting_for_credits(ports.sites.active_runs())
    if not waiting:
        return
    try:
        funds = await asyncio.to_thread(ports.read_funds, waiting)
        for command in credit_watch.resumes(waiting, funds, ports.clock()):
            with tracing.sending(ports.topics.run_commands, command):
                await ports.outputs.send(ports.topics.run_commands, command.key, command)
            log.info("run %s: %s", command.run_id, command.data.reason)
    except Exception:
        log.exception("credit check failed; next check in one interval")


async def schedule(ports: Ports) -> None:
    """One scheduler pass: each due slot claimed once across replicas, its StartRun sent."""
    topic = ports.topics.run_commands

    def publish(message: Envelope) -> None:
        # The scheduled start is the run's root span, as run_now is for a manual one.
        with tracing.starting_run(
            message.run_id or "",
            f"send {topic}",
            kind=tracing.SpanKind.PRODUCER,
            attributes=tracing.send_attributes(topic, message),
        ):
            ports.outputs.send_from_thread(topic, message)

    try:
        started = await asyncio.to_thread(ports.run_scheduler, ports.clock(), publish)
        metrics.scheduled_starts.inc(len(started))
    except Exception:
        log.exception("scheduler pass failed; next pass in one interval")


async def keep(ports: Ports, site: SiteState, decided: list[Outgoing], before: SiteState) -> None:
    """Keep the new state and send what was decided. Its own events are in that state already
    (the next decision must see them); their copies on the stream are repeats. Until every
    output is handed over, the state is not settled (and no snapshot is taken)."""
    with ports.outputs.handing_over():
        ports.sites.put(site)
        for out in decided:
            if out.is_event:
                metrics.run_event(out.message, before.run(out.message.run_id))
                topic = ports.topics.run_events
            else:
                metrics.stage_commands.labels(stage=str(out.stage)).inc()
                topic = ports.topics.stage(out.stage)
            await ports.outputs.send(topic, out.key, out.message)
