"""Economy runs end to end: the AI stages go through the test provider's Batch API (tests/support/
fake_batches.py). An economy run makes what a standard run of the same keywords makes and is
charged the same credits, with no call made alone; a worker killed while it waits leaves no
second provider batch; an expired batch is sent once more, then made call by call; a cancel
cancels the provider's batch."""

from __future__ import annotations

import asyncio
import base64
import re
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from contracts import commands as cmd
from contracts.db import tables as t
from contracts.values import RunConfig
from tests.support.fake_openai import FakeOpenAI
from tests.support.outcomes import assert_whole_and_unique, expected_credits, failed_items
from tests.support.pipeline import Pipeline, Site, charged, command, counts, new_site
from tests.support.services import free_port
from tests.support.wait import wait_until

ORCHESTRATOR = {"LEASE_SECONDS": "6", "TICK_SECONDS": "0.2"}
ECONOMY = RunConfig(ai_mode="economy", stage_concurrency=4)
STANDARD = RunConfig(stage_concurrency=4)
AI_STAGES = 5


def worker_env(fake: FakeOpenAI, **settings: str) -> dict[str, str]:
    return fake.worker_env(
        **{"ECONOMY_POLL_FIRST_SECONDS": "0.2", "ECONOMY_POLL_LONGEST_SECONDS": "1"} | settings
    )


def calls_by_route(db: sa.Engine, run_id: str) -> dict[str, int]:
    c = t.ai_calls.c
    with db.connect() as conn:
        rows = conn.execute(
            sa.select(c.via, sa.func.count())
            .where(c.run_id == run_id, c.outcome == "answered")
            .group_by(c.via)
        ).all()
    return dict(rows)


def money(db: sa.Engine, run_id: str) -> tuple[Decimal, Decimal]:
    c = t.ai_calls.c
    with db.connect() as conn:
        cost, saved = conn.execute(
            sa.select(sa.func.sum(c.cost_usd), sa.func.sum(c.saved_usd)).where(c.run_id == run_id)
        ).one()
    return cost or Decimal(0), saved or Decimal(0)


def titles(db: sa.Engine, site_id: int) -> list[str]:
    c = t.content.c
    with db.connect() as conn:
        return sorted(conn.execute(sa.select(c.title).where(c.site_id == site_id)).scalars())


async def economy_run(db, pipeline: Pipeline, services, fake: FakeOpenAI) -> tuple[Site, str, Any]:
    """The orchestrator and a stage worker on the test provider, and an economy run of a new
    site's 6 keywords: the site, the run's id, the worker process."""
    services.start("orchestrator", "orchestrator", env=ORCHESTRATOR)
    workers = services.start("workers", "stage-worker", env=worker_env(fake))
    site = new_site(db, keyword_count=6, credits=100_000)
    return site, await pipeline.start(site, config=ECONOMY), workers


async def assert_run_completes_whole(
    db: sa.Engine, pipeline: Pipeline, site: Site, run_id: str, timeout: float = 420
) -> dict[str, int]:
    """Wait for the run to end: it completed, with every output of the site once and nothing
    half-written. What it made, counted."""
    state = await pipeline.finished(run_id, timeout=timeout)
    assert state.status == "completed", state.error
    made = counts(db, site.site_id)
    assert_whole_and_unique(db, site.site_id, made)
    return made


def batches_of(fake: FakeOpenAI, run_id: str) -> int:
    """The provider batches the test provider made for the run (named in their metadata)."""
    return sum(1 for b in fake.batches.batches.values() if b.metadata.get("run_id") == run_id)


def provider_batches(db: sa.Engine, run_id: str) -> list[sa.Row]:
    b = t.provider_batches.c
    with db.connect() as conn:
        return conn.execute(sa.select(t.provider_batches).where(b.run_id == run_id)).all()


async def test_an_economy_run_makes_what_a_standard_run_makes_at_a_lower_price(
    db, pipeline, services, fake
):
    services.start("orchestrator", "orchestrator", env=ORCHESTRATOR)
    services.start("workers", "stage-worker", env=worker_env(fake))
    standard_site = new_site(db, keyword_count=6, credits=100_000)
    economy_site = new_site(db, keyword_count=6, credits=100_000)

    standard_run = await pipeline.start(standard_site, config=STANDARD)
    standard = await pipeline.finished(standard_run, timeout=300)
    economy_run = await pipeline.start(economy_site, config=ECONOMY)
    economy = await pipeline.finished(economy_run, timeout=300)

    assert standard.status == economy.status == "completed", (standard.error, economy.error)
    made = counts(db, economy_site.site_id)
    assert made == counts(db, standard_site.site_id)
    assert_whole_and_unique(db, economy_site.site_id, made)
    assert titles(db, economy_site.site_id) == titles(db, standard_site.site_id)
    assert charged(db, economy_site.account_id) == charged(db, standard_site.account_id)
    assert charged(db, economy_site.account_id) == expected_credits(6, made)
    # One provider batch per AI stage, and no call made alone: the same requests, batched.
    assert batches_of(fake, economy_run) == AI_STAGES
    answered = calls_by_route(db, standard_run)["call"]
    assert calls_by_route(db, economy_run) == {"provider_batch": answered}
    standard_cost, nothing_saved = money(db, standard_run)
    economy_cost, saved = money(db, economy_run)
    assert nothing_saved == 0 and standard_cost > 0
    assert saved == economy_cost > 0  # half the price: what was paid is what was saved
    assert {row.status for row in provider_batches(db, economy_run)} == {"completed"}


