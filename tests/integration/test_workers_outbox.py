"""The transactional outbox on the real database and broker: only committed rows leave, each
once, and a relay that dies before marking its rows sends them again with the same id."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa

from contracts import tracing
from contracts.codec import decode
from contracts.db import tables as t
from contracts.envelope import new_message
from contracts.events import RunPaused
from stage_workers.outbox import OutboxRelay, enqueue
from tests.support.kafka import end_offsets, read_to_end, read_until
from tests.support.wait import wait_until_async


def event(topics, reason: str):
    return new_message(
        RunPaused(reason=reason), source="/tests/outbox", account_id=1, site_id=42, run_id="r"
    )


async def marked_published(db, relay: OutboxRelay, message) -> None:
    """Wait until the relay has sent the message and marked its row (it marks only what Kafka
    acknowledged), and has then begun and ended one more round (a relay that sent a row again
    would do so then); stop it: after that, nothing more of it comes."""
    rounds: list[int] = []
    publish_pending = relay.publish_pending

    async def counted_round() -> int:
        sent = await publish_pending()
        rounds.append(sent)
        return sent

    relay.publish_pending = counted_round

    def is_marked() -> bool:
        with db.connect() as conn:
            published_at = conn.execute(
                sa.select(t.outbox.c.published_at).where(
                    t.outbox.c.message_id == message.message_id
                )
            ).scalar_one()
        return published_at is not None

    async def marked() -> int | None:
        # Rounds ended by the time the mark is seen; at most one more was under way then.
        return len(rounds) + 1 if is_marked() else None

    try:
        seen = await wait_until_async(
            marked, timeout=30, what=f"the outbox row {message.message_id}"
        )

        async def another_round() -> bool:
            return len(rounds) > seen

        await wait_until_async(another_round, timeout=10, every=0.05, what="a round after the mark")
    finally:
        await relay.stop()


async def published_ids(kafka_bootstrap, start, wanted) -> list:
    """The wanted ids among every record sent since `start`, copies included, in order: we also
    count what must not appear."""
    records = await read_to_end(kafka_bootstrap, start)
    return [decode(r.value).message_id for r in records if decode(r.value).message_id in wanted]


async def test_only_committed_rows_are_published_and_each_once(db, kafka_bootstrap, topics):
    rolled_back, committed = event(topics, "rolled back"), event(topics, "committed")
    with db.connect() as conn:
        with conn.begin() as tx:
            assert enqueue(conn, topics.run_events, rolled_back)
            tx.rollback()
        with conn.begin():
            assert enqueue(conn, topics.run_events, committed)
            assert not enqueue(conn, topics.run_events, committed)  # same id: stored once
    start = await end_offsets(kafka_bootstrap, topics.run_events)
    relay = OutboxRelay(db, kafka_bootstrap, [topics.run_events])
    await relay.start()
    await marked_published(db, relay, committed)
    ids = await published_ids(
        kafka_bootstrap, start, {rolled_back.message_id, committed.message_id}
    )
    assert ids == [committed.message_id]


async def test_a_relay_that_dies_before_marking_publishes_again(db, kafka_bootstrap, topics):
    message = event(topics, "dies before marking")
    with db.begin() as conn:
        enqueue(conn, topics.run_events, message)
    start = await end_offsets(kafka_bootstrap, topics.run_events)

    dying = OutboxRelay(db, kafka_bootstrap, [topics.run_events])
    await dying.start()
    await dying.stop()  # the loop may have published already; publish again by hand below

    from stage_workers.outbox import _lock_unpublished

    # Re-enact the crash: send the locked rows, then lose the transaction instead of marking.
    with db.begin() as conn:
        conn.execute(
            sa.update(t.outbox)
            .where(t.outbox.c.message_id == message.message_id)
            .values(published_at=None)
        )
    crashed = OutboxRelay(db, kafka_bootstrap, [topics.run_events])
    await crashed.start()
    crashed._task.cancel()
    await asyncio.gather(crashed._task, return_exceptions=True)
    conn = db.connect()
    rows = _lock_unpublished(conn, crashed.lock_key, crashed.topics, 500)
    await crashed._send_all(rows)
    conn.close()  # no commit: the rows stay unpublished
    await crashed.stop()

    survivor = OutboxRelay(db, kafka_bootstrap, [topics.run_events])
    await survivor.start()
    await marked_published(db, survivor, message)
    ids = await published_ids(kafka_bootstrap, start, {message.message_id})
    assert len(ids) >= 2 and set(ids) == {message.message_id}
    with db.connect() as conn:
        marked = conn.execute(
            sa.select(t.outbox.c.published_at).where(t.outbox.c.message_id == message.message_id)
        ).scalar_one()
    assert marked is not None


async def test_a_row_stored_with_the_old_type_header_goes_out_in_structured_mode(
    db, kafka_bootstrap, topics
):
    """Rows enqueued by a release before ADR 18 hold `ce_type`; the relay sends `type`."""
    message = event(topics, "stored before ADR 18")
    with db.begin() as conn:
        enqueue(conn, topics.run_events, message)
        conn.execute(
            sa.update(t.outbox)
            .where(t.outbox.c.message_id == message.message_id)
            .values(
                headers=[
                    ["content-type", "application/cloudevents+json"],
                    ["ce_type", message.type],
                ]
            )
        )
    start = await end_offsets(kafka_bootstrap, topics.run_events)
    relay = OutboxRelay(db, kafka_bootstrap, [topics.run_events])
    await relay.start()
    try:
        records = await read_until(
            kafka_bootstrap,
            start,
            lambda rs: any(decode(r.value).message_id == message.message_id for r in rs),
        )
    finally:
        await relay.stop()
    [record] = [r for r in records if decode(r.value).message_id == message.message_id]
    assert list(record.headers) == [
        ("content-type", b"application/cloudevents+json"),
        ("type", message.type.encode()),
        # Stored before tracing too: the relay adds the run root's context (ADR 20).
        ("traceparent", tracing.headers("r")[0][1]),
    ]


async def test_stop_lets_the_round_under_way_end_and_mark_its_rows(db, kafka_bootstrap, topics):
    """Cancelled in the middle, a round's connection went to two threads at once (the one still
    marking its rows and the one closing it); stop waits for the round instead."""
    message = event(topics, "stopped in the middle of a round")
    with db.begin() as conn:
        enqueue(conn, topics.run_events, message)
    relay = OutboxRelay(db, kafka_bootstrap, [topics.run_events])
    sending, release = asyncio.Event(), asyncio.Event()
    send_all = relay._send_all

    async def held(rows) -> None:
        if str(message.message_id) in {row.payload["id"] for row in rows}:
            sending.set()
            await release.wait()
        await send_all(rows)

    relay._send_all = held
    await relay.start()
    await asyncio.wait_for(sending.wait(), timeout=30)
    stopping = asyncio.create_task(relay.stop())
    ended, _ = await asyncio.wait({stopping}, timeout=0.5)
    assert not ended, "stop waits while the round's rows are being sent"
    release.set()
    await asyncio.wait_for(stopping, timeout=30)
    with db.connect() as conn:
        marked = conn.execute(
            sa.select(t.outbox.c.published_at).where(t.outbox.c.message_id == message.message_id)
        ).scalar_one()
    assert marked is not None, "the round ended: its rows sent and marked"
