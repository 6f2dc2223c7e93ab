"""The stage workers' handlers called directly, with no broker: a stage command in, the database
and the outbox rows it wrote out. The same code the pump runs for a Kafka record, in tens of
milliseconds a test; the run bookkeeping port is swapped for a fake where a test needs a state
the database would take long to reach."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, replace

import pytest
import sqlalchemy as sa

from contracts.codec import decode
from contracts.db import tables as t
from contracts.db.pending import FAILURE_BUDGET
from contracts.envelope import Envelope
from contracts.topics import Topics
from stage_workers.ai.base import FatalAIError, PermanentAIError
from stage_workers.ai.factory import gated_alone, offline_ai
from stage_workers.ai.offline import OfflineProvider
from stage_workers.bookkeeping import Opening, SqlRunBook
from stage_workers.deps import WorkerDeps
from stage_workers.handlers import dispatch
from tests.support.workers import (
    ESPRESSO,
    FRENCH_PRESS,
    Tenant,
    add_keywords,
    balance,
    count,
    new_tenant,
    of_type,
    process_batch,
    start_stage,
)


@pytest.fixture
def deps(db, tmp_path) -> WorkerDeps:
    # A namespace no relay serves: the events stay in the outbox, where the test reads them.
    return WorkerDeps(
        engine=db,
        ai=offline_ai(),
        topics=Topics(f"h{uuid.uuid4().hex[:10]}."),
        media_dir=tmp_path,
    )


def enqueued(db: sa.Engine, deps: WorkerDeps, run_id: str) -> list[Envelope]:
    """The run's events the handlers put in the outbox, in order."""
    o = t.outbox.c
    with db.connect() as conn:
        payloads = conn.execute(
            sa.select(o.payload).where(o.topic == deps.topics.run_events).order_by(o.id)
        ).scalars()
        events = [decode(json.dumps(p).encode()) for p in payloads]
    return [e for e in events if e.run_id == run_id]


async def stage_1_done(db, deps, tenant) -> list[int]:
    ids = add_keywords(db, tenant.site_id, ESPRESSO + FRENCH_PRESS)
    await dispatch(deps, start_stage(tenant, 1))
    await dispatch(deps, process_batch(tenant, 1, ids, n=1))
    return ids


async def stage_2_picks(db, deps, run) -> list[int]:
    """Start stage 2 for `run`; what it picked, from its StageStarted in the outbox."""
    await dispatch(deps, start_stage(run, 2))
    events = of_type(enqueued(db, deps, run.run_id), "StageStarted")
    [started] = [e for e in events if e.data.stage == 2]
    return [item.id for item in started.data.items]


async def test_a_stage_1_batch_maps_its_keywords_and_a_repeat_writes_nothing(db, deps):
    tenant = new_tenant(db, credits=100)
    ids = await stage_1_done(db, deps, tenant)
    events = enqueued(db, deps, tenant.run_id)
    [started] = of_type(events, "StageStarted")
    assert sorted(item.id for item in started.data.items) == ids
    [done] = of_type(events, "StageBatchCompleted")
    assert (done.data.processed, done.data.failed, done.data.credits) == (10, 0, 2)
    processed = {e.data.item.id: e.data for e in of_type(events, "StageItemProcessed")}
    assert sorted(processed) == ids and {p.total for p in processed.values()} == {10}
    # 1 credit per 5 keywords, on the 1st and the 6th the stage picked.
    assert {i for i, p in processed.items() if p.credits} == {ids[0], ids[5]}
    k, c = t.keywords.c, t.clusters.c
    assert count(db, t.keywords, k.site_id == tenant.site_id, k.status == "mapped") == 10
    clusters = count(db, t.clusters, c.site_id == tenant.site_id)
    assert sum(p.outputs for p in processed.values()) == clusters >= 2

    await dispatch(deps, process_batch(tenant, 1, ids, n=1))  # the same batch again
    await dispatch(deps, process_batch(tenant, 1, ids, n=2))  # and a re-dispatched copy
    again = enqueued(db, deps, tenant.run_id)
    assert of_type(again, "StageItemProcessed") == of_type(events, "StageItemProcessed")
    assert [(e.data.processed, e.data.credits) for e in of_type(again, "StageBatchCompleted")] == [
        (10, 2),
        (10, 2),
    ]
    assert balance(db, tenant.account_id) == 98
    assert count(db, t.clusters, c.site_id == tenant.site_id) == clusters


async def stage_1_started(db, deps, credits: int, texts: list[str]) -> tuple[Tenant, list[int]]:
    """A tenant with keywords `texts`, stage 1 started (and so picked them): the tenant and ids."""
    tenant = new_tenant(db, credits=credits)
    ids = add_keywords(db, tenant.site_id, texts)
    await dispatch(deps, start_stage(tenant, 1))
    return tenant, ids


