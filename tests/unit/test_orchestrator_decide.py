"""The orchestrator's pure decisions: run commands against site state, and ticks of a run."""

from __future__ import annotations

from datetime import timedelta

import pytest

from contracts import commands as cmd
from contracts import events as ev
from contracts.admission import refuse_start
from contracts.values import RunConfig
from orchestrator.decide import on_command, tick
from orchestrator.sites import SiteState
from tests.support.decisions import (
    LIMITS,
    SITE,
    T0,
    Harness,
    dispatched,
    items,
    kinds,
    payloads,
)

# --- StartRun ------------------------------------------------------------------------------


def test_start_run_starts_it_and_asks_stage_1_to_pick():
    h = Harness()
    message = h.envelope(cmd.StartRun(run_id="run_a", trigger="manual", estimate=10, balance=12))
    decided = h.send_command(message)
    assert kinds(decided) == ["RunStarted", "StartStage"]
    started, start_stage = decided
    assert started.is_event and started.message.run_id == "run_a"
    assert started.message.causation_id == message.message_id
    assert started.message.correlation_id == message.correlation_id
    assert start_stage.stage == 1 and start_stage.key == b"run_a"
    assert start_stage.message.data == cmd.StartStage(run_id="run_a", stage=1)
    assert h.run().status == "running"


def test_only_one_of_many_starts_wins_the_others_name_the_active_run():
    h = Harness()
    decided = [h.command(cmd.StartRun(run_id=f"run_{n}", trigger="manual")) for n in range(20)]
    outcomes = [d[0].message.data for d in decided]
    assert sum(isinstance(o, ev.RunStarted) for o in outcomes) == 1
    rejected = [o for o in outcomes if isinstance(o, ev.RunRejected)]
    assert len(rejected) == 19
    assert {(r.code, r.active_run_id) for r in rejected} == {("active_run", "run_0")}
    assert "run_0" in rejected[0].reason


def test_a_paused_run_still_blocks_a_new_start():
    h = Harness()
    h.start("run_a")
    h.command(cmd.PauseRun(run_id="run_a"))
    [rejected] = payloads(h.command(cmd.StartRun(run_id="run_b", trigger="manual")))
    assert rejected.code == "active_run" and rejected.active_run_id == "run_a"


def test_a_finished_run_does_not_block_the_next():
    h = Harness()
    h.start("run_a")
    h.command(cmd.CancelRun(run_id="run_a"))
    assert kinds(h.command(cmd.StartRun(run_id="run_b", trigger="manual"))) == [
        "RunStarted",
        "StartStage",
    ]


def test_insufficient_credits_are_refused_with_the_figures():
    h = Harness()
    [out] = h.command(cmd.StartRun(run_id="run_a", trigger="manual", estimate=100, balance=119))
    refused = out.message.data
    assert isinstance(refused, ev.RunRejected)
    assert (refused.code, refused.estimate, refused.balance, refused.required) == (
        "insufficient_credits",
        100,
        119,
        120,
    )
    assert "119" in refused.reason and "120" in refused.reason and "100" in refused.reason
    assert h.run().status == "rejected"


def test_exactly_the_buffer_is_enough():
    h = Harness()
    decided = h.command(cmd.StartRun(run_id="run_a", trigger="manual", estimate=100, balance=120))
    assert kinds(decided)[0] == "RunStarted"


def test_a_repeated_start_decides_nothing():
    h = Harness()
    message = h.envelope(cmd.StartRun(run_id="run_a", trigger="manual"))
    assert h.send_command(message)
    assert h.send_command(message) == []
    assert h.command(cmd.StartRun(run_id="run_a", trigger="manual")) == []


def test_a_repeated_rejected_start_is_not_answered_twice():
    h = Harness()
    h.start("run_a")
    message = h.envelope(cmd.StartRun(run_id="run_b", trigger="manual"))
    [first] = h.send_command(message)
    assert h.send_command(message) == []
    assert (
        first.message.message_id
        == on_command(SiteState(SITE), message, h.now)[0].message.message_id
    )


# --- pause / resume / cancel ----------------------------------------------------------------


def test_pause_resume_cancel_follow_the_allowed_transitions():
    h = Harness()
    h.start("run_a")
    assert kinds(h.command(cmd.PauseRun(run_id="run_a", requested_by="u1"))) == ["RunPaused"]
    assert h.run().status == "paused" and h.run().pause_reason == "requested"
    assert kinds(h.command(cmd.ResumeRun(run_id="run_a"))) == ["RunResumed"]
    assert h.run().status == "running"
    assert kinds(h.command(cmd.CancelRun(run_id="run_a"))) == ["RunCancelled"]
    assert h.run().status == "cancelled"