async def test_a_worker_killed_while_it_waits_creates_no_second_batch(db, pipeline, services, fake):
    fake.batches.completion_seconds = 6
    site, run_id, first = await economy_run(db, pipeline, services, fake)

    waiting = await pipeline.wait_for(
        run_id, lambda s: s.stage(1).provider_batch is not None, timeout=120
    )
    assert waiting.stage(1).provider_batch.total >= 1
    first.kill9()
    services.start("workers-again", "stage-worker", env=worker_env(fake))

    made = await assert_run_completes_whole(db, pipeline, site, run_id)
    assert charged(db, site.account_id) == expected_credits(6, made)
    assert batches_of(fake, run_id) == AI_STAGES
    assert "call" not in calls_by_route(db, run_id)


async def test_an_expired_batch_is_sent_again_then_made_call_by_call(db, pipeline, services, fake):
    fake.batches.expire_after = 1  # every batch answers one request, then expires
    site, run_id, _ = await economy_run(db, pipeline, services, fake)

    made = await assert_run_completes_whole(db, pipeline, site, run_id)
    assert charged(db, site.account_id) == expected_credits(6, made)
    rounds = {row.round for row in provider_batches(db, run_id)}
    assert rounds == {1, 2}
    routes = calls_by_route(db, run_id)
    assert routes["provider_batch"] >= 2 and routes["call"] >= 1, routes


async def test_a_cancel_while_waiting_cancels_the_providers_batch(db, pipeline, services, fake):
    fake.batches.completion_seconds = 600
    site, run_id, _ = await economy_run(db, pipeline, services, fake)
    await pipeline.wait_for(run_id, lambda s: s.stage(1).provider_batch is not None, timeout=120)

    await pipeline.send(command(site, cmd.CancelRun(run_id=run_id), run_id))
    state = await pipeline.wait_for(run_id, lambda s: s.status == "cancelled", timeout=120)

    assert state.stage(1).processed_count == 0

    def cancelled() -> bool:
        asked = [b.cancel_asked for b in fake.batches.batches.values()]
        return asked == [True]

    wait_until(cancelled, timeout=60, what="the provider's batch cancelled")
    assert counts(db, site.site_id)["clusters"] == 0
    assert charged(db, site.account_id) == 0


def uploaded_not_created(db: sa.Engine, run_id: str) -> bool:
    return any(
        row.input_file_id and row.provider_batch_id is None for row in provider_batches(db, run_id)
    )


async def test_a_worker_killed_between_upload_and_create_makes_one_batch(
    db, pipeline, services, fake
):
    fake.batches.refuse_creates = True  # the file goes up; the batch cannot be made yet
    site, run_id, first = await economy_run(db, pipeline, services, fake)

    await asyncio.to_thread(
        wait_until, lambda: uploaded_not_created(db, run_id), timeout=120, what="an upload"
    )
    first.kill9()
    fake.batches.refuse_creates = False
    services.start("workers-again", "stage-worker", env=worker_env(fake))

    await assert_run_completes_whole(db, pipeline, site, run_id)
    assert batches_of(fake, run_id) == AI_STAGES
    uploads = [f for f in fake.batches.files.values() if f.filename.startswith(run_id)]
    assert len(uploads) == AI_STAGES  # the recorded upload was used, not made again


async def test_a_batch_whose_creation_answer_was_lost_is_found_not_made_again(
    db, pipeline, services, fake
):
    fake.batches.lose_created = 2
    site, run_id, _ = await economy_run(db, pipeline, services, fake)

    await assert_run_completes_whole(db, pipeline, site, run_id)
    assert fake.batches.lose_created == 0
    assert batches_of(fake, run_id) == AI_STAGES


