"""The run-state fold: totality, determinism, folding in pieces, redelivery."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from contracts import events as ev
from contracts.codec import decode, encode
from contracts.state import RunState, fold
from contracts.values import ItemRef
from tests.support.runs import T0, Clock, complete_run, message
from tests.support.streams import POOL, RUN, any_event, streams


@settings(max_examples=300)
@given(streams, st.data())
def test_folding_in_pieces_equals_folding_at_once(events, data):
    cut = data.draw(st.integers(0, len(events)))
    assert fold(events[cut:], fold(events[:cut])) == fold(events)


@settings(max_examples=200)
@given(streams)
def test_replay_is_deterministic_also_through_the_wire(events):
    replayed = [decode(encode(m)) for m in events]
    assert fold(replayed) == fold(events) == fold(list(events))


@settings(max_examples=300)
@given(streams, st.data())
def test_a_redelivered_event_changes_nothing(events, data):
    original = data.draw(st.integers(0, len(events) - 1))
    at = data.draw(st.integers(original + 1, len(events)))
    redelivered = [*events[:at], events[original], *events[at:]]
    assert fold(redelivered) == fold(events)


@settings(max_examples=300)
@given(st.lists(any_event, max_size=60))
def test_fold_is_total_and_keeps_its_invariants(events):
    state = fold(events)
    assert isinstance(state, RunState)
    assert state.credits_used == sum(s.credits for s in state.stages)
    for stage in state.stages:
        assert not (stage.processed & stage.failed)
    if state.status == "none":
        assert state == RunState()


@settings(max_examples=300)
@given(streams)
def test_what_is_open_and_in_flight_is_kept_as_a_full_scan_would_find_it(events):
    for stage in fold(events).stages:
        open_at = [n for n, item in enumerate(stage.items) if not stage.is_settled(item.id)]
        assert stage.open_from == (open_at[0] if open_at else len(stage.items))
        assert stage.open_count == len(open_at)
        not_done = {b.batch_id for b in stage.batches.values() if not b.done}
        assert {b.batch_id for b in stage.in_flight()} == set(stage.in_flight_ids) == not_done


def test_a_complete_run_folds_to_completed_with_every_count():
    state = fold(complete_run(items_per_stage=4))
    assert state.status == "completed"
    assert [s.status for s in state.stages] == ["completed"] * 7
    assert [s.processed_count for s in state.stages] == [4] * 7
    assert state.credits_used == 2 * 4 * 7
    assert state.current_stage == 7
    assert all(s.open_items() == () and s.in_flight() == () for s in state.stages)
    assert state.stage(1).elapsed_seconds is not None and state.stage(1).elapsed_seconds > 0


def test_pause_and_resume_follow_each_other_and_keep_times():
    clock = Clock()
    events = [
        message(p, RUN, clock, seq=n)
        for n, p in enumerate(
            [
                ev.RunStarted(trigger="scheduled"),
                ev.RunPaused(reason="insufficient_credits"),
                ev.RunResumed(),
                ev.RunPaused(),
            ]
        )
    ]
    state = fold(events)
    assert state.status == "paused" and state.pause_reason == "requested"
    assert state.resumed_at == T0 + timedelta(seconds=3)
    assert fold(events[:2]).pause_reason == "insufficient_credits"


def test_events_of_another_run_are_ignored():
    mine, theirs = complete_run("run_mine"), complete_run("run_theirs")
    mixed = [e for pair in zip(mine, theirs, strict=True) for e in pair]
    assert fold(mixed) == fold(mine)


def test_items_in_flight_are_not_open_and_failed_items_are_settled():
    clock = Clock()
    items = tuple(ItemRef(id=i, title=str(i)) for i in (1, 2, 3))
    state = fold(
        message(p, RUN, clock, seq=n)
        for n, p in enumerate(
            [
                ev.RunStarted(trigger="manual"),
                ev.StageStarted(stage=4, items=items),
                ev.StageBatchDispatched(stage=4, batch_id="4-1", item_ids=(1,), lease_until=T0),
                ev.StageItemFailed(stage=4, batch_id="4-1", item=items[0], error="poisoned"),
            ]
        )
    )
    stage = state.stage(4)
    assert state.current_stage == 4
    assert [i.id for i in stage.open_items()] == [2, 3]
    assert [b.batch_id for b in stage.in_flight()] == ["4-1"]
    assert stage.failed == {1}


def test_a_pause_redelivered_after_the_resume_does_not_pause_again():
    started, paused, resumed = POOL[0], POOL[2], POOL[4]
    assert fold([started, paused, resumed, paused]).status == "running"
    assert fold([started, paused, resumed, paused, resumed]).resumed_at == resumed.time