def test_cancel_works_on_a_paused_run():
    h = Harness()
    h.start("run_a")
    h.command(cmd.PauseRun(run_id="run_a"))
    assert kinds(h.command(cmd.CancelRun(run_id="run_a"))) == ["RunCancelled"]


@pytest.mark.parametrize(
    ("setup", "command", "status"),
    [
        ([cmd.PauseRun], cmd.PauseRun, "paused"),
        ([], cmd.ResumeRun, "running"),
        ([cmd.CancelRun], cmd.PauseRun, "cancelled"),
        ([cmd.CancelRun], cmd.ResumeRun, "cancelled"),
        ([cmd.CancelRun], cmd.CancelRun, "cancelled"),
    ],
)
def test_a_transition_the_state_does_not_allow_is_refused(setup, command, status):
    h = Harness()
    h.start("run_a")
    for earlier in setup:
        h.command(earlier(run_id="run_a"))
    [out] = h.command(command(run_id="run_a"))
    refused = out.message.data
    assert isinstance(refused, ev.CommandRejected)
    assert refused.command == command.TYPE
    assert refused.status == status and refused.reason == f"run run_a is {status}"
    assert h.run().status == status


def test_commands_for_an_unknown_or_rejected_run_are_refused():
    h = Harness()
    h.command(cmd.StartRun(run_id="run_poor", trigger="manual", estimate=10, balance=0))
    for run_id in ("run_nope", "run_poor"):
        [out] = h.command(cmd.PauseRun(run_id=run_id))
        assert out.message.data.reason == "unknown run" and out.message.run_id == run_id


def test_a_redelivered_pause_after_a_resume_is_not_decided_again():
    h = Harness()
    h.start("run_a")
    pause = h.envelope(cmd.PauseRun(run_id="run_a"))
    h.send_command(pause)
    h.command(cmd.ResumeRun(run_id="run_a"))
    assert h.send_command(pause) == []
    assert h.run().status == "running"


# --- tick: stages and batches ---------------------------------------------------------------


def test_start_stage_is_resent_only_after_the_retry_interval():
    h = Harness()
    h.start("run_a")
    assert h.tick("run_a") == []
    h.later(29)
    assert h.tick("run_a") == []
    h.later(2)
    [again] = h.tick("run_a")
    assert again.message.data == cmd.StartStage(run_id="run_a", stage=1)
    assert h.tick("run_a") == []


def test_resent_start_stage_keeps_its_message_id():
    h = Harness()
    [_, first] = h.command(cmd.StartRun(run_id="run_a", trigger="manual"))
    h.later(31)
    [again] = h.tick("run_a")
    assert again.message.message_id == first.message.message_id


def test_one_batch_at_a_time_with_concurrency_1():
    h = Harness()
    h.start("run_a", RunConfig(batch_sizes={1: 2}))
    h.begin_stage("run_a", 1, items(1, 5))
    decided = h.tick("run_a")
    assert kinds(decided) == ["StageBatchDispatched", "ProcessBatch"]
    event, command = decided
    assert (event.message.data.batch_id, event.message.data.item_ids) == ("1-1", (1001, 1002))
    assert command.stage == 1 and command.key == b"run_a:1-1"
    assert command.message.data.lease_until == T0 + timedelta(seconds=120)
    assert h.tick("run_a") == []
    h.process("run_a", 1, "1-1", 1001, 1002)
    assert h.tick("run_a") == []  # the batch is still in flight until it completes
    h.complete_batch("run_a", 1, "1-1", processed=2)
    [second] = dispatched(h.tick("run_a"))
    assert (second.batch_id, second.item_ids, second.attempt) == ("1-2", (1003, 1004), 1)


def test_three_batches_in_flight_with_concurrency_3():
    h = Harness()
    h.start("run_a", RunConfig(batch_sizes={1: 2}, stage_concurrency=3))
    h.begin_stage("run_a", 1, items(1, 7))
    batches = dispatched(h.tick("run_a"))
    assert [(b.batch_id, b.item_ids) for b in batches] == [
        ("1-1", (1001, 1002)),
        ("1-2", (1003, 1004)),
        ("1-3", (1005, 1006)),
    ]
    assert h.tick("run_a") == []
    h.process("run_a", 1, "1-2", 1003, 1004)
    h.complete_batch("run_a", 1, "1-2")
    [last] = dispatched(h.tick("run_a"))
    assert (last.batch_id, last.item_ids) == ("1-4", (1007,))


