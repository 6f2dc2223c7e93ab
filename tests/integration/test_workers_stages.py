"""The stage worker as a process on the real broker and database: every stage's effect, and
that redelivery, a kill -9, an empty account and a malformed record change nothing they must not.

Helpers for reading the run's events first, then the tests; tenants and commands come from
tests/support/workers.py."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from contracts.codec import decode
from contracts.db import tables as t
from contracts.dead_letter import DeadLetter
from contracts.envelope import Envelope
from contracts.events import RunPaused, RunResumed
from contracts.topics import Topics
from tests.support.kafka import end_offsets, publish, read_until
from tests.support.wait import wait_until
from tests.support.workers import (
    ESPRESSO,
    FRENCH_PRESS,
    Tenant,
    add_keywords,
    balance,
    command,
    count,
    new_tenant,
    of_type,
    process_batch,
    scalar,
    start_stage,
)


def batches_completed(*batch_ids: str):
    def done(events: list[Envelope]) -> bool:
        seen = {e.data.batch_id for e in of_type(events, "StageBatchCompleted")}
        return set(batch_ids) <= seen

    return done


def stage_started(stage: int):
    return lambda events: any(e.data.stage == stage for e in of_type(events, "StageStarted"))


@dataclass
class Bus:
    """Publishes stage commands and reads one run's events back."""

    bootstrap: str
    topics: Topics

    async def mark(self) -> dict:
        return await end_offsets(self.bootstrap, self.topics.run_events)

    async def send(self, stage: int, *messages: Envelope) -> None:
        await publish(self.bootstrap, self.topics.stage(stage), *messages)

    async def events(self, start: dict, run_id: str, done, timeout: float = 60.0) -> list:
        def mine(records) -> list[Envelope]:
            decoded = (decode(r.value) for r in records)
            return [e for e in decoded if e.run_id == run_id]

        records = await read_until(self.bootstrap, start, lambda rs: done(mine(rs)), timeout)
        return mine(records)

    async def stage(self, tenant: Tenant, stage: int, batch_size: int) -> list[Envelope]:
        """Start a stage, then process everything it picked in batches; returns its events."""
        start = await self.mark()
        await self.send(stage, start_stage(tenant, stage))
        events = await self.events(start, tenant.run_id, stage_started(stage))
        [started] = [e for e in of_type(events, "StageStarted") if e.data.stage == stage]
        ids = [item.id for item in started.data.items]
        batches = [ids[i : i + batch_size] for i in range(0, len(ids), batch_size)]
        commands = [process_batch(tenant, stage, b, n) for n, b in enumerate(batches, 1)]
        await self.send(stage, *commands)
        names = [c.data.batch_id for c in commands]
        return await self.events(start, tenant.run_id, batches_completed(*names))


async def stage_2_picked(bus: Bus, tenant: Tenant) -> tuple[dict, list[int]]:
    """Stage 1 done, stage 2 started: the stream's end before stage 2, and what it picked."""
    await bus.stage(tenant, 1, batch_size=20)
    start = await bus.mark()
    await bus.send(2, start_stage(tenant, 2))
    [started] = of_type(await bus.events(start, tenant.run_id, stage_started(2)), "StageStarted")
    return start, [item.id for item in started.data.items]


@pytest.fixture
def bus(kafka_bootstrap, topics) -> Bus:
    return Bus(kafka_bootstrap, topics)


def item_ids(events: list[Envelope], name: str = "StageItemProcessed") -> list[int]:
    return [e.data.item.id for e in of_type(events, name)]


