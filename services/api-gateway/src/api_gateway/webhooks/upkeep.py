"""What the webhooks process does on a timer: warn of low credits for sites whose next run is
near (balances and pending work change without a run of the site ending), and delete the
deliveries (with their attempts) that ended more than 30 days ago."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from api_gateway.webhooks import metrics
from api_gateway.webhooks.credits_check import low_credit_events
from api_gateway.webhooks.store import enqueue_all
from contracts.db import tables as t
from contracts.envelope import utcnow

log = logging.getLogger(__name__)
SWEEP_SECONDS = 15 * 60
KEPT = timedelta(days=30)
PRUNE_ROWS = 1000  # per statement, so no transaction holds many locks

_d = t.webhook_deliveries.c


def warn_low_credits(conn: Connection, now: datetime) -> dict[str, int]:
    """`credits.low` for every site whose next run is near and unpaid; the new deliveries."""
    return enqueue_all(conn, low_credit_events(conn, now), now)


def prune(conn: Connection, now: datetime, limit: int = PRUNE_ROWS) -> int:
    """Up to `limit` ended deliveries last touched before the retention window; their attempts
    go with them (ON DELETE CASCADE). Pending ones are never pruned."""
    old = (
        sa.select(_d.id)
        .where(_d.status != "pending", _d.updated_at < now - KEPT)
        .limit(limit)
        .scalar_subquery()
    )
    return conn.execute(sa.delete(t.webhook_deliveries).where(_d.id.in_(old))).rowcount


class Upkeep:
    def __init__(
        self,
        engine: AsyncEngine,
        interval: float = SWEEP_SECONDS,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.engine = engine
        self.interval = interval
        self.clock = clock

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.once()
            except Exception:
                log.exception("webhook upkeep failed; trying again at the next sweep")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.interval)

    async def once(self) -> tuple[int, int]:
        async with self.engine.begin() as conn:
            new = await conn.run_sync(warn_low_credits, self.clock())
        metrics.count_enqueued(new)
        warned = sum(new.values())
        pruned = PRUNE_ROWS
        total = 0
        while pruned == PRUNE_ROWS:
            async with self.engine.begin() as conn:
                pruned = await conn.run_sync(prune, self.clock())
            total += pruned
        return warned, total
