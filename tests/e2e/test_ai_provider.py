"""Whole runs against a test provider that behaves like OpenAI under load (tests/support/
fake_openai.py): a request budget far below what the workers would offer, an outage in the
middle of stage 4, and answers slower than the orchestrator's lease. Every run completes with
no failed item, nothing is paid twice, and no AI call is made twice."""

from __future__ import annotations

import asyncio
import re

import pytest
import sqlalchemy as sa

from contracts.db import tables as t
from contracts.events import StageProviderRecovered, StageWaitingForProvider
from contracts.values import RunConfig
from stage_workers.gate.lane import Budget, LaneState, Rules, refill
from stage_workers.gate.store import share_from_json
from tests.support.fake_openai import FakeOpenAI
from tests.support.outcomes import assert_whole_and_unique, expected_credits, failed_items
from tests.support.pipeline import Site, api_client, charged, counts, new_site
from tests.support.services import free_port
from tests.support.wait import wait_until

ORCHESTRATOR = {"LEASE_SECONDS": "15", "TICK_SECONDS": "0.2"}
CONCURRENT = RunConfig(stage_concurrency=8)


def worker_env(fake: FakeOpenAI, **settings: str) -> dict[str, str]:
    return fake.worker_env(
        **{"AI_FIRST_PROBE_SECONDS": "1", "AI_LONGEST_PROBE_SECONDS": "4"} | settings
    )


def assert_completed_whole(db: sa.Engine, site: Site, run_id: str, state) -> dict[str, int]:
    """The run of the site's 6 keywords completed with no failed item, every output made once
    and charged once; what it made."""
    assert state.status == "completed", state.error
    assert failed_items(db, run_id) == 0
    made = counts(db, site.site_id)
    assert_whole_and_unique(db, site.site_id, made)
    assert charged(db, site.account_id) == expected_credits(6, made)
    return made


def calls_by_outcome(db: sa.Engine, run_ids: list[str]) -> dict[str, int]:
    c = t.ai_calls.c
    with db.connect() as conn:
        rows = conn.execute(
            sa.select(c.outcome, sa.func.count()).where(c.run_id.in_(run_ids)).group_by(c.outcome)
        ).all()
    return dict(rows)


async def test_three_sites_far_over_the_request_budget_complete_without_a_failed_item(
    db, pipeline, services, fake
):
    fake.set_limits(rpm=300)  # 5 a second; 3 sites x 8 in flight would offer far more
    fake.latency_seconds = 0.05
    services.start("orchestrator", "orchestrator", env=ORCHESTRATOR)
    services.start("workers", "stage-worker", env=worker_env(fake, AI_REQUESTS_PER_MINUTE="300"))
    sites = [new_site(db, keyword_count=6, credits=100_000) for _ in range(3)]

    run_ids = [await pipeline.start(site, config=CONCURRENT) for site in sites]
    states = await asyncio.gather(*(pipeline.finished(r, timeout=420) for r in run_ids))

    for site, run_id, state in zip(sites, run_ids, states, strict=True):
        made = assert_completed_whole(db, site, run_id, state)
        assert made["content_in_review"] == made["content"] > 0
    stats = fake.stats()
    assert stats["rate_limited"] <= 0.05 * stats["calls"], stats
    recorded = calls_by_outcome(db, run_ids)
    assert recorded["answered"] == stats["answered"]
    assert recorded.get("rate_limited", 0) == stats["rate_limited"]


async def test_a_minute_long_outage_in_stage_4_is_waited_out(db, pipeline, services, fake):
    fake.latency_seconds = 0.05
    port = free_port()
    services.start("orchestrator", "orchestrator", env=ORCHESTRATOR)
    workers = services.start("workers", "stage-worker", env=worker_env(fake))
    services.start("log-sink", "log-sink")
    services.start("api-gateway", "api-gateway", env={"GATEWAY_PORT": str(port)})
    site = new_site(db, keyword_count=6, credits=100_000)
    api = api_client(db, site, port)
    run_id = await pipeline.start(site, config=CONCURRENT)

    await pipeline.wait_for(run_id, lambda s: s.stage(4).processed_count >= 1, timeout=180)
    fake.outage_for(60, status=503)
    waiting = await pipeline.wait_for(run_id, lambda s: s.stage(4).waiting is not None, 60)
    assert "503" in waiting.stage(4).waiting.reason

    def shown() -> dict | None:
        answer = api.get("/current_processing", params={"site_id": site.site_id})
        return answer.json()["waiting_for_provider"] if answer.status_code == 200 else None

    wait = await asyncio.to_thread(wait_until, shown, timeout=30, what="the wait in the API")
    assert wait["model"] == waiting.stage(4).waiting.model and "503" in wait["reason"]
    held = f'stage_worker_ai_provider_unavailable{{model="{wait["model"]}",provider="openai"}} 1.0'
    assert held in workers.metrics()
    state = await pipeline.finished(run_id, timeout=420)
    await asyncio.to_thread(
        wait_until,
        lambda: api.get("/run", params={"run_id": run_id}).json()["status"] == "completed",
        timeout=30,
        what="the read model to show the end",
    )
    assert (
        api.get("/run", params={"run_id": run_id}).json()["stages"][3]["waiting_for_provider"]
        is None
    )

    assert_completed_whole(db, site, run_id, state)
    events = [e.data for e in await pipeline.events(run_id)]
    assert any(isinstance(e, StageWaitingForProvider) and e.stage == 4 for e in events)
    assert any(isinstance(e, StageProviderRecovered) and e.stage == 4 for e in events)
    assert fake.stats()["unavailable"] >= 1