def stage_1_events(db, deps, tenant) -> list[Envelope]:
    return [e for e in enqueued(db, deps, tenant.run_id) if getattr(e.data, "stage", 0) == 1]


async def test_stage_1_in_small_batches_charges_by_a_keywords_place_in_the_stage(db, deps):
    tenant, ids = await stage_1_started(db, deps, 100, ESPRESSO + FRENCH_PRESS)
    for n, start in enumerate(range(0, 10, 3), 1):
        await dispatch(deps, process_batch(tenant, 1, ids[start : start + 3], n=n))
    events = stage_1_events(db, deps, tenant)
    charged = {e.data.item.id for e in of_type(events, "StageItemProcessed") if e.data.credits}
    assert charged == {ids[0], ids[5]}
    assert [e.data.processed for e in of_type(events, "StageBatchCompleted")] == [3, 3, 3, 1]
    assert balance(db, tenant.account_id) == 98


async def test_a_heard_pause_leaves_a_stage_1_batch_untouched(db, deps):
    tenant, ids = await stage_1_started(db, deps, 100, ESPRESSO)
    deps.stops.update({tenant.run_id: True}, partition=0)  # the run watch hears RunPaused
    await dispatch(deps, process_batch(tenant, 1, ids, n=1))
    events = stage_1_events(db, deps, tenant)
    assert of_type(events, "StageItemProcessed") == of_type(events, "StageItemFailed") == []
    [done] = of_type(events, "StageBatchCompleted")
    assert (done.data.processed, done.data.failed) == (0, 0)
    assert count(db, t.clusters, t.clusters.c.site_id == tenant.site_id) == 0
    assert balance(db, tenant.account_id) == 100


async def test_a_heard_pause_ends_the_batch_before_any_item(db, deps):
    tenant = new_tenant(db, credits=100)
    await stage_1_done(db, deps, tenant)
    clusters = await stage_2_picks(db, deps, tenant)
    deps.stops.update({tenant.run_id: True}, partition=0)  # the run watch hears RunPaused
    await dispatch(deps, process_batch(tenant, 2, clusters[:1], n=1))
    events = enqueued(db, deps, tenant.run_id)
    stage_2 = [e for e in events if getattr(e.data, "stage", None) == 2]
    assert of_type(stage_2, "StageItemProcessed") == of_type(stage_2, "StageItemFailed") == []
    [done] = of_type(stage_2, "StageBatchCompleted")
    assert (done.data.processed, done.data.failed) == (0, 0)
    assert count(db, t.content_ideas, t.content_ideas.c.site_id == tenant.site_id) == 0


@dataclass(frozen=True)
class HandledBook(SqlRunBook):
    """The port says every command was handled before."""

    def opening(self, consumer: str, message_id: uuid.UUID, run_id: str, stage: int) -> Opening:
        return Opening(handled=True, picked=None)


async def test_a_command_the_book_knows_as_handled_does_nothing(db, deps):
    tenant = new_tenant(db, credits=100)
    ids = add_keywords(db, tenant.site_id, ESPRESSO)
    fake = replace(deps, book=HandledBook)
    await dispatch(fake, process_batch(tenant, 1, ids, n=1))
    assert enqueued(db, deps, tenant.run_id) == []
    assert balance(db, tenant.account_id) == 100
    assert count(db, t.clusters, t.clusters.c.site_id == tenant.site_id) == 0


class RefusedKey(OfflineProvider):
    """A provider that refuses the key, as OpenAI's 401 does."""

    async def write_ideas(self, cluster_name: str, keywords: list[str]):
        raise FatalAIError("AuthenticationError: Error code: 401 - invalid api key")


async def test_a_fatal_provider_error_stops_the_batch_and_says_why(db, deps):
    tenant = new_tenant(db, credits=100)
    await stage_1_done(db, deps, tenant)
    clusters = await stage_2_picks(db, deps, tenant)
    refused = replace(deps, ai=gated_alone(RefusedKey()))
    await dispatch(refused, process_batch(tenant, 2, clusters, n=1))
    stage_2 = [e for e in enqueued(db, deps, tenant.run_id) if getattr(e.data, "stage", 0) == 2]
    assert of_type(stage_2, "StageItemProcessed") == of_type(stage_2, "StageItemFailed") == []
    [done] = of_type(stage_2, "StageBatchCompleted")
    assert (done.data.processed, done.data.failed) == (0, 0)
    assert done.data.fatal == "AuthenticationError: Error code: 401 - invalid api key"
    assert balance(db, tenant.account_id) == 98  # stage 1's 2 credits, nothing more
    assert count(db, t.content_ideas, t.content_ideas.c.site_id == tenant.site_id) == 0


class KeywordsRefused(OfflineProvider):
    """Clustering fails with `error`; every other call goes through."""

    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    async def cluster_keywords(self, keywords: list[str]):
        raise self.error


