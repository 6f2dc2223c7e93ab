"""Two gates, as two worker processes would hold them, sharing one lane through PostgreSQL:
together they keep to the lane's pace, they share it by the runs each has waiting (so every run
goes at about the same pace, wherever it is served, in one gate or in both), and a gate that
stops asking withdraws."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter

import pytest
import sqlalchemy as sa

from contracts.db import tables as t
from stage_workers.gate.gate import Gate, Lane
from stage_workers.gate.lane import Budget, Rules
from stage_workers.gate.store import LaneStore
from tests.support.wait import wait_until_async

RULES = Rules()
PER_MINUTE = 600
CALLS = 64  # enough for the shares to show: 16 per run at the lane's pace of 10 a second


async def keep_asking(gate: Gate, lane: Lane, run_id: str, calls: Counter, stop: asyncio.Event):
    """One call in flight at a time for `run_id`: admitted, answered at once, again."""
    while not stop.is_set():
        ticket = await gate.admit(lane, run_id, cost=10)
        calls[run_id] += 1
        await gate.answered(ticket, used_tokens=10, exhausted_for=None)


async def ask_until(
    db: sa.Engine, runs: dict[int, list[str]], enough_calls: int
) -> tuple[Lane, Counter[str], float]:
    """Two gates on one new lane; each run of `runs` (by gate) keeps four calls waiting until the
    lane has admitted `enough_calls`. Returns the lane, the calls of each run, and the time."""
    lane = Lane(f"test|{uuid.uuid4().hex}", "test", "m", Budget(requests_per_minute=PER_MINUTE))
    gates = [Gate(LaneStore(db, RULES), RULES, asyncio.to_thread) for _ in range(2)]
    calls: Counter[str] = Counter()
    stop = asyncio.Event()
    askers = [
        asyncio.create_task(keep_asking(gates[g], lane, run_id, calls, stop))
        for g, run_ids in runs.items()
        for run_id in run_ids
        for _ in range(4)  # four calls of each run wait at once
    ]

    async def enough() -> bool:
        return sum(calls.values()) >= enough_calls

    started = time.monotonic()
    await wait_until_async(enough, timeout=60, every=0.05, what=f"{enough_calls} calls")
    seconds = time.monotonic() - started
    stop.set()
    for asker in askers:
        asker.cancel()
    await asyncio.gather(*askers, return_exceptions=True)
    return lane, calls, seconds


async def test_two_processes_keep_to_the_pace_and_share_it_by_runs(db: sa.Engine):
    lane, calls, seconds = await ask_until(db, {0: ["a1", "a2", "a3"], 1: ["b1"]}, CALLS)

    # Never above the lane's pace plus the one burst a full bucket allows, and not idle either:
    # at least half the pace (how close to it is the benchmark's figure).
    pace = PER_MINUTE / 60 * RULES.headroom
    assert pace / 2 * seconds <= sum(calls.values()) <= pace * (seconds + RULES.burst_seconds) + 1
    mean = sum(calls.values()) / 4
    for run_id in ("a1", "a2", "a3", "b1"):
        assert calls[run_id] == pytest.approx(mean, rel=0.35), calls

    async def withdrawn() -> bool:
        with db.connect() as conn:
            row = conn.execute(
                sa.select(t.ai_lanes.c.shares).where(t.ai_lanes.c.lane == lane.key)
            ).one()
        return row.shares == []

    await wait_until_async(
        withdrawn, timeout=5, every=0.1, what="the stopped gates to withdraw from the lane"
    )


async def test_a_run_waiting_in_both_processes_gets_one_runs_part_not_two(db: sa.Engine):
    # "both" has calls waiting in each gate, "one" in the first alone. Shared by the count of
    # runs in each gate, "both" would get 2/3 of the lane (1/3 in each gate) and "one" 1/3.
    _, calls, _ = await ask_until(db, {0: ["one", "both"], 1: ["both"]}, 2 * CALLS)
    assert calls["both"] == pytest.approx(calls["one"], rel=0.25), calls