async def test_answers_slower_than_the_lease_are_asked_for_once(db, pipeline, services, fake):
    fake.latency_seconds = 4.0
    services.start("orchestrator", "orchestrator", env={**ORCHESTRATOR, "LEASE_SECONDS": "2"})
    services.start("workers", "stage-worker", env=worker_env(fake))
    site = new_site(db, keyword_count=3, credits=100_000)

    run_id = await pipeline.start(site, config=CONCURRENT)
    state = await pipeline.finished(run_id, timeout=420)

    assert state.status == "completed", state.error
    stats = fake.stats()
    assert stats["repeats"] == 0, stats
    assert stats["calls"] == stats["answered"] == calls_by_outcome(db, [run_id])["answered"]
    assert_whole_and_unique(db, site.site_id, counts(db, site.site_id))


def twice_answered(db: sa.Engine, run_id: str) -> list[tuple]:
    c = t.ai_calls.c
    with db.connect() as conn:
        query = (
            sa.select(c.stage, c.item_id, c.function, sa.func.count())
            .where(c.run_id == run_id, c.outcome == "answered")
            .group_by(c.stage, c.item_id, c.function)
            .having(sa.func.count() > 1)
        )
        return [tuple(row) for row in conn.execute(query)]


def lanes_of(db: sa.Engine, fake: FakeOpenAI) -> list[sa.Row]:
    """The shared lanes of the test provider (its address is in each lane's key)."""
    lane = t.ai_lanes.c
    now = sa.func.extract("epoch", sa.func.clock_timestamp()).label("now")
    with db.connect() as conn:
        query = sa.select(t.ai_lanes, now).where(lane.lane.contains(fake.base_url))
        return conn.execute(query).all()


def whole(row: sa.Row, per_minute: int) -> bool:
    """The lane's request bucket, refilled to now, is full again, and no share of a process
    that is gone still counts."""
    rules = Rules()
    state = LaneState(
        requests=row.requests,
        tokens=row.tokens,
        refilled_at=row.refilled_at,
        shares=tuple(share_from_json(share) for share in row.shares),
    )
    budget = Budget(requests_per_minute=per_minute)
    refilled = refill(state, budget, rules, float(row.now))
    live = [s for s in refilled.shares if float(row.now) < s.at + rules.share_seconds]
    full = LaneState.full(budget, rules, float(row.now)).requests
    return refilled.requests == pytest.approx(full) and not live


async def test_a_worker_killed_while_the_circuit_is_open_leaves_nothing_behind(
    db, pipeline, services, fake
):
    fake.latency_seconds = 0.05
    env = worker_env(fake, OPENAI_TIMEOUT_SECONDS="3")  # a held probe is lost after 16 s
    services.start("orchestrator", "orchestrator", env=ORCHESTRATOR)
    first = services.start("workers", "stage-worker", env=env)
    site = new_site(db, keyword_count=6, credits=100_000)
    run_id = await pipeline.start(site, config=CONCURRENT)

    await pipeline.wait_for(run_id, lambda s: s.stage(4).processed_count >= 1, timeout=180)
    fake.outage(503)
    await pipeline.wait_for(run_id, lambda s: s.stage(4).waiting is not None, 60)
    first.kill9()
    again = services.start("workers-again", "stage-worker", env=env)

    def held_back() -> bool:  # the new worker's calls meet the circuit the outage opened
        line = r"^stage_worker_ai_provider_unavailable\{.*\} 1\.0$"
        return re.search(line, again.metrics(), re.M) is not None

    await asyncio.to_thread(wait_until, held_back, timeout=60, what="the new worker held back")
    fake.outage(None)
    state = await pipeline.finished(run_id, timeout=420)

    assert_completed_whole(db, site, run_id, state)
    assert fake.stats()["repeats"] == 0, (fake.stats(), twice_answered(db, run_id))
    assert {row.circuit for row in lanes_of(db, fake)} == {"closed"}


async def test_a_worker_killed_while_it_holds_reservations_gives_them_back(
    db, pipeline, services, fake
):
    per_minute = 120
    fake.set_limits(rpm=per_minute)
    fake.latency_seconds = 1.0  # calls in flight at the kill, holding their reservations
    env = worker_env(fake, AI_REQUESTS_PER_MINUTE=str(per_minute))
    services.start("orchestrator", "orchestrator", env=ORCHESTRATOR)
    first = services.start("workers", "stage-worker", env=env)
    site = new_site(db, keyword_count=6, credits=100_000)
    run_id = await pipeline.start(site, config=CONCURRENT)

    await pipeline.wait_for(run_id, lambda s: s.stage(4).processed_count >= 1, timeout=240)
    first.kill9()
    services.start("workers-again", "stage-worker", env=env)
    state = await pipeline.finished(run_id, timeout=420)

    assert_completed_whole(db, site, run_id, state)
    stats = fake.stats()
    # Only calls in flight at the kill can be made again: their answers died with the worker.
    assert stats["repeats"] <= CONCURRENT.stage_concurrency, stats
    assert stats["rate_limited"] <= 0.05 * stats["calls"], stats

    def given_back() -> list[sa.Row]:  # a bucket refills from empty in a second
        rows = lanes_of(db, fake)
        return rows if rows and all(whole(row, per_minute) for row in rows) else []

    await asyncio.to_thread(wait_until, given_back, timeout=10, what="the reservations back")
