"""A batch in the worker's hands keeps its lease alive: while it waits at the AI gate, sits in
a slow call or backs off, the worker says so every third of the lease, and the orchestrator does
not dispatch the batch again. Only a worker that is gone (or cut off) lets the lease run out."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

from contracts.commands import ProcessBatch
from contracts.envelope import Envelope, utcnow
from contracts.events import StageBatchLeaseExtended
from stage_workers.deps import WorkerDeps
from stage_workers.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def lease_kept(deps: WorkerDeps, command: Envelope) -> AsyncIterator[None]:
    batch: ProcessBatch = command.data
    length = (batch.lease_until - command.time).total_seconds()
    if length <= 0:
        yield
        return
    renewing = asyncio.create_task(_renew(deps, command, length), name="lease")
    try:
        yield
    finally:
        renewing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewing


def first_renewal_in(batch: ProcessBatch, length: float, now: datetime) -> float:
    """Seconds until the first renewal: a third into the lease as given, not a third after this
    handler began. A command that waited behind others (in Kafka, or for a slot) has less left,
    and an expired lease makes the orchestrator send the batch again."""
    return max(0.0, (batch.lease_until - now).total_seconds() - 2 * length / 3)


async def _renew(deps: WorkerDeps, command: Envelope, length: float) -> None:
    batch: ProcessBatch = command.data
    wait = first_renewal_in(batch, length, utcnow())
    while True:
        await asyncio.sleep(wait)
        wait = length / 3
        extended = StageBatchLeaseExtended(
            stage=batch.stage,
            batch_id=batch.batch_id,
            attempt=batch.attempt,
            lease_until=utcnow() + timedelta(seconds=length),
        )
        try:
            # A fresh id each time: a repeat only extends the lease to the same moment.
            await deps.unit_of_work(command, UnitOfWork.emit, extended, None)
        except Exception:  # the next round tries again; the lease has two more thirds
            log.exception("extending the lease of %s %s failed", batch.run_id, batch.batch_id)
