"""Whole runs through the real services, each a separate process, on the real broker and
database: every count and every credit as the stage rules say, pause/resume, cancel, and
kill -9 of a worker or of the orchestrator in the middle of a run."""

from __future__ import annotations

from contracts import commands as cmd
from contracts import events as ev
from contracts.credits import estimate
from contracts.db.pending import pending_work
from contracts.state import RunState
from contracts.values import RunConfig
from tests.support.outcomes import (
    assert_nothing_half_written_nor_charged_twice,
    assert_whole_and_unique,
    expected_credits,
)
from tests.support.pipeline import Pipeline, Site, balance, charged, command, counts, new_site
from tests.support.wait import wait_until

FAST = {"LEASE_SECONDS": "15", "TICK_SECONDS": "0.2"}


def engine_up(services, worker_env: dict | None = None):
    return (
        services.start("orchestrator", "orchestrator", env=FAST),
        services.start("workers", "stage-worker", env=worker_env),
    )


async def stopped_in_stage_4(
    pipeline: Pipeline, site: Site, stop: type[cmd.PauseRun | cmd.CancelRun], status: str
) -> tuple[str, RunState]:
    """Starts a run, sends `stop` once stage 4 has written two articles, and waits for the
    stage-4 batch in flight then to end: the run's id and its state when it first said
    `status`."""
    run_id = await pipeline.start(site)
    await pipeline.wait_for(run_id, lambda s: s.stage(4).processed_count >= 2)
    await pipeline.send(command(site, stop(run_id=run_id), run_id))
    stopped = await pipeline.wait_for(run_id, lambda s: s.status == status)
    await pipeline.wait_for(
        run_id,
        lambda s: not s.stage(4).in_flight(),
        timeout=60,
        what=f"the stage-4 batch in flight when the run was {status} to end",
    )
    return run_id, stopped


async def test_hundred_keywords_go_through_all_seven_stages(db, pipeline, services):
    engine_up(services)
    services.start("log-sink", "log-sink")
    site = new_site(db, keyword_count=100, credits=100_000)
    with db.connect() as conn:  # what the gateway's estimate and the scheduler project
        before = estimate(pending_work(conn, site.site_id), balance(db, site.account_id))

    run_id = await pipeline.start(site)
    state = await pipeline.finished(run_id, timeout=600)

    made = counts(db, site.site_id)
    assert state.status == "completed", state.error
    assert made["keywords_mapped"] == 100
    assert 1 < made["clusters"] < 100
    assert made["ideas"] == 3 * made["clusters"]
    assert made["content_in_review"] == made["content"] == made["ideas"]
    assert made["images_generated"] == made["images"] == 4 * made["content"]
    assert_whole_and_unique(db, site.site_id, made)
    per_stage = [s.processed_count for s in state.stages]
    assert per_stage[:6] == [
        100,
        made["clusters"],
        made["ideas"],
        made["tasks"],
        made["content"],
        made["images"],
    ]
    assert state.stage(7).total == made["content_in_review"]
    credits = expected_credits(100, made)
    assert charged(db, site.account_id) == credits == state.credits_used
    assert balance(db, site.account_id) == 100_000 - credits
    assert before.projection == "range"
    assert before.projected_credits_min <= state.credits_used <= before.projected_credits_max
    # The run is now the site's history: the same keywords again are expected to cost the same.
    with db.connect() as conn:
        after = pending_work(conn, site.site_id)
    assert (after.keywords, after.clustered_keywords, after.clusters_made) == (
        0,
        100,
        made["clusters"],
    )
    again = after.model_copy(update={"keywords": 100})
    assert estimate(again, balance=0).projected_credits == state.credits_used


async def test_pause_in_stage_4_then_resume_ends_as_an_uninterrupted_run(db, pipeline, services):
    engine_up(services, {"OFFLINE_LATENCY_MS": "30"})
    plain, paused = new_site(db, 20, 10_000), new_site(db, 20, 10_000)

    reference = await pipeline.finished(await pipeline.start(plain))
    run_id, held = await stopped_in_stage_4(pipeline, paused, cmd.PauseRun, "paused")
    # The batch in flight at the pause has ended after its current item, and a command sent now
    # is answered once the orchestrator has taken the batch's end (one consumer reads both
    # topics; the end came first) and ticked the paused run: whatever it would have started by
    # then is on the stream ahead of the answer.
    repeat = await pipeline.answer(command(paused, cmd.PauseRun(run_id=run_id), run_id))
    assert isinstance(repeat.data, ev.CommandRejected) and repeat.data.status == "paused"
    still = await pipeline.state(run_id)
    assert still.status == "paused"
    # The batch in flight at the pause may finish; nothing after it starts.
    assert still.stage(4).processed_count <= held.stage(4).processed_count + 1
    assert still.stage(4).in_flight() == ()
    await pipeline.send(command(paused, cmd.ResumeRun(run_id=run_id), run_id))
    resumed = await pipeline.finished(run_id)

    assert reference.status == resumed.status == "completed"
    assert counts(db, paused.site_id) == counts(db, plain.site_id)
    assert charged(db, paused.account_id) == charged(db, plain.account_id)
    assert [s.processed_count for s in resumed.stages] == [
        s.processed_count for s in reference.stages
    ]


