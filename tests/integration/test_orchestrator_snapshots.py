"""The orchestrator's snapshots against the real broker and database: killed mid-run with
snapshots stored, the next instance folds only the events after them and the run completes as
it does without; with snapshots it cannot read, it folds everything and decides the same."""

from __future__ import annotations

import asyncio
import re

import sqlalchemy as sa

from contracts import commands as cmd
from contracts import events as ev
from contracts.db import tables as t
from tests.support.kafka import end_offsets, publish
from tests.support.orchestrator import (
    assert_run_completed,
    command,
    events_of_site,
    run_completed,
    stage_offsets,
    start_orchestrator,
    start_run,
    unique_site,
    workers_playing,
)
from tests.support.runs import complete_run
from tests.support.wait import wait_until

OFTEN = {"SNAPSHOT_EVERY_EVENTS": "20", "SNAPSHOT_EVERY_SECONDS": "0.5"}


def metric(text: str, name: str) -> float:
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    assert found, f"{name} not in the metrics"
    return float(found.group(1))


def history(first_site: int, runs: int) -> list:
    """Whole completed runs of other sites, spread over the partitions."""
    events = []
    for n in range(runs):
        site, run_id = first_site + n, f"run_20261123_000000_manual_{first_site + n}"
        events += [m.model_copy(update={"site_id": site}) for m in complete_run(run_id)]
    return events


def snapshots_of(db: sa.Engine, topic: str) -> dict[int, int]:
    table = t.orchestrator_snapshots
    query = sa.select(table.c.partition, table.c.next_offset).where(table.c.topic == topic)
    with db.connect() as conn:
        return dict(conn.execute(query).all())


async def on_the_topic(kafka_bootstrap: str, topic: str) -> int:
    return sum((await end_offsets(kafka_bootstrap, topic)).values())


async def test_killed_mid_run_the_next_instance_folds_the_tail_and_completes_the_run(
    kafka_bootstrap, topics, services, db
):
    site = unique_site()
    await publish(kafka_bootstrap, topics.run_events, *history(site + 1, 12))
    events_start = await end_offsets(kafka_bootstrap, topics.run_events)
    stages_start = await stage_offsets(kafka_bootstrap, topics)
    first = await asyncio.to_thread(start_orchestrator, services, "orchestrator-snap-1", **OFTEN)
    start = start_run(site, f"run_20261123_000001_manual_{site}")
    await publish(kafka_bootstrap, topics.run_commands, start)
    run_id = start.data.run_id

    async with workers_playing(
        kafka_bootstrap, topics, run_id, stages_start, hold_stage=4
    ) as workers:
        await asyncio.wait_for(workers.holding.wait(), 60)
        # Every partition's snapshot reaches the end of the stream, then the instance dies
        # without a chance to write another.
        ends = {
            tp.partition: end
            for tp, end in (await end_offsets(kafka_bootstrap, topics.run_events)).items()
        }
        await asyncio.to_thread(
            wait_until,
            lambda: all(
                snapshots_of(db, topics.run_events).get(p, 0) >= end
                for p, end in ends.items()
                if end
            ),
            timeout=30,
            what="snapshots up to the end of every partition",
        )
        await asyncio.to_thread(first.kill9)
        workers.release.set()  # stage 4 starts while no orchestrator runs
        total = await on_the_topic(kafka_bootstrap, topics.run_events)
        second = await asyncio.to_thread(
            start_orchestrator, services, "orchestrator-snap-2", **OFTEN
        )
        scraped = second.metrics()
        events = await run_completed(kafka_bootstrap, events_start, site, run_id)

    assert metric(scraped, 'orchestrator_snapshots_total{outcome="loaded"}') >= 1
    replayed = metric(scraped, "orchestrator_replayed_events")
    assert replayed < total / 4, f"folded {replayed} of {total} events"
    assert_run_completed(events)
    # Decided as without a snapshot: each batch dispatched once, at its first attempt.
    dispatches = [m.data for m in events if isinstance(m.data, ev.StageBatchDispatched)]
    assert len(dispatches) == len({d.batch_id for d in dispatches})
    assert {d.attempt for d in dispatches} == {1}


async def test_snapshots_it_cannot_read_are_ignored_and_it_decides_the_same(
    kafka_bootstrap, topics, services, db
):
    site = unique_site()
    first = await asyncio.to_thread(start_orchestrator, services, "orchestrator-snap-3", **OFTEN)
    done = start_run(site, f"run_20261123_000002_manual_{site}")
    cancel = command(cmd.CancelRun(run_id=done.data.run_id), site)
    before = await end_offsets(kafka_bootstrap, topics.run_events)
    await publish(kafka_bootstrap, topics.run_commands, done, cancel)
    await events_of_site(
        kafka_bootstrap,
        before,
        site,
        lambda es: any(m.causation_id == cancel.message_id for m in es),
    )
    await asyncio.to_thread(first.stop)
    assert snapshots_of(db, topics.run_events), "a graceful stop writes the snapshots"
    with db.begin() as conn:
        conn.execute(
            sa.update(t.orchestrator_snapshots)
            .where(t.orchestrator_snapshots.c.topic == topics.run_events)
            .values(body=b"not a snapshot")
        )
    total = await on_the_topic(kafka_bootstrap, topics.run_events)
    second = await asyncio.to_thread(start_orchestrator, services, "orchestrator-snap-4", **OFTEN)
    scraped = second.metrics()
    assert metric(scraped, 'orchestrator_snapshots_total{outcome="ignored"}') >= 1
    assert metric(scraped, "orchestrator_replayed_events") == total

    # The state folded from the beginning knows the ended run and the commands answered.
    after = await end_offsets(kafka_bootstrap, topics.run_events)
    again = start_run(site, f"run_20261123_000003_manual_{site}")
    pause_ended = command(cmd.PauseRun(run_id=done.data.run_id), site)
    await publish(kafka_bootstrap, topics.run_commands, done, cancel, pause_ended, again)
    events = await events_of_site(
        kafka_bootstrap, after, site, lambda es: any(m.causation_id == again.message_id for m in es)
    )
    answers = {m.causation_id: m.data for m in events}
    assert done.message_id not in answers and cancel.message_id not in answers, "repeats"
    assert answers[pause_ended.message_id] == ev.CommandRejected(
        command=pause_ended.type,
        reason=f"run {done.data.run_id} is cancelled",
        status="cancelled",
    )
    assert isinstance(answers[again.message_id], ev.RunStarted)