async def test_a_pause_while_waiting_holds_the_answers_until_the_resume(
    db, pipeline, services, fake
):
    fake.batches.completion_seconds = 3
    site, run_id, _ = await economy_run(db, pipeline, services, fake)
    await pipeline.wait_for(run_id, lambda s: s.stage(1).provider_batch is not None, timeout=120)

    await pipeline.send(command(site, cmd.PauseRun(run_id=run_id), run_id))
    await pipeline.wait_for(
        run_id, lambda s: s.status == "paused" and not s.stage(1).in_flight(), timeout=120
    )
    (batch,) = fake.batches.batches.values()
    await asyncio.to_thread(
        wait_until, lambda: fake.batches.now() >= batch.due_at, what="the batch's answers"
    )
    assert counts(db, site.site_id)["clusters"] == 0  # answered at the provider, held there

    await pipeline.send(command(site, cmd.ResumeRun(run_id=run_id), run_id))

    made = await assert_run_completes_whole(db, pipeline, site, run_id)
    assert charged(db, site.account_id) == expected_credits(6, made)
    assert batches_of(fake, run_id) == AI_STAGES  # stage 1's was waited for, not made again


async def test_the_providers_webhook_ends_the_wait_before_the_next_poll(
    db, pipeline, services, fake
):
    port = free_port()
    secret = "whsec_" + base64.b64encode(b"a signing secret of 32 bytes....").decode()
    url = f"http://127.0.0.1:{port}/api/v1/automation/provider_webhooks/openai"
    fake.batches.webhook = (url, secret)
    fake.batches.completion_seconds = 1
    # Polls so far apart that the run could not finish in the time allowed without the webhook.
    slow = {"ECONOMY_POLL_FIRST_SECONDS": "900", "ECONOMY_POLL_LONGEST_SECONDS": "900"}
    services.start("orchestrator", "orchestrator", env={**ORCHESTRATOR, "LEASE_SECONDS": "30"})
    workers = services.start("workers", "stage-worker", env=worker_env(fake, **slow))
    services.start(
        "api-gateway",
        "api-gateway",
        env={"GATEWAY_PORT": str(port), "OPENAI_WEBHOOK_SECRET": secret},
    )
    site = new_site(db, keyword_count=6, credits=100_000)
    run_id = await pipeline.start(site, config=ECONOMY)

    await assert_run_completes_whole(db, pipeline, site, run_id, timeout=600)
    woken = re.search(r"^stage_worker_provider_batch_wakeups_total (\S+)$", workers.metrics(), re.M)
    assert woken is not None and float(woken.group(1)) >= AI_STAGES


async def test_an_outage_of_the_batch_interface_is_waited_out(db, pipeline, services, fake):
    fake.batches.completion_seconds = 2
    site, run_id, _ = await economy_run(db, pipeline, services, fake)
    await pipeline.wait_for(run_id, lambda s: s.stage(1).provider_batch is not None, timeout=120)

    fake.outage(503)
    waiting = await pipeline.wait_for(run_id, lambda s: s.stage(1).waiting is not None, 60)
    assert "batch interface" in waiting.stage(1).waiting.reason
    assert waiting.status == "running"  # a wait, not a failure
    fake.outage(None)

    await assert_run_completes_whole(db, pipeline, site, run_id)
    assert failed_items(db, run_id) == 0
    assert batches_of(fake, run_id) == AI_STAGES


def set_balance(db: sa.Engine, account_id: int, credits: int) -> None:
    with db.begin() as conn:
        conn.execute(
            sa.update(t.accounts)
            .where(t.accounts.c.id == account_id)
            .values(credit_balance=credits)
        )


def calls_recorded_twice(db: sa.Engine, run_id: str) -> list[tuple]:
    c = t.ai_calls.c
    with db.connect() as conn:
        return conn.execute(
            sa.select(c.stage, c.item_id, sa.func.count())
            .where(c.run_id == run_id, c.outcome == "answered")
            .group_by(c.stage, c.item_id)
            .having(sa.func.count() > 1)
        ).all()


async def test_answers_written_in_part_are_finished_by_another_worker_once(
    db, pipeline, services, fake
):
    fake.batches.completion_seconds = 3
    site, run_id, first = await economy_run(db, pipeline, services, fake)
    await pipeline.wait_for(run_id, lambda s: s.stage(4).provider_batch is not None, timeout=180)
    set_balance(db, site.account_id, 7)  # one article paid, then the batch halts for credits

    paused = await pipeline.wait_for(
        run_id, lambda s: s.status == "paused" and not s.stage(4).in_flight(), timeout=120
    )
    assert 1 <= paused.stage(4).processed_count < paused.stage(4).total
    first.kill9()
    services.start("workers-again", "stage-worker", env=worker_env(fake))
    set_balance(db, site.account_id, 100_000)
    await pipeline.send(command(site, cmd.ResumeRun(run_id=run_id), run_id))

    made = await assert_run_completes_whole(db, pipeline, site, run_id)
    assert charged(db, site.account_id) == expected_credits(6, made)
    assert batches_of(fake, run_id) == AI_STAGES  # the held answers were read, not asked again
    assert calls_recorded_twice(db, run_id) == []
