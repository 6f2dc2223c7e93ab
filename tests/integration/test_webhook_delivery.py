"""The webhooks process's parts on the real PostgreSQL and Kafka, with receivers on real sockets
that verify with `standardwebhooks`: run events become pending deliveries once, the loop
delivers them, retries on the schedule (a clock the test moves), disables, refuses, warns of
low credits and prunes."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from faststream.kafka import KafkaBroker, TestKafkaBroker

from api_gateway.db import create_engine
from api_gateway.webhooks import client, intake, metrics
from api_gateway.webhooks.addresses import AddressPolicy
from api_gateway.webhooks.delivery import Deliverer
from api_gateway.webhooks.intake import Taken, write
from api_gateway.webhooks.payloads import from_event
from api_gateway.webhooks.retry import SCHEDULE
from api_gateway.webhooks.upkeep import KEPT, Upkeep
from contracts import events as ev
from contracts.codec import encode, headers_for, kafka_headers
from contracts.db import tables as t
from contracts.envelope import new_message
from tests.support.kafka import publish
from tests.support.parallel import SHARED_ROWS
from tests.support.pipeline import new_site
from tests.support.wait import wait_until
from tests.support.webhook_rows import insert_attempt, insert_delivery
from tests.support.webhooks import Endpoints, Receiver, attempts, deliveries, serving

pytestmark = SHARED_ROWS

LOCAL = AddressPolicy.of(allow_http=True, allowed_networks=["127.0.0.0/8"])


class Clock:
    """Now, as the delivery loop sees it; the test moves it past each scheduled retry."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, by: timedelta) -> None:
        self.now += by


def completed(site, credits_used: int = 7, ready: tuple[int, ...] = (11, 12)):
    return new_message(
        ev.RunCompleted(credits_used=credits_used, ready_for_review=ready),
        source="/automation/orchestrator",
        account_id=site.account_id,
        site_id=site.site_id,
        run_id=f"run-{uuid.uuid4().hex[:10]}",
    )


@pytest.fixture
def hooks(db):
    added = Endpoints(db)
    yield added
    added.remove_all()


@pytest.fixture
async def engine(database_url):
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


async def deliver_until(deliverer: Deliverer, done, what: str, timeout: float = 30) -> None:
    """Run the loop until `done()` holds, then stop it."""
    stop = asyncio.Event()
    task = asyncio.create_task(deliverer.run(stop))
    try:
        for _ in range(int(timeout / 0.1)):
            if done():
                return
            if task.done():
                task.result()
            await asyncio.sleep(0.1)
        pending = await pending_anywhere(deliverer.engine)
        raise AssertionError(
            f"timed out waiting for {what}; {len(deliverer.flying)} attempts in flight; "
            f"the pending deliveries of every account, which the loop claims too:\n{pending}"
        )
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)