async def test_cancel_mid_stage_leaves_nothing_half_written_and_frees_the_site(
    db, pipeline, services
):
    # Slow enough AI calls that the rest of stage 4 (13 articles, one at a time) outlasts the
    # time from the second article to the cancel landing, however loaded the machine is.
    engine_up(services, {"OFFLINE_LATENCY_MS": "300"})
    site = new_site(db, 20, 10_000)
    # The item in flight at the cancel may still land: its batch then ends, and the batch's end
    # is sent from the outbox only once its writes are committed.
    _, state = await stopped_in_stage_4(pipeline, site, cmd.CancelRun, "cancelled")
    made = counts(db, site.site_id)
    assert 2 <= made["content"] < made["tasks"]
    assert made["images"] == 0 or state.stage(5).status != "pending"
    assert_nothing_half_written_nor_charged_twice(db, site.site_id)
    after = await pipeline.start(site)
    second = await pipeline.wait_for(after, lambda s: s.status != "none", timeout=30)
    assert second.status == "running"


async def test_a_worker_killed_mid_batch_does_not_stop_or_double_the_run(db, pipeline, services):
    _, workers = engine_up(services, {"OFFLINE_LATENCY_MS": "150"})
    site = new_site(db, 20, 10_000)
    run_id = await pipeline.start(site, config=RunConfig(stage_concurrency=2))
    await pipeline.wait_for(run_id, lambda s: s.stage(4).processed_count >= 1)
    workers.kill9()
    services.start("workers-2", "stage-worker", env={"OFFLINE_LATENCY_MS": "150"})
    state = await pipeline.finished(run_id, timeout=300)

    made = counts(db, site.site_id)
    assert state.status == "completed", state.error
    assert_whole_and_unique(db, site.site_id, made)
    assert made["content_in_review"] == made["content"]
    assert charged(db, site.account_id) == expected_credits(20, made) == state.credits_used


async def test_the_orchestrator_killed_mid_run_is_replaced_and_the_run_completes(
    db, pipeline, services
):
    orchestrator, _ = engine_up(services, {"OFFLINE_LATENCY_MS": "30"})
    site = new_site(db, 20, 10_000)
    run_id = await pipeline.start(site)
    await pipeline.wait_for(run_id, lambda s: s.stage(4).processed_count >= 2)
    orchestrator.kill9()
    services.start("orchestrator-2", "orchestrator", env=FAST)
    state = await pipeline.finished(run_id, timeout=300)

    made = counts(db, site.site_id)
    assert state.status == "completed", state.error
    assert_whole_and_unique(db, site.site_id, made)
    assert charged(db, site.account_id) == expected_credits(20, made) == state.credits_used


async def test_two_orchestrators_and_three_workers_share_the_sites_and_survive_kill_9(
    db, pipeline, services
):
    """Scale-out: the sites split between two orchestrators, the batches between three workers;
    kill -9 of one of each mid-run, and every run still ends whole, once, charged once."""
    latency = {"OFFLINE_LATENCY_MS": "30"}
    orchestrators = [services.start(f"orchestrator-{n}", "orchestrator", env=FAST) for n in "ab"]
    workers = [services.start(f"workers-{n}", "stage-worker", env=latency) for n in "123"]
    for orchestrator in orchestrators:
        wait_until(
            lambda o=orchestrator: owns_run_commands(o, pipeline.topics.run_commands),
            what=f"{orchestrator.name} owning some sites",
        )
    sites = [new_site(db, 20, 10_000) for _ in range(6)]
    run_ids = [await pipeline.start(site, config=RunConfig(stage_concurrency=2)) for site in sites]
    await pipeline.wait_for(run_ids[0], lambda s: s.stage(4).processed_count >= 1)
    orchestrators[0].kill9()
    workers[0].kill9()
    states = [await pipeline.finished(run_id, timeout=600) for run_id in run_ids]

    for site, state in zip(sites, states, strict=True):
        made = counts(db, site.site_id)
        assert state.status == "completed", state.error
        assert_whole_and_unique(db, site.site_id, made)
        assert charged(db, site.account_id) == expected_credits(20, made) == state.credits_used


def owns_run_commands(orchestrator, topic: str) -> bool:
    """The orchestrator's newest partition assignment includes some of the run commands."""
    assigned = [line for line in orchestrator.tail(400).splitlines() if "assigned" in line]
    return bool(assigned) and f"topic='{topic}'" in assigned[-1]
