"""Transactional outbox: an event that must follow a database write is stored in the same
transaction (`enqueue`) and published afterwards by a relay (`OutboxRelay`). Only the stage
workers write events after database writes, so the outbox is theirs; its table stays in the one
schema (contracts.db.tables).

The relay publishes at least once: a relay killed after Kafka acknowledged a row but before it
marked the row published sends it again, with the same message id, and consumers dedupe on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from aiokafka import AIOKafkaProducer
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Connection, Engine, Row

from contracts import tracing
from contracts.codec import kafka_headers, structured_headers
from contracts.db import tables as t
from contracts.envelope import Envelope, as_cloudevent

log = logging.getLogger(__name__)

# One relay publishes a set of topics at a time, so rows leave in id order and an event never
# overtakes the one its handler wrote before it. The lock key is derived from the topics, so
# deployments that share a database under different topic namespaces do not wait on each other.
RELAY_LOCK_BASE = 4_711_202_400_000_002


def relay_lock_key(topics: Iterable[str]) -> int:
    digest = hashlib.sha256("\n".join(sorted(topics)).encode()).digest()
    return (RELAY_LOCK_BASE ^ int.from_bytes(digest[:8], "big")) & ((1 << 63) - 1)


# Built once: building the statement costs more CPU than running it, on every event enqueued.
_ENQUEUE = (
    insert(t.outbox).on_conflict_do_nothing(index_elements=["message_id"]).returning(t.outbox.c.id)
)


def enqueue(conn: Connection, topic: str, message: Envelope) -> bool:
    """Store `message` for publishing, in the caller's transaction. False if it was there."""
    inserted = conn.execute(
        _ENQUEUE,
        {
            "message_id": message.message_id,
            "topic": topic,
            "message_key": message.key,
            "payload": as_cloudevent(message),
            "headers": [[name, value.decode()] for name, value in kafka_headers(message)],
        },
    ).first()
    return inserted is not None


def prune_published(conn: Connection, topics: Sequence[str], before: Any, limit: int) -> int:
    """Delete up to `limit` rows of `topics` published before `before`; returns how many. A
    published row is never read again: consumers dedupe on the message id themselves."""
    o = t.outbox.c
    chunk = (
        sa.select(o.id)
        .where(o.published_at < before, o.topic.in_(list(topics)))
        .order_by(o.id)
        .limit(limit)
    )
    return conn.execute(sa.delete(t.outbox).where(o.id.in_(chunk.scalar_subquery()))).rowcount


# On stop, how long a round under way may take to end (the acknowledgements, then the mark).
STOP_SECONDS = 10.0


class OutboxRelay:
    """Publishes unpublished outbox rows in id order, then marks them published."""

    def __init__(
        self,
        engine: Engine,
        bootstrap_servers: str,
        topics: Iterable[str],
        *,
        batch_size: int = 500,
        poll_seconds: float = 0.05,
    ) -> None:
        # Only rows for these topics: rows of another namespace sharing the database (or of a
        # namespace whose topics are gone) must not block this relay.
        self.topics = tuple(sorted(set(topics)))
        self.lock_key = relay_lock_key(self.topics)
        self.engine = engine
        self.bootstrap_servers = bootstrap_servers
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self.published = 0
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._producer: Any = None
        self._task: asyncio.Task | None = None

    def wake(self) -> None:
        """Publish now rather than at the next poll (called after a commit that enqueued)."""
        self._wake.set()

    async def start(self) -> None:
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap_servers, enable_idempotence=True, acks="all"
        )
        await self._producer.start()
        self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self) -> None:
        """Let the round under way end (its rows marked, or left unpublished), then stop; cancel
        it only when it takes longer than STOP_SECONDS. A round cancelled in the middle leaves
        its connection to two threads at once: the one still marking the rows and the one that
        closes it."""
        if self._task is not None:
            self._stopping.set()
            self._wake.set()
            ended, _ = await asyncio.wait({self._task}, timeout=STOP_SECONDS)
            if not ended:
                self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._producer is not None:
            await self._producer.stop()

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                sent = await self.publish_pending()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox relay round failed; retrying")
                sent = 0
                await asyncio.sleep(1)
            if sent < self.batch_size:
                await self._sleep()

    async def _sleep(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
        self._wake.clear()

    async def publish_pending(self) -> int:
        """One round: lock a chunk, publish it, wait for every ack, mark it. Returns the count.
        The database work is two thread hops, one on each side of the publish."""
        conn, rows = await asyncio.to_thread(self._open_round)
        try:
            if rows:
                await self._send_all(rows)
            await asyncio.to_thread(_close_round, conn, [row.id for row in rows])
        except BaseException:
            await asyncio.to_thread(conn.close)  # rolls back: the rows stay unpublished
            raise
        self.published += len(rows)
        return len(rows)

    def _open_round(self) -> tuple[Connection, list[Row]]:
        conn = self.engine.connect()
        try:
            return conn, _lock_unpublished(conn, self.lock_key, self.topics, self.batch_size)
        except BaseException:
            conn.close()
            raise

    async def _send_all(self, rows: Sequence[Row]) -> None:
        futures = [
            await self._producer.send(
                row.topic,
                value=payload_bytes(row.payload),
                key=row.message_key,
                headers=sent_headers(row.headers, row.payload.get("runid")),
            )
            for row in rows
        ]
        await asyncio.gather(*futures)


def sent_headers(
    stored: Sequence[Sequence[str]], run_id: str | None = None
) -> list[tuple[str, bytes]]:
    """A row's stored headers as they go out now. They hold the `traceparent` of the span that
    enqueued the row (ADR 20); rows enqueued before it get the run root's. Rows enqueued by a
    release before ADR 18 hold a `ce_type` header, which would make CloudEvents SDKs misread the
    structured record."""
    headers = structured_headers((name, value.encode()) for name, value in stored)
    return tracing.with_run_headers(headers, run_id)


def payload_bytes(payload: dict) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def _lock_unpublished(
    conn: Connection, lock_key: int, topics: Sequence[str], limit: int
) -> list[Row]:
    locked = conn.execute(sa.select(sa.func.pg_try_advisory_xact_lock(lock_key))).scalar()
    if not locked:
        return []
    o = t.outbox.c
    return list(
        conn.execute(
            sa.select(o.id, o.topic, o.message_key, o.payload, o.headers)
            .where(o.published_at.is_(None), o.topic.in_(topics))
            .order_by(o.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )


def _close_round(conn: Connection, ids: list[int]) -> None:
    """Mark what was published, commit (releasing the lock), give the connection back."""
    try:
        if ids:
            conn.execute(
                sa.update(t.outbox).where(t.outbox.c.id.in_(ids)).values(published_at=sa.func.now())
            )
        conn.commit()
    finally:
        conn.close()