async def test_stages_1_to_7_turn_keywords_into_articles_in_review(db, bus, services):
    services.start("workers", "stage-worker")
    tenant = new_tenant(db, credits=1000)
    keyword_ids = add_keywords(db, tenant.site_id, ESPRESSO + FRENCH_PRESS)
    k, c = t.keywords.c, t.clusters.c

    stage_1 = await bus.stage(tenant, 1, batch_size=20)
    assert sorted(item_ids(stage_1)) == keyword_ids
    [done_1] = of_type(stage_1, "StageBatchCompleted")
    assert (done_1.data.processed, done_1.data.credits) == (10, 2)
    assert count(db, t.keywords, k.site_id == tenant.site_id, k.status == "mapped") == 10
    clusters = count(db, t.clusters, c.site_id == tenant.site_id)
    assert 2 <= clusters <= 4
    assert sum(e.data.outputs for e in of_type(stage_1, "StageItemProcessed")) == clusters

    stage_2 = await bus.stage(tenant, 2, batch_size=1)
    assert len(of_type(stage_2, "StageItemProcessed")) == clusters
    ideas = count(db, t.content_ideas, t.content_ideas.c.site_id == tenant.site_id)
    assert ideas == 3 * clusters

    stage_3 = await bus.stage(tenant, 3, batch_size=20)
    assert len(item_ids(stage_3)) == ideas
    assert count(db, t.tasks, t.tasks.c.site_id == tenant.site_id) == ideas

    stage_4 = await bus.stage(tenant, 4, batch_size=1)
    assert len(item_ids(stage_4)) == ideas
    words = scalar(
        db,
        sa.select(sa.func.min(t.content.c.word_count)).where(t.content.c.site_id == tenant.site_id),
    )
    assert words >= 700

    stage_5 = await bus.stage(tenant, 5, batch_size=1)
    assert len(item_ids(stage_5)) == ideas
    assert count(db, t.images, t.images.c.site_id == tenant.site_id) == 4 * ideas

    stage_6 = await bus.stage(tenant, 6, batch_size=1)
    titles = [e.data.item.title for e in of_type(stage_6, "StageItemProcessed")]
    assert len(titles) == 4 * ideas and all(" – image " in title for title in titles)
    media = Path(services.base_env["MEDIA_DIR"])
    with db.connect() as conn:
        paths = conn.execute(
            sa.select(t.images.c.file_path).where(t.images.c.site_id == tenant.site_id)
        ).scalars()
        for path in paths:
            png = (media / path).read_bytes()
            assert png.startswith(b"\x89PNG") and struct.unpack(">I", png[16:20])[0] > 0
    in_review = count(
        db, t.content, t.content.c.site_id == tenant.site_id, t.content.c.status == "review"
    )
    assert in_review == ideas

    start = await bus.mark()
    await bus.send(7, start_stage(tenant, 7))
    [review] = of_type(await bus.events(start, tenant.run_id, stage_started(7)), "StageStarted")
    assert len(review.data.items) == ideas

    spent = 2 + 2 * clusters + 5 * ideas + 2 * ideas + 2 * 4 * ideas
    assert balance(db, tenant.account_id) == 1000 - spent


async def test_a_redelivered_batch_changes_nothing(db, bus, services):
    services.start("workers", "stage-worker")
    tenant = new_tenant(db, credits=100)
    add_keywords(db, tenant.site_id, ESPRESSO)
    await bus.stage(tenant, 1, batch_size=20)
    cluster_ids = [
        e.data.item.id for e in of_type(await bus.stage(tenant, 2, 20), "StageItemProcessed")
    ]
    after_first = balance(db, tenant.account_id)

    again = process_batch(tenant, 2, cluster_ids, n=1)
    start = await bus.mark()
    await bus.send(2, again, again)
    events = await bus.events(start, tenant.run_id, batches_completed("2-1"))
    assert of_type(events, "StageItemProcessed") == []
    ideas = t.content_ideas.c
    assert count(db, t.content_ideas, ideas.site_id == tenant.site_id) == 3 * len(cluster_ids)
    assert balance(db, tenant.account_id) == after_first
    ledger = t.credit_ledger.c
    assert count(db, t.credit_ledger, ledger.run_id == tenant.run_id, ledger.stage == 2) == len(
        cluster_ids
    )


