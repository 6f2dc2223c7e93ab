"""The orchestrator's transitions, without a broker: (state, message, now) in, (outgoing, state)
out, the given state never changed."""

from __future__ import annotations

from contracts import commands as cmd
from contracts import events as ev
from contracts.values import ItemRef, RunConfig
from orchestrator import transitions
from orchestrator.sites import SiteState
from tests.support.decisions import LIMITS, SITE, T0, Harness, items, kinds


def started_site() -> tuple[Harness, SiteState]:
    """A running run_a whose stage 1 has started with 3 items (batches of one)."""
    h = Harness()
    h.start("run_a", RunConfig(batch_sizes={1: 1}))
    return h, h.site


def test_a_command_returns_a_new_state_and_leaves_the_given_one_as_it_was():
    site = SiteState(SITE)
    h = Harness()
    start = h.envelope(cmd.StartRun(run_id="run_a", trigger="manual", estimate=1, balance=9))
    decided, after = transitions.on_command(site, start, T0, LIMITS)
    assert kinds(decided) == ["RunStarted", "StartStage"]
    assert site == SiteState(SITE) and site.run("run_a") is None
    assert after.run("run_a").status == "running" and after.active_run_id == "run_a"
    assert start.message_id in after.handled_commands
    assert after.notes_of("run_a").start_stage_sent_at[1] == T0
    # The same command again is a repeat: nothing decided, the state as it came.
    again, same = transitions.on_command(after, start, T0, LIMITS)
    assert again == [] and same is after


def test_while_catching_up_events_are_only_folded():
    h, site = started_site()
    stage_started = h.envelope(ev.StageStarted(stage=1, items=items(1, 3)), "run_a")
    decided, folded = transitions.on_event(site, stage_started, T0, LIMITS, deciding=False)
    assert decided == []
    assert folded.run("run_a").stage(1).status == "running"
    decided, live = transitions.on_event(site, stage_started, T0, LIMITS, deciding=True)
    assert kinds(decided) == ["StageBatchDispatched", "ProcessBatch"]
    assert live.run("run_a").stage(1).in_flight_ids == {"1-1"}, "its own dispatch is folded in"
    assert site.run("run_a").stage(1).status == "pending"


def test_an_item_event_is_folded_without_a_decision_and_a_repeat_changes_nothing():
    h, _ = started_site()
    h.begin_stage("run_a", 1, items(1, 3))
    h.tick("run_a")
    item = ItemRef(id=1001, title="s1-1")
    processed = h.envelope(
        ev.StageItemProcessed(stage=1, batch_id="1-1", item=item, total=3, credits=1), "run_a"
    )
    decided, folded = transitions.on_event(h.site, processed, T0, LIMITS, deciding=True)
    assert decided == [] and folded.run("run_a").stage(1).processed == {1001}
    again, same = transitions.on_event(folded, processed, T0, LIMITS, deciding=True)
    assert again == [] and same is folded


def test_a_resume_dispatches_at_once_in_the_same_call():
    h, _ = started_site()
    h.begin_stage("run_a", 1, items(1, 3))
    h.command(cmd.PauseRun(run_id="run_a"))
    paused = h.site
    resume = h.envelope(cmd.ResumeRun(run_id="run_a"), "run_a")
    decided, resumed = transitions.on_command(paused, resume, T0, LIMITS)
    assert kinds(decided) == ["RunResumed", "StageBatchDispatched", "ProcessBatch"]
    assert resumed.run("run_a").status == "running" and paused.run("run_a").status == "paused"


def test_a_tick_of_an_unknown_run_decides_nothing():
    site = SiteState(SITE)
    assert transitions.on_tick(site, "run_x", T0, LIMITS) == ([], site)