async def test_a_failed_clustering_fails_each_keyword_once_per_run(db, deps):
    tenant, ids = await stage_1_started(db, deps, 100, ESPRESSO)
    failing = replace(deps, ai=gated_alone(KeywordsRefused(PermanentAIError("answer is not JSON"))))
    await dispatch(failing, process_batch(tenant, 1, ids, n=1))
    await dispatch(failing, process_batch(tenant, 1, ids, n=2))  # a re-dispatched copy
    events = stage_1_events(db, deps, tenant)
    failed = of_type(events, "StageItemFailed")
    assert sorted(e.data.item.id for e in failed) == ids
    assert all("not JSON" in e.data.error for e in failed)
    assert [(e.data.processed, e.data.failed) for e in of_type(events, "StageBatchCompleted")] == [
        (0, 5),
        (0, 5),
    ]
    f = t.item_failures.c
    with db.connect() as conn:
        rows = conn.execute(
            sa.select(f.item_id, f.failures).where(f.stage == 1, f.item_id.in_(ids))
        ).all()
    assert sorted(rows) == [(i, 1) for i in ids]
    k = t.keywords.c
    assert count(db, t.keywords, k.id.in_(ids), k.status == "new", k.cluster_id.is_(None)) == 5
    assert balance(db, tenant.account_id) == 100


async def test_a_fatal_error_in_stage_1_fails_no_keyword_and_says_why(db, deps):
    tenant, ids = await stage_1_started(db, deps, 100, ESPRESSO)
    refused = replace(
        deps, ai=gated_alone(KeywordsRefused(FatalAIError("PermissionDeniedError: 403")))
    )
    await dispatch(refused, process_batch(tenant, 1, ids, n=1))
    events = stage_1_events(db, deps, tenant)
    assert of_type(events, "StageItemProcessed") == of_type(events, "StageItemFailed") == []
    [done] = of_type(events, "StageBatchCompleted")
    assert (done.data.processed, done.data.failed) == (0, 0)
    assert done.data.fatal == "PermissionDeniedError: 403"
    f = t.item_failures.c
    assert count(db, t.item_failures, f.stage == 1, f.item_id.in_(ids)) == 0
    assert balance(db, tenant.account_id) == 100


async def test_a_stage_1_batch_the_account_cannot_pay_writes_nothing(db, deps):
    tenant, ids = await stage_1_started(db, deps, 0, ESPRESSO)
    await dispatch(deps, process_batch(tenant, 1, ids, n=1))
    events = stage_1_events(db, deps, tenant)
    assert of_type(events, "StageItemProcessed") == []
    [done] = of_type(events, "StageBatchCompleted")
    assert (done.data.processed, done.data.halted) == (0, "insufficient_credits")
    assert count(db, t.clusters, t.clusters.c.site_id == tenant.site_id) == 0
    k = t.keywords.c
    assert count(db, t.keywords, k.id.in_(ids), k.status == "new") == 5


class BadIdeas(OfflineProvider):
    """Answers nothing usable for one cluster name; the others go through."""

    def __init__(self, bad: str) -> None:
        super().__init__()
        self.bad = bad

    async def write_ideas(self, cluster_name: str, keywords: list[str]):
        if cluster_name == self.bad:
            raise PermanentAIError("answer is not JSON")
        return await super().write_ideas(cluster_name, keywords)


async def test_an_item_failing_in_run_after_run_is_no_longer_picked(db, deps):
    tenant = new_tenant(db, credits=100)
    await stage_1_done(db, deps, tenant)
    c = t.clusters.c
    with db.connect() as conn:
        first, name = conn.execute(
            sa.select(c.id, c.name).where(c.site_id == tenant.site_id).order_by(c.id).limit(1)
        ).one()
    failing = replace(deps, ai=gated_alone(BadIdeas(name)))
    for n in range(1, FAILURE_BUDGET + 1):
        run = replace(tenant, run_id=f"{tenant.run_id}_{n}")
        assert first in await stage_2_picks(db, failing, run)
        await dispatch(failing, process_batch(run, 2, [first], n=1))
        [failed] = of_type(enqueued(db, deps, run.run_id), "StageItemFailed")
        assert failed.data.item.id == first and "not JSON" in failed.data.error

    f = t.item_failures.c
    with db.connect() as conn:
        # Stage 2's items are clusters; another stage's item may have the same id.
        row = conn.execute(
            sa.select(f.failures, f.last_run_id).where(f.stage == 2, f.item_id == first)
        ).one()
    assert row == (FAILURE_BUDGET, f"{tenant.run_id}_{FAILURE_BUDGET}")
    last = replace(tenant, run_id=f"{tenant.run_id}_last")
    assert first not in await stage_2_picks(db, failing, last)