async def pending_anywhere(engine, limit: int = 20) -> str:
    d, e = t.webhook_deliveries.c, t.webhook_endpoints.c
    query = (
        sa.select(e.account_id, e.url, e.enabled, d.next_attempt_at, d.attempts, d.last_error)
        .join_from(t.webhook_deliveries, t.webhook_endpoints, d.endpoint_id == e.id)
        .where(d.status == "pending")
        .order_by(d.next_attempt_at)
        .limit(limit)
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return "\n".join(str(tuple(row)) for row in rows) or "(none)"


async def enqueue_for(engine, site, payload, clock: Clock) -> None:
    message = new_message(
        payload,
        source="/automation/orchestrator",
        account_id=site.account_id,
        site_id=site.site_id,
        run_id=f"run-{uuid.uuid4().hex[:10]}",
    )
    taken = Taken(events=from_event(message))
    async with engine.begin() as conn:
        await conn.run_sync(write, taken, clock())


def due_now(db, delivery_id) -> None:
    with db.begin() as conn:
        conn.execute(
            sa.update(t.webhook_deliveries)
            .where(t.webhook_deliveries.c.id == delivery_id)
            .values(next_attempt_at=sa.func.now())
        )


def deliverer(engine, policy=LOCAL, clock=None, concurrency=8, per_endpoint=2) -> Deliverer:
    pool = client.new_pool(policy, max_connections=concurrency)
    return Deliverer(engine, pool, policy, concurrency, per_endpoint, 0.05, clock or Clock())


async def test_a_run_event_read_twice_is_one_delivery_per_endpoint_that_wants_it(
    db, engine, hooks, kafka_bootstrap, topics
):
    site = new_site(db, keyword_count=0, credits=0)
    wants, _ = hooks.add(site.account_id, "https://hooks.example/a", ["run.completed"])
    review, _ = hooks.add(site.account_id, "https://hooks.example/b", ["review.ready"])
    elsewhere, _ = hooks.add(
        site.account_id, "https://hooks.example/c", ["run.completed"], site_ids=[site.site_id + 1]
    )
    message = completed(site)
    await publish(kafka_bootstrap, topics.run_events, message, message)  # the same event twice

    group = f"webhooks-test-{uuid.uuid4().hex[:8]}"
    broker = KafkaBroker(kafka_bootstrap)
    stop = asyncio.Event()
    intake.subscribe(broker, topics.run_events, group, engine, stop)
    await broker.start()
    try:
        await asyncio.to_thread(
            wait_until, lambda: deliveries(db, review), timeout=60, what="the deliveries"
        )
    finally:
        stop.set()
        await broker.stop()

    [run] = deliveries(db, wants)
    [ready] = deliveries(db, review)
    assert deliveries(db, elsewhere) == []  # limited to another site
    assert (run.event_type, run.status, run.run_id) == ("run.completed", "pending", message.run_id)
    assert ready.event_type == "review.ready"
    assert '"content_ids":[11,12]' in ready.body


def unreadable_count() -> float:
    name = "automation_webhook_unreadable_events_total"
    return metrics.REGISTRY.get_sample_value(name) or 0.0


def text(headers: list[tuple[str, bytes]]) -> dict[str, str]:
    return {name: value.decode() for name, value in headers}


async def test_the_intake_handler_skips_by_type_header_and_writes_what_it_takes(db, engine, hooks):
    """The handler through FastStream's in-memory broker, on the real database: records of other
    types are skipped unparsed (a body nobody could read costs nothing), an unreadable record of
    a webhook's type is counted and passed over, and a run event becomes its delivery."""
    site = new_site(db, keyword_count=0, credits=0)
    endpoint, _ = hooks.add(site.account_id, "https://hooks.example/d", ["run.completed"])
    message = completed(site)
    broker = KafkaBroker()
    intake.subscribe(broker, "run-events", "webhooks-handler-test", engine, asyncio.Event())
    unreadable_before = unreadable_count()

    async with TestKafkaBroker(broker) as test_broker:
        await test_broker.publish_batch(
            b"not json", topic="run-events", headers=text(headers_for("automation.stage.started"))
        )
        await test_broker.publish_batch(
            b"not json", topic="run-events", headers=text(headers_for(ev.RunCompleted.TYPE))
        )
        await test_broker.publish_batch(
            encode(message), topic="run-events", headers=text(kafka_headers(message))
        )

    [row] = deliveries(db, endpoint)
    assert (row.event_type, row.run_id) == ("run.completed", message.run_id)
    assert unreadable_count() == unreadable_before + 1


async def test_a_receiver_that_fails_three_times_then_succeeds_gets_the_event_once_in_effect(
    db, engine, hooks
):
    site = new_site(db, keyword_count=0, credits=0)
    with serving(Receiver(secret="", statuses=[500, 503, 500, 204])) as receiver:
        endpoint, receiver.secret = hooks.add(site.account_id, receiver.url, ["run.failed"])
        clock = Clock()
        await enqueue_for(engine, site, ev.RunFailed(error="stage 4 failed", stage=4), clock)
        # Real time, so the receiver's 5-minute timestamp tolerance holds; each wait of the
        # schedule is checked, then cut short by making the delivery due now.
        loop = deliverer(engine, clock=lambda: datetime.now(UTC))
        for n, wait in enumerate(SCHEDULE[1:4], start=1):
            await deliver_until(loop, lambda n=n: len(receiver.got) == n, f"attempt {n}")
            [row] = deliveries(db, endpoint)  # recorded: a stopped loop lets its attempts end
            assert row.status == "pending" and row.next_attempt_at == row.last_attempt_at + wait
            due_now(db, row.id)
        await deliver_until(loop, lambda: deliveries(db, endpoint)[0].status != "pending", "done")

    [row] = deliveries(db, endpoint)
    assert (row.status, row.attempts, row.last_status) == ("delivered", 4, 204)
    tried = attempts(db, row.id)
    assert [(a.attempt, a.outcome, a.status) for a in tried] == [
        (1, "failed", 500),
        (2, "failed", 503),
        (3, "failed", 500),
        (4, "delivered", 204),
    ]
    assert all(r.verified for r in receiver.got), "standardwebhooks verified every copy"
    assert {r.id for r in receiver.got} == {str(row.id)}, "one webhook-id for every copy"
    assert list(receiver.effects) == [str(row.id)]
    assert receiver.effects[str(row.id)]["data"]["error"] == "stage 4 failed"
    assert tried[3].latency_ms >= 0 and tried[0].response == "ok"
    with db.connect() as conn:  # a success ends the failing spell
        failing = conn.execute(
            sa.select(t.webhook_endpoints.c.failing_since).where(
                t.webhook_endpoints.c.id == endpoint
            )
        ).scalar()
    assert failing is None


async def test_a_slow_endpoint_holds_its_own_slots_while_another_is_delivered(db, engine, hooks):
    site = new_site(db, keyword_count=0, credits=0)
    slow, fast = Receiver(secret=""), Receiver(secret="")
    slow.hold.set()
    with serving(slow), serving(fast):
        _, slow.secret = hooks.add(site.account_id, slow.url, ["run.cancelled"])
        _, fast.secret = hooks.add(site.account_id, fast.url, ["run.cancelled"])
        clock = Clock()
        for _ in range(5):
            await enqueue_for(engine, site, ev.RunCancelled(requested_by="user:1"), clock)
        loop = deliverer(engine, clock=clock, concurrency=8, per_endpoint=2)
        await deliver_until(loop, lambda: len(fast.effects) == 5, "the fast endpoint's five")
        assert len(slow.got) == 2, "the slow endpoint holds at most its cap"
        slow.released.set()
    assert all(r.verified for r in fast.got)


async def test_hanging_endpoints_at_their_cap_do_not_starve_another(db, engine, hooks):
    """Two endpoints hang, each with a backlog older than a third's row. The claim's free slot
    must go to the third: the two at their cap can take nothing, so they take no place in it."""
    site = new_site(db, keyword_count=0, credits=0)
    hanging, fast = [Receiver(secret=""), Receiver(secret="")], Receiver(secret="")
    for receiver in hanging:
        receiver.hold.set()
    with serving(hanging[0]), serving(hanging[1]), serving(fast):
        for receiver in hanging:
            _, receiver.secret = hooks.add(site.account_id, receiver.url, ["run.cancelled"])
        clock = Clock()  # after the secrets are made: they are valid from then
        for _ in range(3):
            await enqueue_for(engine, site, ev.RunCancelled(requested_by="user:1"), clock)
        loop = deliverer(engine, clock=clock, concurrency=3, per_endpoint=1)
        stop = asyncio.Event()
        running = asyncio.create_task(loop.run(stop))
        try:
            await wait_for(lambda: all(len(r.got) == 1 for r in hanging), "both hanging")
            _, fast.secret = hooks.add(site.account_id, fast.url, ["run.cancelled"])
            # Due after every hanging endpoint's rows, and after the new secret is made.
            clock.now = datetime.now(UTC) + timedelta(seconds=1)
            await enqueue_for(engine, site, ev.RunCancelled(requested_by="user:1"), clock)
            await wait_for(lambda: len(fast.effects) == 1, "the third endpoint's row")
            assert [len(receiver.got) for receiver in hanging] == [1, 1]
        finally:
            for receiver in hanging:
                receiver.released.set()
            stop.set()
            await asyncio.wait_for(running, timeout=30)


async def wait_for(done, what: str, timeout: float = 20) -> None:
    try:
        async with asyncio.timeout(timeout):
            while not done():
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def test_410_disables_the_endpoint_fails_its_rest_and_tells_the_other_endpoints(
    db, engine, hooks
):
    site = new_site(db, keyword_count=0, credits=0)
    with serving(Receiver(secret="", statuses=[410])) as gone, serving(Receiver(secret="")) as told:
        gone_id, gone.secret = hooks.add(site.account_id, gone.url, ["run.paused"])
        _, told.secret = hooks.add(site.account_id, told.url, ["endpoint.disabled"])
        clock = Clock()
        loop = deliverer(engine, clock=clock, per_endpoint=1)
        await enqueue_for(engine, site, ev.RunPaused(reason="requested"), clock)
        await enqueue_for(engine, site, ev.RunPaused(reason="requested"), clock)
        await deliver_until(loop, lambda: len(told.effects) == 1, "endpoint.disabled")

    rows = deliveries(db, gone_id)
    assert sorted(r.status for r in rows) == ["failed", "failed"]
    assert len(gone.got) == 1, "nothing more is sent to a disabled endpoint"
    with db.connect() as conn:
        endpoint = conn.execute(
            sa.select(t.webhook_endpoints).where(t.webhook_endpoints.c.id == gone_id)
        ).one()
    assert not endpoint.enabled and "410" in endpoint.disabled_reason
    [notice] = told.effects.values()
    assert notice["type"] == "endpoint.disabled"
    assert notice["data"]["endpoint_id"] == gone_id and notice["data"]["url"] == gone.url


async def test_a_private_address_is_refused_at_delivery_and_nothing_connects(db, engine, hooks):
    site = new_site(db, keyword_count=0, credits=0)
    with serving(Receiver(secret="")) as receiver:
        # Saved while a setting allowed it; the deliverer's policy no longer does.
        endpoint, receiver.secret = hooks.add(site.account_id, receiver.url, ["run.failed"])
        clock = Clock()
        await enqueue_for(engine, site, ev.RunFailed(error="x"), clock)
        strict = deliverer(engine, policy=AddressPolicy.of(allow_http=True), clock=clock)
        await deliver_until(strict, lambda: deliveries(db, endpoint)[0].attempts == 1, "attempt")
        await asyncio.sleep(0)  # let the attempt's record land
        await asyncio.to_thread(
            wait_until, lambda: attempts(db, deliveries(db, endpoint)[0].id), what="its record"
        )
    [row] = deliveries(db, endpoint)
    [tried] = attempts(db, row.id)
    assert tried.outcome == "refused" and "127.0.0.1" in tried.error
    assert row.status == "pending", "refused now, tried again later (DNS may change)"
    assert receiver.got == []


async def test_credits_low_once_per_scheduled_run_for_sites_whose_balance_falls_short(
    db, engine, hooks
):
    site = new_site(db, keyword_count=30, credits=0)  # work waiting, nothing to pay with
    funded = new_site(db, keyword_count=30, credits=1_000_000)
    next_run = datetime.now(UTC) + timedelta(hours=3)
    with db.begin() as conn:
        for s in (site, funded):
            conn.execute(  # a site gets its config row when it is made
                sa.update(t.automation_configs)
                .where(t.automation_configs.c.site_id == s.site_id)
                .values(is_enabled=True, next_run_at=next_run)
            )
    with serving(Receiver(secret="")) as receiver:
        short, receiver.secret = hooks.add(site.account_id, receiver.url, ["credits.low"])
        rich, _ = hooks.add(funded.account_id, receiver.url, ["credits.low"])
        clock = Clock()
        upkeep = Upkeep(engine, clock=clock)
        await upkeep.once()
        await upkeep.once()
        assert len(deliveries(db, short)) == 1, "one warning per scheduled run"
        assert deliveries(db, rich) == []
        await deliver_until(deliverer(engine, clock=clock), lambda: receiver.effects, "warning")
    [warning] = receiver.effects.values()
    assert warning["type"] == "credits.low"
    assert warning["data"]["site_id"] == site.site_id
    assert warning["data"]["balance"] == 0 and warning["data"]["required"] > 0
    with db.begin() as conn:  # off again, so later sweeps leave these sites alone
        conn.execute(
            sa.update(t.automation_configs)
            .where(t.automation_configs.c.site_id.in_([site.site_id, funded.site_id]))
            .values(is_enabled=False)
        )


async def test_ended_deliveries_older_than_thirty_days_are_pruned_with_their_attempts(
    db, engine, hooks
):
    site = new_site(db, keyword_count=0, credits=0)
    endpoint, _ = hooks.add(site.account_id, "https://hooks.example/p", ["run.failed"])
    clock = Clock()
    old = insert_delivery(
        db, endpoint, "delivered", updated_at=clock.now - KEPT - timedelta(hours=1)
    )
    recent = insert_delivery(
        db, endpoint, "failed", updated_at=clock.now - KEPT + timedelta(hours=1)
    )
    waiting = insert_delivery(
        db,
        endpoint,
        "pending",
        next_attempt_at=clock.now,
        updated_at=clock.now - KEPT - timedelta(days=3),
    )
    insert_attempt(db, old, 1, at=clock.now, outcome="delivered", status=None, latency_ms=3)
    await Upkeep(engine, clock=clock).once()
    assert {r.id for r in deliveries(db, endpoint)} == {recent, waiting}
    assert attempts(db, old) == []
