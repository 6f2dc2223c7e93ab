"""The delivery loop: claim due deliveries, attempt each in a task of its own, record outcomes.

A claim is a short transaction of its own (`store.claim`), committed before anything is sent;
each attempt records its outcome in another (`store.record`), guarded by its lease. So a
process killed at any point leaves only leases that run out, and the rows are claimed again,
by this process once restarted or by another.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

import httpcore
from sqlalchemy.ext.asyncio import AsyncEngine

from api_gateway.webhooks import metrics
from api_gateway.webhooks.addresses import AddressPolicy
from api_gateway.webhooks.attempt import attempt
from api_gateway.webhooks.store import Claimed, claim, record
from contracts.envelope import utcnow

log = logging.getLogger(__name__)
DRAIN_SECONDS = 20.0  # on stop, how long attempts under way may take to finish


class Deliverer:
    def __init__(
        self,
        engine: AsyncEngine,
        pool: httpcore.AsyncConnectionPool,
        policy: AddressPolicy,
        concurrency: int,
        per_endpoint: int,
        poll_seconds: float,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.engine = engine
        self.pool = pool
        self.policy = policy
        self.concurrency = concurrency
        self.per_endpoint = per_endpoint
        self.poll_seconds = poll_seconds
        self.clock = clock
        self.flying: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                claimed = await self._claim()
                for one in claimed:
                    self._start(one)
                if claimed and len(self.flying) < self.concurrency:
                    continue  # more may be due
                await self._sleep(stop)
        finally:
            await self._drain()

    async def _claim(self) -> list[Claimed]:
        free = self.concurrency - len(self.flying)
        if free <= 0:
            return []
        try:
            async with self.engine.begin() as conn:
                return await conn.run_sync(claim, self.clock(), free, self.per_endpoint)
        except Exception:
            log.exception("claiming webhook deliveries failed; trying again")
            return []

    def _start(self, claimed: Claimed) -> None:
        task = asyncio.create_task(self._deliver(claimed), name=f"webhook-{claimed.delivery_id}")
        self.flying.add(task)
        metrics.IN_FLIGHT.set(len(self.flying))
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self.flying.discard(task)
        metrics.IN_FLIGHT.set(len(self.flying))
        self._wake.set()  # a slot is free

    async def _sleep(self, stop: asyncio.Event) -> None:
        """Until the poll interval passes, a slot frees while all are taken, or stop."""
        self._wake.clear()
        waits = [asyncio.ensure_future(stop.wait())]
        if len(self.flying) >= self.concurrency:
            waits.append(asyncio.ensure_future(self._wake.wait()))
        _, pending = await asyncio.wait(
            waits, timeout=self.poll_seconds, return_when=asyncio.FIRST_COMPLETED
        )
        for waiting in pending:
            waiting.cancel()

    async def _deliver(self, claimed: Claimed) -> None:
        try:
            attempted, step = await attempt(claimed, self.pool, self.policy, self.clock())
            async with self.engine.begin() as conn:
                kept = await conn.run_sync(record, claimed, attempted, step)
        except Exception:  # the lease runs out and the delivery is claimed again
            log.exception("webhook attempt %s failed to complete", claimed.delivery_id)
            return
        metrics.ATTEMPTS.labels(attempted.outcome).inc()
        metrics.ATTEMPT_SECONDS.labels(attempted.outcome).observe(attempted.latency_ms / 1000)
        if not kept:
            metrics.LOST_LEASES.inc()

    async def _drain(self) -> None:
        if self.flying:
            await asyncio.wait(set(self.flying), timeout=DRAIN_SECONDS)
        for task in list(self.flying):
            task.cancel()
