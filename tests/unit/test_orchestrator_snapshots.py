"""Snapshots of the orchestrator's fold: a snapshot taken anywhere in a stream, read back and
folded on, is the state a fold from the beginning gives; what cannot be read is refused; ended
runs are kept small and forgotten after a while."""

from __future__ import annotations

import json
import zlib
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts import commands as cmd
from contracts import events as ev
from contracts.codec import decode as decode_message
from contracts.envelope import Envelope, new_message
from contracts.state import fold
from contracts.state_codec import UnreadableState, run_from_json, run_to_json
from contracts.values import ItemRef, RunConfig
from orchestrator.sites import FORGET_AFTER, SiteState
from orchestrator.snapshots import value as snapshots
from orchestrator.snapshots.value import Cadence, Snapshot, UnreadableSnapshot
from tests.support.decisions import Harness, items
from tests.support.runs import SITE, T0, Clock, complete_run, message
from tests.support.streams import streams

FIXTURE = Path(__file__).parent / "fixtures" / "run_v1.jsonl"


def site_fold(events: list[Envelope], site: SiteState | None = None) -> SiteState:
    site = site if site is not None else SiteState(SITE)
    for event in events:
        site = site.apply(event)
    return site


def through_snapshot(site: SiteState, offset: int = 0) -> SiteState:
    [restored] = snapshots.decode(snapshots.encode(Snapshot(3, offset, (site,)))).sites
    return restored


def an_active_run() -> list[Envelope]:
    """A run driven like the orchestrator drives it, left in the middle of stage 2 with a
    batch in flight, an item failed, a pause and a resume."""
    h = Harness()
    h.start("run_a", RunConfig(batch_sizes={1: 2, 2: 1}, stage_concurrency=2))
    h.begin_stage("run_a", 1, items(1, 3))
    h.tick("run_a")
    h.process("run_a", 1, "1-1", 1001, 1002)
    h.complete_batch("run_a", 1, "1-1", processed=2)
    h.worker("run_a", ev.StageItemFailed(stage=1, batch_id="1-2", item=items(1, 3)[2], error="x"))
    h.complete_batch("run_a", 1, "1-2", processed=0, failed=1)
    h.tick("run_a")
    h.command(cmd.PauseRun(run_id="run_a"))
    h.command(cmd.ResumeRun(run_id="run_a"))
    h.begin_stage("run_a", 2, items(2, 4))
    h.tick("run_a")
    h.process("run_a", 2, "2-1", 2001)
    return h.stream


def fixture_stream() -> list[Envelope]:
    return [decode_message(line.encode()) for line in FIXTURE.read_text().splitlines() if line]


FIXTURES = {
    "complete run": complete_run(items_per_stage=4),
    "active run": an_active_run(),
    "stored fixture": fixture_stream(),
}


@pytest.mark.parametrize("name", FIXTURES)
def test_a_snapshot_anywhere_then_the_tail_is_the_full_fold(name):
    events = FIXTURES[name]
    whole = site_fold(events)
    for cut in range(len(events) + 1):
        restored = through_snapshot(site_fold(events[:cut]), cut)
        assert restored == site_fold(events[:cut])
        assert site_fold(events[cut:], restored) == whole, f"cut at {cut}"


@pytest.mark.parametrize("name", FIXTURES)
def test_a_run_state_reads_back_equal_at_every_step(name):
    events = FIXTURES[name]
    for cut in range(len(events) + 1):
        state = fold(events[:cut])
        assert run_from_json(json.loads(json.dumps(run_to_json(state)))) == state


@settings(max_examples=200)
@given(streams, st.data())
def test_any_stream_folds_the_same_through_a_snapshot(events, data):
    cut = data.draw(st.integers(0, len(events)))
    restored = run_from_json(json.loads(json.dumps(run_to_json(fold(events[:cut])))))
    assert fold(events[cut:], restored) == fold(events)
    site = through_snapshot(site_fold(events[:cut]))
    assert site_fold(events[cut:], site) == site_fold(events)


def test_the_snapshot_keeps_its_partition_offset_and_every_site():
    one, two = site_fold(an_active_run()), SiteState(SITE + 1)
    snapshot = snapshots.decode(snapshots.encode(Snapshot(5, 1234, (one, two))))
    assert snapshot == Snapshot(5, 1234, (one, two))


