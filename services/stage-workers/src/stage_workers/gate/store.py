"""The lanes' state in PostgreSQL, shared by every worker process: each change locks the lane's
row, applies one pure function of lane.py with the database's clock, and writes the result, in
one transaction. A worker killed mid-call leaves no lock behind; what it had reserved comes back
as the buckets refill, and a probe it held is replaced when the probe's lease runs out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, fields
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Connection, Engine

from contracts.db import tables as t
from stage_workers.gate.lane import Budget, LaneState, Rules, Share

R = TypeVar("R")
Change = Callable[[LaneState, float], tuple[LaneState, R]]

_l = t.ai_lanes.c
_STATE_COLUMNS = [f.name for f in fields(LaneState)]
_NOW = sa.func.extract("epoch", sa.func.clock_timestamp())
_LOCK = (
    sa.select(*(_l[name] for name in _STATE_COLUMNS), _NOW.label("now"))
    .where(_l.lane == sa.bindparam("lane"))
    .with_for_update()
)
_CREATE = insert(t.ai_lanes).on_conflict_do_nothing()
_WRITE = (
    sa.update(t.ai_lanes)
    .where(_l.lane == sa.bindparam("lane_key"))
    .values(**{name: sa.bindparam(name) for name in _STATE_COLUMNS}, updated_at=sa.func.now())
)


class LaneStore:
    def __init__(self, engine: Engine, rules: Rules) -> None:
        self.engine = engine
        self.rules = rules

    def change(self, lane: str, budget: Budget, change: Change[R]) -> R:
        """Apply `change(state, now)` to the lane's row; a new lane starts with full buckets."""
        with self.engine.begin() as conn:
            state, now = self._lock(conn, lane, budget)
            new, result = change(state, now)
            if new != state:
                conn.execute(_WRITE, {"lane_key": lane, **asdict(new)})
            return result

    def _lock(self, conn: Connection, lane: str, budget: Budget) -> tuple[LaneState, float]:
        row = conn.execute(_LOCK, {"lane": lane}).one_or_none()
        if row is None:
            now = float(conn.execute(sa.select(_NOW)).scalar_one())
            conn.execute(_CREATE, {"lane": lane, **asdict(LaneState.full(budget, self.rules, now))})
            row = conn.execute(_LOCK, {"lane": lane}).one()
        values = row._asdict()
        now = float(values.pop("now"))
        values["shares"] = tuple(share_from_json(share) for share in values["shares"])
        return LaneState(**values), now


def share_from_json(share: dict) -> Share:
    """A share as the row holds it. One written before shares named their runs holds a count:
    as many runs of that process alone, which is how that count was weighed."""
    runs = share["runs"]
    if isinstance(runs, int):
        runs = [f"{share['process']}/{n}" for n in range(runs)]
    return Share(share["process"], tuple(runs), share["credit"], share["at"])
