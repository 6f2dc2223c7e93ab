"""A live stream's buffer in the gateway's hub holds at most its limit in bytes: past that it
drops what it held and says the stream fell behind (the stream then reads from the topic)."""

from __future__ import annotations

import pytest

from api_gateway.event_hub import FellBehind, Follower, RunEventHub
from contracts import events as ev
from contracts.envelope import new_message

RUN = "run_20261206_120000_manual_abcdef"


def _event(n: int):
    return new_message(
        ev.StageItemProcessed(stage=1, batch_id="b", item={"id": n, "title": f"k{n}"}, total=9),
        source="/test",
        account_id=1,
        site_id=1,
        run_id=RUN,
    )


async def test_events_within_the_limit_come_out_in_order():
    follower = Follower(RUN, start=0, limit=1000)
    for n in range(3):
        follower.push(n, _event(n), 300)
    assert follower.size == 900
    got = [await follower.next(0.01) for _ in range(3)]
    assert [offset for offset, _ in got] == [0, 1, 2] and follower.size == 0
    assert await follower.next(0.01) is None


async def test_a_follower_past_its_limit_holds_nothing_and_falls_behind():
    follower = Follower(RUN, start=0, limit=1000)
    for n in range(4):
        follower.push(n, _event(n), 300)
    assert follower.size == 0 and not follower.events
    follower.push(5, _event(5), 10)  # nothing more is held once behind
    assert follower.size == 0
    with pytest.raises(FellBehind):
        await follower.next(0.01)


async def test_the_hub_keeps_no_events_of_runs_nobody_follows():
    hub = RunEventHub("127.0.0.1:1", "events", buffer_bytes=4096)
    for n in range(500):
        hub.dispatch(_event(n), partition=0, offset=n, size=400)
    assert hub.buffered_bytes == 0
    seen = hub.seen(RUN)
    assert seen is not None and (seen.partition, seen.first_offset) == (0, 0)
    follower = hub.follow(RUN, partition=0)
    assert follower.start == 0  # the hub never read partition 0: nothing handed out before
    hub.dispatch(_event(500), partition=0, offset=500, size=400)
    assert hub.buffered_bytes == 400
    hub.unfollow(follower)
    assert hub.buffered_bytes == 0
