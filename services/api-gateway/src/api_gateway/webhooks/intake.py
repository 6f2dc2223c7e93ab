"""From run events to pending deliveries: the webhooks process's consumer of the events topic,
a FastStream batch subscriber (ADR 19).

It reads in its own group from the beginning, skips every record whose `type` header is not one
a webhook is made from (without parsing it), and writes the deliveries of a batch of records in
one transaction; only then does FastStream commit the batch's offsets (a handler that raises,
at shutdown, seeks back instead). Nothing is sent from here: a slow endpoint never holds a
commit back. A record read again (a restart before the commit, a rebalance) makes the same
`webhook-id`s, which the table already holds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiokafka.abc import ConsumerRebalanceListener
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from api_gateway.webhooks import metrics
from api_gateway.webhooks.credits_check import low_credit_events
from api_gateway.webhooks.payloads import SOURCE_EVENTS, WebhookEvent, from_event
from api_gateway.webhooks.store import enqueue_all
from contracts.codec import UnreadableMessage, decode, type_from_headers
from contracts.envelope import utcnow

log = logging.getLogger(__name__)
BATCH_RECORDS = 500
# The broker holds a fetch until this much has come or this long has passed. A delivery is sent
# at the next poll (WEBHOOK_POLL_SECONDS, 1 s) anyway: a quarter second more costs no one, and
# while runs trickle events each fetch would otherwise bring a few records, with a request, a
# transaction and a commit of its own.
FETCH_MIN_BYTES = 256 * 1024
FETCH_MAX_WAIT_MS = 250
RETRY_SECONDS = (0.5, 1.0, 2.0, 5.0)  # between tries of a batch the database refused


@dataclass
class Taken:
    """What a batch of records asks for: webhook events, and the accounts whose balance may now
    fall short of a scheduled run (a run of theirs ended or paused)."""

    events: list[WebhookEvent] = field(default_factory=list)
    accounts: set[int] = field(default_factory=set)


def take(records: Iterable[Any]) -> Taken:
    taken = Taken()
    for record in records:
        if type_from_headers(record.headers) not in SOURCE_EVENTS:
            continue
        try:
            message = decode(record.value)
        except UnreadableMessage as exc:
            metrics.UNREADABLE.inc()
            log.warning("skipped an unreadable run event at offset %s: %s", record.offset, exc)
            continue
        taken.events.extend(from_event(message))
        taken.accounts.add(message.account_id)
    return taken


def write(conn: Connection, taken: Taken, now: datetime) -> dict[str, int]:
    """The deliveries of a batch, in the caller's transaction; how many were new, by type."""
    low = [e for account in sorted(taken.accounts) for e in low_credit_events(conn, now, account)]
    return enqueue_all(conn, [*taken.events, *low], now)


def subscribe(
    broker: KafkaBroker,
    topic: str,
    group_id: str,
    engine: AsyncEngine,
    stop: asyncio.Event,
    *,
    listener: ConsumerRebalanceListener | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> None:
    """`on_run_events` on the broker: a batch of records in, their deliveries written, then the
    commit (ack after success; a failure seeks back so the batch is read again)."""

    @broker.subscriber(
        topic,
        batch=True,
        group_id=group_id,
        max_records=BATCH_RECORDS,
        fetch_min_bytes=FETCH_MIN_BYTES,
        fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        decoder=_undecoded,
        listener=listener,
        title="on_run_events",
        description="Run events made into webhook deliveries (ADR 19).",
    )
    async def on_run_events(message: KafkaMessage) -> None:
        taken = take(message.raw_message)
        if taken.events or taken.accounts:
            await write_until_done(engine, taken, clock, stop)


async def _undecoded(message: Any) -> Any:
    """Records are told apart by their type header; only the few that make webhooks are
    parsed, by `take`, so FastStream is not asked to decode any."""
    return None


async def write_until_done(
    engine: AsyncEngine, taken: Taken, clock: Callable[[], datetime], stop: asyncio.Event
) -> None:
    """Until it is written: the offsets wait, so nothing is lost while the database is away."""
    tries = 0
    while True:
        try:
            async with engine.begin() as conn:
                new = await conn.run_sync(write, taken, clock())
            metrics.count_enqueued(new)
            return
        except Exception:
            if stop.is_set():
                raise
            wait = RETRY_SECONDS[min(tries, len(RETRY_SECONDS) - 1)]
            log.exception("writing webhook deliveries failed; trying again in %s s", wait)
            tries += 1
            await asyncio.sleep(wait)
