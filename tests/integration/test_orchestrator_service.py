"""The orchestrator as a process against the real broker: one active run per site under
concurrent starts, a whole run with the stage workers played by the test, a restart mid-run,
and unreadable commands going to the dead-letter topic."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaProducer

from api_gateway import accounts
from contracts import commands as cmd
from contracts import events as ev
from contracts.dead_letter import DeadLetter
from contracts.envelope import new_message
from contracts.state import fold
from contracts.values import RunConfig
from tests.support.kafka import end_offsets, publish, read_until
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


async def test_one_run_per_site_runs_all_stages_and_resumes_after_a_restart(
    kafka_bootstrap, topics, services
):
    site = unique_site()
    events_start = await end_offsets(kafka_bootstrap, topics.run_events)
    stages_start = await stage_offsets(kafka_bootstrap, topics)
    orchestrator = await asyncio.to_thread(start_orchestrator, services)

    starts = [start_run(site, f"run_20261122_000000_manual_{site}_{n}") for n in range(20)]
    await asyncio.gather(*(publish(kafka_bootstrap, topics.run_commands, m) for m in starts))
    start_ids = {m.message_id for m in starts}

    def answered(events):
        return [m for m in events if m.causation_id in start_ids]

    outcomes = answered(
        await events_of_site(
            kafka_bootstrap, events_start, site, lambda es: len(answered(es)) >= 20
        )
    )
    started = [m for m in outcomes if isinstance(m.data, ev.RunStarted)]
    rejected = [m for m in outcomes if isinstance(m.data, ev.RunRejected)]
    assert len(started) == 1 and len(rejected) == 19 and len(outcomes) == 20
    run_id = started[0].run_id
    assert {(m.data.code, m.data.active_run_id) for m in rejected} == {("active_run", run_id)}

    async with workers_playing(
        kafka_bootstrap, topics, run_id, stages_start, hold_stage=4
    ) as workers:
        await asyncio.wait_for(workers.holding.wait(), 60)
        await asyncio.to_thread(orchestrator.stop)
        workers.release.set()  # stage 4 starts while no orchestrator runs
        orchestrator = await asyncio.to_thread(start_orchestrator, services, "orchestrator-2")
        events = await run_completed(kafka_bootstrap, events_start, site, run_id)

    # What the restarted orchestrator folded is what the test folds from the stream.
    state, completed = assert_run_completed(events)
    assert [s.status for s in state.stages] == ["completed"] * 7
    assert completed.ready_for_review == tuple(i.id for i in workers.items(7))
    for m in events:
        if isinstance(m.data, ev.StageCompleted):
            stage = state.stage(m.data.stage)
            assert (m.data.items_in, m.data.credits) == (stage.total, stage.credits)
    # No batch was decided twice: one dispatch (by id) per batch, all first attempts.
    dispatches = {
        m.message_id: m.data for m in events if isinstance(m.data, ev.StageBatchDispatched)
    }
    assert sorted(d.batch_id for d in dispatches.values()) == sorted(
        {d.batch_id for d in dispatches.values()}
    )
    assert {d.attempt for d in dispatches.values()} == {1}

    # The rebuilt state knows the run finished: the site takes a new run, and controls work.
    more_start = await end_offsets(kafka_bootstrap, topics.run_events)
    follow_up = start_run(site, f"run_20261122_000001_manual_{site}")
    cancel = command(cmd.CancelRun(run_id=follow_up.data.run_id), site)
    await publish(kafka_bootstrap, topics.run_commands, follow_up, cancel)
    later = await events_of_site(
        kafka_bootstrap,
        more_start,
        site,
        lambda es: any(m.causation_id == cancel.message_id for m in es),
    )
    assert [
        type(m.data) for m in later if m.causation_id in {follow_up.message_id, cancel.message_id}
    ] == [
        ev.RunStarted,
        ev.RunCancelled,
    ]
    metrics = orchestrator.metrics()
    assert (
        "orchestrator_replay_seconds" in metrics and "orchestrator_events_folded_total" in metrics
    )


async def test_pause_resume_and_refusals_travel_as_events(kafka_bootstrap, topics, services):
    site = unique_site()
    events_start = await end_offsets(kafka_bootstrap, topics.run_events)
    await asyncio.to_thread(start_orchestrator, services, "orchestrator-controls")
    run_id = f"run_20261122_000002_manual_{site}"
    poor = start_run(site, f"{run_id}_poor", estimate=100, balance=119)
    messages = [
        poor,
        start_run(site, run_id),
        command(cmd.PauseRun(run_id=run_id), site),
        command(cmd.PauseRun(run_id=run_id), site),
        command(cmd.ResumeRun(run_id=run_id), site),
        command(cmd.PauseRun(run_id="run_unknown"), site),
    ]
    await publish(kafka_bootstrap, topics.run_commands, *messages)
    ids = [m.message_id for m in messages]
    events = await events_of_site(
        kafka_bootstrap,
        events_start,
        site,
        lambda es: {m.causation_id for m in es} >= set(ids),
    )
    by_cause = {m.causation_id: m.data for m in events if m.causation_id in ids}
    outcome = [by_cause[i] for i in ids]
    assert [type(o) for o in outcome] == [
        ev.RunRejected,
        ev.RunStarted,
        ev.RunPaused,
        ev.CommandRejected,
        ev.RunResumed,
        ev.CommandRejected,
    ]
    assert (outcome[0].code, outcome[0].required, outcome[0].balance) == (
        "insufficient_credits",
        120,
        119,
    )
    assert outcome[3].status == "paused" and outcome[5].reason == "unknown run"


async def test_a_run_paused_for_credits_resumes_by_itself_once_they_are_added(
    kafka_bootstrap, topics, services, db
):
    with db.begin() as conn:
        account = accounts.create_account(conn, "credit watch")
        site = accounts.create_site(conn, account, "credit watch")
    run_id = f"run_20261206_000000_manual_{site}"
    events_start = await end_offsets(kafka_bootstrap, topics.run_events)
    stages_start = await stage_offsets(kafka_bootstrap, topics)
    await asyncio.to_thread(
        start_orchestrator, services, "orchestrator-credits", CREDIT_CHECK_SECONDS="0.2"
    )
    start = new_message(
        cmd.StartRun(run_id=run_id, trigger="manual", estimate=0, balance=0, config=RunConfig()),
        source="/tests",
        account_id=account,
        site_id=site,
        run_id=run_id,
    )
    async with workers_playing(kafka_bootstrap, topics, run_id, stages_start, broke_at_stage=2):
        await publish(kafka_bootstrap, topics.run_commands, start)

        def paused(events):
            return any(isinstance(m.data, ev.RunPaused) for m in events)

        await events_of_site(kafka_bootstrap, events_start, site, paused)
        with db.begin() as conn:
            accounts.add_credits(conn, account, 1000)
        events = await run_completed(kafka_bootstrap, events_start, site, run_id)
    [pause] = [m.data for m in events if isinstance(m.data, ev.RunPaused)]
    [resume] = [m.data for m in events if isinstance(m.data, ev.RunResumed)]
    assert pause.reason.startswith("insufficient_credits")
    assert resume.requested_by == "system:credits" and "credits were added" in resume.reason
    assert fold(events).status == "completed"


async def test_an_unreadable_command_is_dead_lettered_and_the_orchestrator_goes_on(
    kafka_bootstrap, topics, services
):
    site = unique_site()
    await asyncio.to_thread(start_orchestrator, services, "orchestrator-dlq")
    letters_start = await end_offsets(kafka_bootstrap, topics.dead_letter)
    events_start = await end_offsets(kafka_bootstrap, topics.run_events)
    garbage = f"not json for site {site}".encode()
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topics.run_commands, garbage, key=str(site).encode())
    finally:
        await producer.stop()
    after = start_run(site, f"run_20261122_000003_manual_{site}")
    await publish(kafka_bootstrap, topics.run_commands, after)

    events = await events_of_site(
        kafka_bootstrap,
        events_start,
        site,
        lambda es: any(m.causation_id == after.message_id for m in es),
    )
    assert any(isinstance(m.data, ev.RunStarted) for m in events)
    letters = await read_until(
        kafka_bootstrap,
        letters_start,
        lambda rs: any(DeadLetter.decode(r.value).value() == garbage for r in rs),
    )
    [letter] = [d for d in (DeadLetter.decode(r.value) for r in letters) if d.value() == garbage]
    assert letter.topic == topics.run_commands and letter.key == str(site)
    assert letter.reason.startswith("not JSON")
    assert letter.consumer.endswith("automation-orchestrator")
