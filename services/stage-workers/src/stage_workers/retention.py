"""Pruning what the workers no longer need: published outbox rows and the ids of handled
commands, once older than the redelivery window (by default Kafka's own retention, 7 days: a
command older than that cannot come back). A redelivery inside the window is recognised by the
handled ids; after a pruning, by the items' results (`stage_item_results`) and the content's own
state, so nothing is done twice either way."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from contracts.db import tables as t
from contracts.envelope import utcnow
from stage_workers.deps import WorkerDeps
from stage_workers.outbox import prune_published

log = logging.getLogger(__name__)
CHUNK = 5_000


def prune(
    conn: Connection, topics: Sequence[str], consumers: Sequence[str], window: timedelta
) -> tuple[int, int]:
    """One chunk of each: (outbox rows, handled ids) deleted."""
    before = utcnow() - window
    outbox = prune_published(conn, topics, before, CHUNK)
    p = t.processed_messages.c
    chunk = (
        sa.select(p.consumer, p.message_id)
        .where(p.consumer.in_(list(consumers)), p.processed_at < before)
        .limit(CHUNK)
    )
    handled = conn.execute(
        sa.delete(t.processed_messages).where(sa.tuple_(p.consumer, p.message_id).in_(chunk))
    ).rowcount
    # Stored AI answers of units never written (their run was cancelled, say).
    conn.execute(sa.delete(t.ai_answers).where(t.ai_answers.c.created_at < before))
    return outbox, handled


async def keep_pruning(
    deps: WorkerDeps,
    topics: Sequence[str],
    consumers: Sequence[str],
    window: timedelta,
    every_seconds: float,
    stopping: asyncio.Event,
) -> None:
    while not stopping.is_set():
        try:
            while sum(await deps.in_transaction(prune, topics, consumers, window)) >= CHUNK:
                pass
        except Exception:  # the database is away: try again next round
            log.exception("pruning failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), every_seconds)
