"""Two gates, as two worker processes would hold them, sharing one lane through PostgreSQL:
together they keep to the lane's pace, they share it by the runs each has waiting (so every run
goes at about the same pace, wherever it is served), and a gate that stops asking withdraws."""

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


async def test_two_processes_keep_to_the_pace_and_share_it_by_runs(db: sa.Engine):
    lane = Lane(f"test|{uuid.uuid4().hex}", "test", "m", Budget(requests_per_minute=PER_MINUTE))
    gates = [Gate(LaneStore(db, RULES), RULES, asyncio.to_thread) for _ in range(2)]
    runs = {0: ["a1", "a2", "a3"], 1: ["b1"]}
    calls: Counter[str] = Counter()
    stop = asyncio.Event()
    askers = [
        asyncio.create_task(keep_asking(gates[g], lane, run_id, calls, stop))
        for g, run_ids in runs.items()
        for run_id in run_ids
        for _ in range(4)  # four calls of each run wait at once
    ]

    async def enough() -> bool:
        return sum(calls.values()) >= CALLS

    started = time.monotonic()
    await wait_until_async(enough, timeout=60, every=0.05, what=f"{CALLS} calls")
    seconds = time.monotonic() - started
    stop.set()
    for asker in askers:
        asker.cancel()
    await asyncio.gather(*askers, return_exceptions=True)

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