async def test_an_item_changed_after_the_pick_is_reported_failed_not_left_open(db, bus, services):
    """A keyword disabled after stage 1 picked it must settle (as failed with the reason), or
    the orchestrator would dispatch it again and again."""
    services.start("workers", "stage-worker")
    tenant = new_tenant(db, credits=100)
    ids = add_keywords(db, tenant.site_id, ESPRESSO)
    start = await bus.mark()
    await bus.send(1, start_stage(tenant, 1))
    await bus.events(start, tenant.run_id, stage_started(1))
    with db.begin() as conn:
        conn.execute(sa.update(t.keywords).where(t.keywords.c.id == ids[0]).values(disabled=True))
    await bus.send(1, process_batch(tenant, 1, ids, n=1))
    events = await bus.events(start, tenant.run_id, batches_completed("1-1"))

    [failed] = of_type(events, "StageItemFailed")
    assert (
        failed.data.item.id == ids[0] and "changed since the stage picked it" in failed.data.error
    )
    assert sorted(item_ids(events)) == sorted(ids[1:])
    [completed] = of_type(events, "StageBatchCompleted")
    assert (completed.data.processed, completed.data.failed) == (len(ids) - 1, 1)


async def test_an_account_that_cannot_pay_halts_the_batch(db, bus, services):
    services.start("workers", "stage-worker")
    tenant = new_tenant(db, credits=3)
    add_keywords(db, tenant.site_id, ESPRESSO + FRENCH_PRESS)
    await bus.stage(tenant, 1, batch_size=20)  # 2 credits: 1 left
    events = await bus.stage(tenant, 2, batch_size=5)
    [halted] = of_type(events, "StageBatchCompleted")
    assert halted.data.halted == "insufficient_credits"
    assert halted.data.processed == 0
    assert balance(db, tenant.account_id) == 1
    assert count(db, t.content_ideas, t.content_ideas.c.site_id == tenant.site_id) == 0


async def test_a_malformed_record_goes_to_the_dead_letter_topic(db, bus, services, kafka_bootstrap):
    from aiokafka import AIOKafkaProducer

    services.start("workers", "stage-worker")
    start_dead = await end_offsets(kafka_bootstrap, bus.topics.dead_letter)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(bus.topics.stage(3), b"{not json", key=b"x")
    finally:
        await producer.stop()
    records = await read_until(kafka_bootstrap, start_dead, lambda rs: len(rs) >= 1)
    letter = DeadLetter.decode(records[0].value)
    assert letter.topic == bus.topics.stage(3) and "not JSON" in letter.reason
    assert records[0].key == b"x"  # keyed like the refused record, as in every service
    assert dict(records[0].headers)["content-type"] == b"application/cloudevents+json"

    tenant = new_tenant(db, credits=10)
    add_keywords(db, tenant.site_id, ESPRESSO)
    events = await bus.stage(tenant, 1, batch_size=20)  # the worker went on
    assert len(item_ids(events)) == 5


async def test_a_worker_killed_mid_batch_finishes_it_once_after_restart(db, bus, services):
    slow = {"OFFLINE_LATENCY_MS": "1500"}
    worker = services.start("workers", "stage-worker", env=slow)
    tenant = new_tenant(db, credits=100)
    add_keywords(db, tenant.site_id, ESPRESSO + FRENCH_PRESS)
    start, clusters = await stage_2_picked(bus, tenant)
    assert len(clusters) >= 2
    await bus.send(2, process_batch(tenant, 2, clusters, n=1))
    await bus.events(start, tenant.run_id, lambda es: len(of_type(es, "StageItemProcessed")) >= 1)
    worker.kill9()

    services.start("workers-again", "stage-worker", env=slow)
    events = await bus.events(start, tenant.run_id, batches_completed("2-1"), timeout=90)
    processed = of_type(events, "StageItemProcessed")
    assert sorted({e.data.item.id for e in processed}) == sorted(clusters)
    # A relay killed between publishing and marking may send a row twice: same message id.
    assert len({e.message_id for e in processed}) == len(clusters)
    [done] = {e.message_id: e for e in of_type(events, "StageBatchCompleted")}.values()
    assert done.data.processed == len(clusters)
    assert count(db, t.content_ideas, t.content_ideas.c.site_id == tenant.site_id) == 3 * len(
        clusters
    )
    assert balance(db, tenant.account_id) == 100 - 2 - 2 * len(clusters)