def test_within_stage_delay_spaces_batches_after_a_completion():
    h = Harness()
    h.start("run_a", RunConfig(batch_sizes={1: 1}, within_stage_delay=10))
    h.begin_stage("run_a", 1, items(1, 2))
    assert dispatched(h.tick("run_a"))
    h.process("run_a", 1, "1-1", 1001)
    h.complete_batch("run_a", 1, "1-1")
    h.later(9)
    assert h.tick("run_a") == []
    h.later(1)
    assert [b.batch_id for b in dispatched(h.tick("run_a"))] == ["1-2"]


def test_an_expired_lease_redispatches_the_same_batch_with_its_open_items():
    h = Harness()
    h.start("run_a", RunConfig(batch_sizes={1: 3}))
    h.begin_stage("run_a", 1, items(1, 3))
    first = dispatched(h.tick("run_a"))[0]
    h.process("run_a", 1, "1-1", 1001)
    h.later(120)
    assert h.tick("run_a") == []  # lease_until == now is not yet expired
    h.later(1)
    decided = h.tick("run_a")
    [again] = dispatched(decided)
    assert (again.batch_id, again.item_ids, again.attempt) == (first.batch_id, (1002, 1003), 2)
    command = next(o for o in decided if not o.is_event).message.data
    assert (command.attempt, command.item_ids) == (2, (1002, 1003))
    assert h.tick("run_a") == []


def test_a_stage_completes_with_its_figures_and_the_next_one_starts():
    h = Harness()
    h.start("run_a", RunConfig(batch_sizes={1: 5}))
    h.begin_stage("run_a", 1, items(1, 3))
    h.tick("run_a")
    h.process("run_a", 1, "1-1", 1001, 1002)
    h.worker(
        "run_a",
        ev.StageItemFailed(stage=1, batch_id="1-1", item=items(1, 3)[2], error="boom"),
    )
    h.complete_batch("run_a", 1, "1-1", processed=2, failed=1)
    decided = h.tick("run_a")
    assert kinds(decided) == ["StageCompleted", "StartStage"]
    completed = decided[0].message.data
    assert completed == ev.StageCompleted(
        stage=1, items_in=3, items_out=2, failed=1, credits=4, partial=True
    )
    assert decided[1].message.data == cmd.StartStage(run_id="run_a", stage=2)


def test_between_stage_delay_holds_the_next_stage():
    h = Harness()
    h.start("run_a", RunConfig(between_stage_delay=60))
    h.begin_stage("run_a", 1, ())
    assert kinds(h.tick("run_a")) == ["StageCompleted"]
    h.later(59)
    assert h.tick("run_a") == []
    h.later(1)
    assert payloads(h.tick("run_a")) == [cmd.StartStage(run_id="run_a", stage=2)]


def test_a_stage_with_no_items_completes_at_once():
    h = Harness()
    h.start("run_a")
    h.begin_stage("run_a", 1, ())
    completed, start_next = payloads(h.tick("run_a"))
    assert completed == ev.StageCompleted(stage=1, items_in=0, items_out=0)
    assert start_next == cmd.StartStage(run_id="run_a", stage=2)


def test_a_stage_whose_every_item_failed_fails_the_run():
    h = Harness()
    h.start("run_a", RunConfig(batch_sizes={1: 5}))
    h.begin_stage("run_a", 1, items(1, 2))
    h.tick("run_a")
    for item in items(1, 2):
        h.worker("run_a", ev.StageItemFailed(stage=1, batch_id="1-1", item=item, error="bad"))
    h.complete_batch("run_a", 1, "1-1", processed=0, failed=2)
    decided = h.tick("run_a")
    assert kinds(decided) == ["StageFailed", "RunFailed"]
    assert (
        decided[1].message.data.stage == 1 and "all 2 items failed" in decided[1].message.data.error
    )
    assert h.run().status == "failed"
    assert h.tick("run_a") == []


def test_a_fatal_error_from_a_batch_fails_the_stage_and_the_run_at_once():
    """The provider refused the key: the other items would fail the same way, so the run fails
    now instead of dispatching them one by one."""
    h = Harness()
    h.start("run_a", RunConfig(batch_sizes={1: 1}))
    h.begin_stage("run_a", 1, items(1, 5))
    h.tick("run_a")
    fatal = "FatalAIError: Error code: 401 - invalid api key"
    h.complete_batch("run_a", 1, "1-1", processed=0, fatal=fatal)
    decided = h.tick("run_a")
    assert kinds(decided) == ["StageFailed", "RunFailed"]
    assert decided[1].message.data.error == f"stage 1: {fatal}"
    assert h.run().status == "failed" and h.run().error == f"stage 1: {fatal}"
    assert h.tick("run_a") == []


