"""A client subscribed to a run's live stream sees every event of the run, in stream order, as it
arrives, and the stream ends with the run."""

from __future__ import annotations

import json

import httpx

from api_gateway import accounts
from api_gateway.run_commands import new_run_id
from contracts import events as ev
from contracts.values import ItemRef
from tests.support.gateway import (
    API,
    insert_run,
    make_tenant,
    run_event,
    start_gateway,
)
from tests.support.kafka import publish
from tests.support.sse import start_listener
from tests.support.wait import wait_until

ITEMS = 40


async def test_live_stream_pushes_every_item_in_order(db, gateway, orchestrator):
    tenant = make_tenant(db, gateway, credits=1000)
    tenant.client.post(
        f"{API}/keywords/import", params={"site_id": tenant.site_id}, json=[{"keyword": "a"}]
    )
    run_id = tenant.post("/run_now", site_id=tenant.site_id).json()["run_id"]
    early, early_events = start_listener(tenant.client, run_id)
    items = [ItemRef(id=i, title=f"keyword {i}") for i in range(1, ITEMS + 1)]
    stage = [run_event(tenant, run_id, ev.StageStarted(stage=1, items=tuple(items)))]
    half = ITEMS // 2
    processed = [
        run_event(
            tenant,
            run_id,
            ev.StageItemProcessed(stage=1, batch_id="b", item=item, total=ITEMS, credits=0),
        )
        for item in items
    ]
    await publish(gateway.bootstrap, gateway.topics.run_events, *stage, *processed[:half])
    # Events are pushed while the run goes on, not only at its end.
    wait_until(lambda: len(early_events) >= 10, what="events pushed while the run goes on")
    late, late_events = start_listener(tenant.client, run_id)
    tenth = early_events[9]["id"]
    resumed, resumed_events = start_listener(
        tenant.client, run_id, headers={"Last-Event-ID": tenth}
    )
    never = {"Last-Event-ID": "999999999999"}  # past the topic's end: never handed out
    bogus, bogus_events = start_listener(tenant.client, run_id, headers=never)
    ending = run_event(tenant, run_id, ev.RunCompleted(credits_used=8))
    await publish(gateway.bootstrap, gateway.topics.run_events, *processed[half:], ending)
    for thread in (early, late, resumed, bogus):
        thread.join(30)
        assert not thread.is_alive(), "the stream ends with the run"
    for events in (early_events, late_events):
        types = [e["event"] for e in events]
        assert types[0] == "automation.run.started" and types[-1] == "automation.run.completed"
        items_seen = [
            json.loads(e["data"])["data"]["item"]["id"]
            for e in events
            if e["event"] == "automation.stage.item-processed"
        ]
        assert items_seen == list(range(1, ITEMS + 1))
    # Ids are the events' offsets on the topic: the same in every stream, whenever it opened.
    ids = [int(e["id"]) for e in early_events]
    assert ids == sorted(set(ids)) and [int(e["id"]) for e in late_events] == ids
    assert [e["id"] for e in resumed_events] == [e["id"] for e in early_events[10:]]
    assert [e["id"] for e in bogus_events] == [e["id"] for e in early_events]


def _items_seen(events: list[dict]) -> list[int]:
    return [
        json.loads(e["data"])["data"]["item"]["id"]
        for e in events
        if e["event"] == "automation.stage.item-processed"
    ]


async def test_a_gateway_that_never_saw_the_run_streams_it_from_the_topic(
    db, stack, topics, tenant, tmp_path
):
    """The hub keeps no run's events: a gateway started after a run began reads its past from
    the topic (where the read model says it begins), and a stream whose buffer overflows (here
    1 KiB, a few events) reads what it missed from the topic too, losing nothing."""
    run_id = new_run_id()
    items = [ItemRef(id=i, title=f"keyword {i}") for i in range(1, 201)]
    started = run_event(tenant, run_id, ev.RunStarted(trigger="manual"))
    stage = run_event(tenant, run_id, ev.StageStarted(stage=1, items=tuple(items)))
    processed = [
        run_event(tenant, run_id, ev.StageItemProcessed(stage=1, batch_id="b", item=i, total=200))
        for i in items
    ]
    first, *_ = await publish(
        stack.kafka_bootstrap, topics.run_events, started, stage, *processed[:100]
    )
    insert_run(
        db, tenant, run_id=run_id, stream_partition=first.partition, first_offset=first.offset
    )
    services, fresh = start_gateway(stack, topics, tmp_path, {"LIVE_BUFFER_BYTES": "1024"})
    try:
        client = httpx.Client(base_url=fresh.url, headers=dict(tenant.client.headers), timeout=30)
        listener, events = start_listener(client, run_id)
        wait_until(lambda: len(events) >= 102, what="the run's past, read from the topic")
        ending = run_event(tenant, run_id, ev.RunCompleted(credits_used=0))
        await publish(stack.kafka_bootstrap, topics.run_events, *processed[100:], ending)
        listener.join(30)
        assert not listener.is_alive(), "the stream ends with the run"
        assert _items_seen(events) == list(range(1, 201))
        assert events[0]["event"] == "automation.run.started"
        assert events[-1]["event"] == "automation.run.completed"
        assert int(events[0]["id"]) == first.offset
        [gateway_process] = services.started
        metrics = gateway_process.metrics()
        assert 'automation_gateway_live_replays_total{reason="fell_behind"}' in metrics
    finally:
        services.stop_all()


def test_revoking_the_token_ends_its_open_streams(db, gateway, tenant, orchestrator):
    run_id = tenant.import_and_run([{"keyword": "a"}])
    listener, events = start_listener(tenant.client, run_id)
    with db.begin() as conn:
        assert accounts.revoke_tokens(conn, tenant.user_id, "test") == 1
    listener.join(10)  # the stream asks every 2 s whether its token still stands
    assert not listener.is_alive(), "a stream opened with a revoked token ends"
    assert events[-1]["event"] == "stream.ended"


def test_live_stream_of_unknown_or_malformed_runs(db, gateway):
    tenant = make_tenant(db, gateway)
    assert tenant.get("/runs/run_20250101_000000_manual_abcdef/events").status_code == 404
    assert tenant.get("/runs/..%2F..%2Fetc/events").status_code in (400, 404)
    assert tenant.get("/runs/run_x/events").status_code == 400


async def test_the_gateway_leaves_no_consumer_group_behind(gateway, kafka_bootstrap, topics):
    """The gateway commits nothing, so it reads outside any group: a group per instance would
    pile up on the broker with every restart."""
    import httpx
    from aiokafka.admin import AIOKafkaAdminClient

    assert httpx.get(f"{gateway.url}/healthz").json()["ready"]  # its consumer is up
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        groups = [group_id for group_id, _ in await admin.list_consumer_groups()]
    finally:
        await admin.close()
    assert [g for g in groups if g.startswith(f"{topics.namespace}automation-gateway")] == []