async def test_stage_1_charges_by_the_stages_count_whatever_the_batch_size(db, bus, services):
    """1 credit per 5 keywords the stage picked: 10 keywords in batches of 1 cost 2, not 10."""
    services.start("workers", "stage-worker")
    tenant = new_tenant(db, credits=100)
    add_keywords(db, tenant.site_id, ESPRESSO + FRENCH_PRESS)
    events = await bus.stage(tenant, 1, batch_size=1)
    assert len(item_ids(events)) == 10
    assert sum(e.data.credits for e in of_type(events, "StageBatchCompleted")) == 2
    assert balance(db, tenant.account_id) == 98


def run_stopped(db: sa.Engine, run_id: str) -> bool | None:
    w = t.worker_run_status.c
    with db.connect() as conn:
        return conn.execute(sa.select(w.stopped).where(w.run_id == run_id)).scalar_one_or_none()


async def test_a_paused_run_learnt_from_the_stream_processes_nothing_until_resumed(
    db, bus, services
):
    """The worker learns a pause from the run-events topic (not from another service's read
    model): a batch of a paused run completes with nothing done; after the resume it works."""
    services.start("workers", "stage-worker")
    tenant = new_tenant(db, credits=100)
    add_keywords(db, tenant.site_id, ESPRESSO)
    start, clusters = await stage_2_picked(bus, tenant)

    await publish(bus.bootstrap, bus.topics.run_events, command(tenant, RunPaused()))
    wait_until(lambda: run_stopped(db, tenant.run_id) is True, what="the pause learnt")
    await bus.send(2, process_batch(tenant, 2, clusters, n=1))
    events = await bus.events(start, tenant.run_id, batches_completed("2-1"))
    [completed] = of_type(events, "StageBatchCompleted")
    assert (completed.data.processed, completed.data.credits) == (0, 0)
    assert count(db, t.content_ideas, t.content_ideas.c.site_id == tenant.site_id) == 0

    await publish(bus.bootstrap, bus.topics.run_events, command(tenant, RunResumed()))
    wait_until(lambda: run_stopped(db, tenant.run_id) is False, what="the resume learnt")
    await bus.send(2, process_batch(tenant, 2, clusters, n=2))
    events = await bus.events(start, tenant.run_id, batches_completed("2-2"))
    assert sorted(item_ids(events)) == sorted(clusters)


def outbox_rows_of(db: sa.Engine, run_id: str) -> int:
    o = t.outbox.c
    return count(db, t.outbox, o.payload["runid"].astext == run_id)


async def test_a_redelivery_after_pruning_is_still_recognised(db, bus, services):
    """With a zero retention window the worker prunes its published outbox rows and handled
    command ids at once; a command delivered again (and a re-dispatched copy) after that still
    adds nothing: no second idea, no second charge, no second item event."""
    prune_at_once = {"RETENTION_HOURS": "0", "PRUNE_EVERY_SECONDS": "0.5"}
    services.start("workers", "stage-worker", env=prune_at_once)
    tenant = new_tenant(db, credits=100)
    add_keywords(db, tenant.site_id, ESPRESSO)
    start, clusters = await stage_2_picked(bus, tenant)
    first = process_batch(tenant, 2, clusters, n=1)
    await bus.send(2, first)
    await bus.events(start, tenant.run_id, batches_completed("2-1"))
    p = t.processed_messages.c
    wait_until(
        lambda: (
            outbox_rows_of(db, tenant.run_id) == 0
            and count(db, t.processed_messages, p.message_id == first.message_id) == 0
        ),
        what="the outbox and handled ids pruned",
    )
    paid, ideas = balance(db, tenant.account_id), t.content_ideas.c
    made = count(db, t.content_ideas, ideas.site_id == tenant.site_id)

    again = await bus.mark()
    await bus.send(2, first, process_batch(tenant, 2, clusters, n=2))
    events = await bus.events(again, tenant.run_id, batches_completed("2-1", "2-2"))
    assert of_type(events, "StageItemProcessed") == []
    assert {e.data.processed for e in of_type(events, "StageBatchCompleted")} == {len(clusters)}
    assert balance(db, tenant.account_id) == paid
    assert count(db, t.content_ideas, ideas.site_id == tenant.site_id) == made == 3 * len(clusters)