def document(**changes) -> bytes:
    body = json.loads(zlib.decompress(snapshots.encode(Snapshot(0, 7, (SiteState(SITE),)))))
    return zlib.compress(json.dumps({**body, **changes}).encode())


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"garbage",
        zlib.compress(b"not json"),
        zlib.compress(b"[1, 2]"),
        document(version=snapshots.SNAPSHOT_VERSION - 1),
        document(version=snapshots.SNAPSHOT_VERSION + 1),
        document(run_state_version=0),
        document(sites=[{"site_id": SITE}]),
        document(sites=[{**json.loads(zlib.decompress(document()))["sites"][0], "runs": [{}]}]),
    ],
    ids=[
        "empty",
        "not zlib",
        "not json",
        "not an object",
        "older version",
        "newer version",
        "older run state",
        "site cut short",
        "run cut short",
    ],
)
def test_a_snapshot_that_cannot_be_read_is_refused(body):
    with pytest.raises(UnreadableSnapshot):
        snapshots.decode(body)


def test_a_run_state_that_is_not_one_is_refused():
    with pytest.raises(UnreadableState):
        run_from_json({"run_id": "run_x"})


# --- what a site keeps of ended runs ------------------------------------------------------


def ended_site(run_id: str = "run_20261102_090000_manual_t1") -> SiteState:
    return site_fold(complete_run(run_id, items_per_stage=3))


def test_an_ended_run_is_kept_as_a_summary_without_its_stages():
    run = ended_site().run("run_20261102_090000_manual_t1")
    full = fold(complete_run(items_per_stage=3))
    assert (run.status, run.credits_used, run.trigger, run.ended_at) == (
        "completed",
        full.credits_used,
        "manual",
        full.ended_at,
    )
    assert run.config is None and all(s.total == 0 and not s.batches for s in run.stages)
    assert ended_site().notes == {} and ended_site().active_run_id is None


def test_events_of_an_ended_run_change_nothing():
    site = ended_site()
    late = message(
        ev.StageItemProcessed(
            stage=2, batch_id="2-1", item=ItemRef(id=5, title="late"), total=3, credits=9
        ),
        "run_20261102_090000_manual_t1",
        Clock(),
        seq=999,
    )
    assert site.apply(late) is site


def outcome(payload, run_id: str, at, command_id) -> Envelope:
    command = new_message(
        cmd.CancelRun(run_id=run_id), source="/tests", account_id=7, site_id=SITE, run_id=run_id
    )
    command = command.model_copy(update={"message_id": command_id})
    return new_message(
        payload,
        source="/tests",
        account_id=7,
        site_id=SITE,
        run_id=run_id,
        caused_by=command,
        time=at,
    )


def test_ended_runs_and_answered_commands_are_forgotten_after_a_while():
    from uuid import uuid4

    first = ended_site("run_old")
    old_command = uuid4()
    refused = ev.CommandRejected(command="x", reason="run run_old is completed")
    site = first.apply(outcome(refused, "run_old", T0 + timedelta(hours=1), old_command))
    assert old_command in site.handled_commands and site.run("run_old") is not None
    # A run that ends a little less than FORGET_AFTER later keeps both...
    soon = T0 + FORGET_AFTER
    site = site.apply(outcome(ev.RunRejected(reason="busy"), "run_soon", soon, uuid4()))
    assert old_command in site.handled_commands and site.run("run_old") is not None
    # ...one that ends well after forgets them, and keeps itself.
    later = T0 + FORGET_AFTER + timedelta(days=1)
    site = site.apply(outcome(ev.RunRejected(reason="busy"), "run_late", later, uuid4()))
    assert old_command not in site.handled_commands and site.run("run_old") is None
    assert site.run("run_soon") is not None and site.run("run_late").status == "rejected"


# --- when snapshots are due -----------------------------------------------------------------


def test_a_snapshot_is_due_after_enough_events_or_after_a_while_with_any():
    cadence = Cadence(every_events=3, every_seconds=10)
    cadence.start([0, 1, 2], now=100)
    for _ in range(3):
        cadence.fold(0)
    cadence.fold(1)
    assert cadence.due(now=101) == [0]
    assert cadence.due(now=110) == [0, 1], "partition 2 folded nothing: nothing to write"
    taken = cadence.taken([0, 1], now=110)
    assert taken == {0: 3, 1: 1} and cadence.due(now=111) == [] and cadence.changed() == []
    cadence.failed({1: 1})
    assert cadence.changed() == [1] and cadence.due(now=120) == [1]
    cadence.drop([1])
    assert cadence.due(now=200) == []