def test_the_manual_stage_completes_the_run_with_the_ids_for_review():
    h = Harness()
    h.start("run_a")
    for stage in range(1, 7):
        h.begin_stage("run_a", stage, ())
        h.tick("run_a")
    h.begin_stage("run_a", 7, items(7, 2))
    decided = h.tick("run_a")
    assert kinds(decided) == ["StageCompleted", "RunCompleted"]
    assert decided[0].message.data == ev.StageCompleted(stage=7, items_in=2, items_out=0)
    assert decided[1].message.data.ready_for_review == (7001, 7002)
    assert h.run().status == "completed"


def test_run_completed_counts_the_credits_used():
    h = Harness()
    h.start("run_a", RunConfig(batch_sizes={1: 5}))
    h.begin_stage("run_a", 1, items(1, 2))
    h.tick("run_a")
    h.process("run_a", 1, "1-1", 1001, 1002)
    h.complete_batch("run_a", 1, "1-1", processed=2)
    h.tick("run_a")
    for stage in range(2, 7):
        h.begin_stage("run_a", stage, ())
        h.tick("run_a")
    h.begin_stage("run_a", 7, ())
    completed = payloads(h.tick("run_a"))[-1]
    assert completed == ev.RunCompleted(credits_used=4, ready_for_review=())


def test_a_batch_halted_for_credits_pauses_the_run_and_resume_dispatches_the_rest():
    h = Harness()
    h.start("run_a", RunConfig(batch_sizes={4: 3}))
    for stage in (1, 2, 3):
        h.begin_stage("run_a", stage, ())
        h.tick("run_a")
    h.begin_stage("run_a", 4, items(4, 3))
    h.tick("run_a")
    h.process("run_a", 4, "4-1", 4001)
    h.complete_batch("run_a", 4, "4-1", halted="insufficient_credits")
    [paused] = payloads(h.tick("run_a"))
    assert paused == ev.RunPaused(reason="insufficient_credits")
    assert h.run().status == "paused" and h.run().pause_reason == "insufficient_credits"
    assert h.tick("run_a") == []
    h.command(cmd.ResumeRun(run_id="run_a"))
    [again] = dispatched(h.tick("run_a"))
    assert (again.batch_id, again.item_ids) == ("4-2", (4002, 4003))


def test_a_paused_run_dispatches_nothing():
    h = Harness()
    h.start("run_a")
    h.begin_stage("run_a", 1, items(1, 3))
    h.command(cmd.PauseRun(run_id="run_a"))
    h.later(3600)
    assert h.tick("run_a") == []


def test_a_rebuild_from_the_stream_decides_the_same_messages():
    """A replica that folds the stream decides what the original would have, ids included."""
    h = Harness()
    h.start("run_a", RunConfig(batch_sizes={1: 2}))
    h.begin_stage("run_a", 1, items(1, 4))
    rebuilt = SiteState(SITE)
    for message in h.stream:
        rebuilt = rebuilt.apply(message)
    assert rebuilt.run("run_a") == h.run()
    ours = tick(h.run(), h.site.notes_of("run_a"), h.now, LIMITS)
    theirs = tick(rebuilt.run("run_a"), rebuilt.notes_of("run_a"), h.now, LIMITS)
    assert [o.message for o in ours] == [o.message for o in theirs]
    assert kinds(ours) == ["StageBatchDispatched", "ProcessBatch"]


def test_nothing_is_decided_for_an_unknown_message_type():
    h = Harness()
    assert h.send_command(h.envelope(ev.RunCancelled(), run_id="run_x")) == []


def test_message_ids_differ_per_decision():
    h = Harness()
    h.start("run_a", RunConfig(batch_sizes={1: 1}, stage_concurrency=2))
    h.begin_stage("run_a", 1, items(1, 2))
    decided = h.tick("run_a")
    ids = [o.message.message_id for o in decided]
    assert len(set(ids)) == len(ids) == 4


def test_the_orchestrator_refuses_a_start_in_the_gateways_words():
    """One refusal, one wording: the gateway's early check and the orchestrator's answer."""
    h = Harness()
    [out] = h.command(cmd.StartRun(run_id="run_a", trigger="manual", estimate=100, balance=119))
    assert out.message.data == refuse_start(active_run_id=None, estimate=100, balance=119)
    h = Harness()
    h.command(cmd.StartRun(run_id="run_a", trigger="manual"))
    [out] = h.command(cmd.StartRun(run_id="run_b", trigger="manual"))
    assert out.message.data == refuse_start(active_run_id="run_a", estimate=0, balance=0)
    assert out.message.data.reason == "run run_a is already active for this site"
