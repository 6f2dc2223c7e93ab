"""Webhooks end to end: `api-gateway webhooks` as its own process hears a real run end and
signs what it sends so `standardwebhooks` verifies it; kill -9 of that process before a retry
or in the middle of an attempt loses nothing, and every copy carries one `webhook-id`."""

from __future__ import annotations

import uuid

import pytest

from contracts import events as ev
from contracts.envelope import new_message
from tests.support.kafka import publish
from tests.support.parallel import SHARED_ROWS
from tests.support.pipeline import Pipeline, new_site
from tests.support.wait import wait_until
from tests.support.webhooks import Endpoints, Receiver, attempts, deliveries, serving

pytestmark = SHARED_ROWS

FAST = {"LEASE_SECONDS": "15", "TICK_SECONDS": "0.2"}
# The tests' receivers listen on 127.0.0.1 over http, which only these settings allow.
LOCAL = {
    "WEBHOOK_ALLOW_HTTP": "true",
    "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
    "WEBHOOK_POLL_SECONDS": "0.2",
}


@pytest.fixture
def hooks(db):
    added = Endpoints(db)
    yield added
    added.remove_all()


def start_webhooks(services, name: str = "webhooks"):
    return services.start(name, "api-gateway", "webhooks", env=LOCAL)


async def test_a_finished_run_is_announced_signed_to_the_endpoints_that_want_it(
    db, services, kafka_bootstrap, topics, hooks
):
    services.start("orchestrator", "orchestrator", env=FAST)
    services.start("workers", "stage-worker", env={"OFFLINE_LATENCY_MS": "10"})
    start_webhooks(services)
    site = new_site(db, keyword_count=10, credits=10_000)
    with serving(Receiver(secret="")) as receiver:
        _, receiver.secret = hooks.add(
            site.account_id, receiver.url, ["run.completed", "review.ready", "run.failed"]
        )
        run_id = await Pipeline(kafka_bootstrap, topics).start(site)
        wait_until(
            lambda: len(receiver.effects) == 2, timeout=300, what="run.completed, review.ready"
        )

    assert all(r.verified for r in receiver.got), "standardwebhooks verified every request"
    by_type = {doc["type"]: doc for doc in receiver.effects.values()}
    assert set(by_type) == {"run.completed", "review.ready"}
    done, review = by_type["run.completed"]["data"], by_type["review.ready"]["data"]
    assert (done["run_id"], done["site_id"]) == (run_id, site.site_id)
    assert done["credits_used"] > 0 and done["ready_for_review"] == review["count"] > 0
    assert len(review["content_ids"]) == review["count"]


def failed_run(site) -> object:
    return new_message(
        ev.RunFailed(error="stage 5 gave up", stage=5),
        source="/automation/orchestrator",
        account_id=site.account_id,
        site_id=site.site_id,
        run_id=f"run-{uuid.uuid4().hex[:10]}",
    )


async def test_kill_9_of_the_webhooks_process_between_attempts_loses_nothing(
    db, services, kafka_bootstrap, topics, hooks
):
    site = new_site(db, keyword_count=0, credits=0)
    with serving(Receiver(secret="", statuses=[503, 200])) as receiver:
        endpoint, receiver.secret = hooks.add(site.account_id, receiver.url, ["run.failed"])
        first = start_webhooks(services, "webhooks-1")
        await publish(kafka_bootstrap, topics.run_events, failed_run(site))
        wait_until(
            lambda: deliveries(db, endpoint) and deliveries(db, endpoint)[0].last_status == 503,
            timeout=60,
            what="the first attempt's 503 recorded",
        )
        first.kill9()  # the retry is due 5 s after the first attempt
        start_webhooks(services, "webhooks-2")
        wait_until(lambda: receiver.effects, timeout=60, what="the retry")
    [row] = deliveries(db, endpoint)
    assert (row.status, row.attempts) == ("delivered", 2)
    assert [a.status for a in attempts(db, row.id)] == [503, 200]
    assert {r.id for r in receiver.got} == {str(row.id)} and len(receiver.got) == 2
    assert all(r.verified for r in receiver.got)


async def test_kill_9_in_the_middle_of_an_attempt_sends_it_again_with_the_same_id(
    db, services, kafka_bootstrap, topics, hooks
):
    """The killed attempt may have reached the receiver (here it did): its lease runs out
    (60 s), the next process sends it again, and the receiver, keeping the ids it has seen,
    acts once."""
    site = new_site(db, keyword_count=0, credits=0)
    receiver = Receiver(secret="")
    receiver.hold.set()  # the first request waits: the process dies while it does
    with serving(receiver):
        endpoint, receiver.secret = hooks.add(site.account_id, receiver.url, ["run.failed"])
        first = start_webhooks(services, "webhooks-1")
        await publish(kafka_bootstrap, topics.run_events, failed_run(site))
        wait_until(lambda: receiver.got, timeout=60, what="the first attempt to arrive")
        first.kill9()
        receiver.released.set()  # its answer goes to a dead process
        start_webhooks(services, "webhooks-2")
        wait_until(
            lambda: deliveries(db, endpoint)[0].status == "delivered",
            timeout=120,
            what="the attempt after the lease ran out",
        )
    [row] = deliveries(db, endpoint)
    assert row.attempts == 2, "the killed attempt counts"
    assert [a.attempt for a in attempts(db, row.id)] == [2], "only the finished attempt recorded"
    assert [r.id for r in receiver.got] == [str(row.id)] * 2
    assert all(r.verified for r in receiver.got)
    assert list(receiver.effects) == [str(row.id)], "once in effect"
