"""The calls waiting at one process's gate take turns by run: in equal turns while every run
waits here alone, and fewer for a run that also takes turns in another process, so that each run
gets one run's part of the lane in all (the shared lane says how many processes hold each). A
call cancelled while its round runs is not served, and its reservation comes back."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import Counter, deque

import pytest

from stage_workers.gate.gate import Gate, Lane, _Line, _Waiter
from stage_workers.gate.lane import Budget, LaneState, Rules
from stage_workers.gate.store import LaneStore

LANE = Lane("test|m", "test", "m", Budget(requests_per_minute=600))


def line_of(waiting: dict[str, int]) -> _Line:
    line = _Line(LANE)
    loop = asyncio.new_event_loop()
    for run, calls in waiting.items():
        for _ in range(calls):
            line.runs.setdefault(run, deque()).append(_Waiter(run, 10, loop.create_future()))
    loop.close()  # the futures are only held here, never awaited
    return line


def runs_of(waiters: list[_Waiter]) -> list[str]:
    return [w.run_id for w in waiters]


def serve(line: _Line, rounds: int, per_round: int) -> Counter[str]:
    """Admit the first `per_round` offered, `rounds` times, as the keeper does."""
    taken: Counter[str] = Counter()
    for _ in range(rounds):
        admitted = line.next_in_turn(64)[:per_round]
        line.take(admitted)
        taken.update(runs_of(admitted))
    return taken


def test_runs_waiting_here_alone_take_turns_one_by_one():
    line = line_of({"a": 5, "b": 5, "c": 1})
    assert runs_of(line.next_in_turn(7)) == ["a", "b", "c", "a", "b", "a", "b"]


def test_a_run_served_goes_to_the_back_of_the_line():
    line = line_of({"a": 5, "b": 5, "c": 5})
    line.take(line.next_in_turn(1))
    assert runs_of(line.next_in_turn(3)) == ["b", "c", "a"]


def test_a_run_also_waiting_in_another_process_takes_half_the_turns_here():
    line = line_of({"here": 100, "both": 100})
    line.spread = {"here": 1, "both": 2}
    assert serve(line, rounds=10, per_round=3) == {"here": 20, "both": 10}


def test_a_run_that_left_and_came_back_is_neither_ahead_nor_owed():
    line = line_of({"a": 100, "b": 1})
    serve(line, rounds=1, per_round=2)  # b's only call: b leaves the line
    assert "b" not in line.served
    serve(line, rounds=5, per_round=1)  # a alone for a while
    line.runs["b"] = line_of({"b": 3}).runs["b"]
    assert runs_of(line.next_in_turn(4)) == ["a", "b", "a", "b"]


def test_a_cancelled_call_that_empties_its_run_drops_the_runs_turns():
    line = line_of({"a": 1, "b": 2})
    line.take(line.next_in_turn(1))  # a's call: a leaves
    only = line.runs["b"][0]
    line.take([only])
    line.drop(line.runs["b"][0])
    assert line.empty and line.served == {} and line.spread == {}


def test_a_call_cancelled_while_its_round_runs_is_skipped_not_served():
    line = line_of({"a": 2, "b": 1})
    offered = line.next_in_turn(3)
    line.drop(offered[1])  # b's one call, cancelled while the round asked the shared lane
    assert runs_of(line.take(offered)) == ["a", "a"]
    assert line.empty


class MemoryLanes(LaneStore):
    """The shared lanes in memory, with the machine's clock: the gate's port without the
    database. `held` keeps a change waiting until it is set, as a slow transaction would."""

    def __init__(self) -> None:
        self.states: dict[str, LaneState] = {}
        self.held = threading.Event()
        self.held.set()

    def change(self, lane, budget, change):
        self.held.wait(10)
        now = time.time()
        state = self.states.get(lane) or LaneState.full(budget, RULES, now)
        self.states[lane], result = change(state, now)
        return result


RULES = Rules(burst_seconds=1.0)


async def test_a_call_cancelled_while_its_round_runs_gives_its_tokens_back():
    lanes = MemoryLanes()
    gate = Gate(lanes, RULES, asyncio.to_thread)
    lane = Lane("test|tokens", "test", "m", Budget(requests_per_minute=6000, tokens_per_minute=600))
    lanes.held.clear()  # the round about to start waits on "the database"
    call = asyncio.create_task(gate.admit(lane, "run-1", cost=8))
    await asyncio.sleep(0.05)
    call.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await call
    lanes.held.set()  # the round admits the call that is gone
    keeper = gate.lines[lane.key].keeper
    await asyncio.wait_for(keeper, 10)
    assert keeper.exception() is None
    # The 8 tokens reserved for it came back: the bucket is full again.
    full = LaneState.full(lane.budget, RULES, 0).tokens
    assert lanes.states[lane.key].tokens == pytest.approx(full, abs=0.5)
