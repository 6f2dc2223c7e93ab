"""A client subscribed to a run's live stream sees every event of the run, in stream order, as it
arrives, and the stream ends with the run."""

from __future__ import annotations

import json

import httpx
import sqlalchemy as sa
from aiokafka.structs import RecordMetadata

from api_gateway import accounts
from api_gateway.run_commands import new_run_id
from contracts import events as ev
from contracts.db import tables as t
from contracts.envelope import Envelope
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


async def run_under_way(
    db, stack, topics, tenant, items: int, *, published: int, estimate: int = 0
) -> tuple[str, list[Envelope], RecordMetadata]:
    """A one-stage run of `items` items: its start and its first `published` items on the topic,
    its row in the read model where its events begin. The run id, every item's event (the rest
    are for the test to publish) and where the first event landed."""
    run_id = new_run_id()
    refs = [ItemRef(id=i, title=f"keyword {i}") for i in range(1, items + 1)]
    started = run_event(tenant, run_id, ev.RunStarted(trigger="manual", estimate=estimate))
    stage = run_event(tenant, run_id, ev.StageStarted(stage=1, items=tuple(refs)))
    processed = [
        run_event(tenant, run_id, ev.StageItemProcessed(stage=1, batch_id="b", item=i, total=items))
        for i in refs
    ]
    first, *_ = await publish(
        stack.kafka_bootstrap, topics.run_events, started, stage, *processed[:published]
    )
    insert_run(
        db, tenant, run_id=run_id, stream_partition=first.partition, first_offset=first.offset
    )
    return run_id, processed, first


async def test_a_gateway_that_never_saw_the_run_streams_it_from_the_topic(
    db, stack, topics, tenant, tmp_path
):
    """The hub keeps no run's events: a gateway started after a run began reads its past from
    the topic (where the read model says it begins), and a stream whose buffer overflows (here
    1 KiB, a few events) reads what it missed from the topic too, losing nothing."""
    run_id, processed, first = await run_under_way(db, stack, topics, tenant, 200, published=100)
    services, fresh = start_gateway(stack, topics, tmp_path, {"LIVE_BUFFER_BYTES": "1024"})
    try:
        client = httpx.Client(base_url=fresh.url, headers=dict(tenant.client.headers), timeout=30)
        listener, events = start_listener(client, run_id)
        wait_until(lambda: len(events) >= 102, what="the run's past, read from the topic")
        ending = run_event(tenant, run_id, ev.RunCompleted(credits_used=0))
        # At once: the gateway fetches them together, far more than its 1 KiB buffer holds.
        rest = (*processed[100:], ending)
        await publish(stack.kafka_bootstrap, topics.run_events, *rest, at_once=True)
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


def _snapshots(events: list[dict]) -> list[dict]:
    return [json.loads(e["data"]) for e in events if e.get("event") == "run.snapshot"]


async def test_asked_for_snapshots_the_stream_pushes_the_run_as_its_events_leave_it(
    db, stack, topics, gateway, tenant
):
    """With snapshot=true each live event is followed by the run and its current stage as
    `run` and `current_processing` answer them (folded from the events sent so far); a stream
    resumed with Last-Event-ID counts the events it does not resend; without the parameter the
    stream sends what it always sent."""
    run_id, processed, _ = await run_under_way(
        db, stack, topics, tenant, 10, published=4, estimate=7
    )
    asking = httpx.Client(
        base_url=tenant.client.base_url,
        headers=dict(tenant.client.headers),
        params={"snapshot": "true"},
        timeout=30,
    )
    live, live_events = start_listener(asking, run_id)
    plain, plain_events = start_listener(tenant.client, run_id)
    wait_until(lambda: len(_snapshots(live_events)) >= 1, what="the snapshot after the past")
    [after_past] = _snapshots(live_events)
    assert after_past["run"]["run_id"] == run_id and after_past["run"]["status"] == "running"
    assert after_past["run"]["estimate"] == 7
    p = after_past["processing"]
    assert (p["stage_number"], p["stage_status"], p["total_items"]) == (1, "running", 10)
    assert (p["processed_items"], p["remaining_count"]) == (4, 6)
    assert [i["id"] for i in p["up_next"]] == [5, 6, 7, 8, 9, 10]
    assert after_past["run"]["stages"][0]["items_in"] == 10

    last_sent = [e for e in live_events if "id" in e][-1]["id"]
    resumed, resumed_events = start_listener(asking, run_id, headers={"Last-Event-ID": last_sent})
    wait_until(lambda: len(_snapshots(resumed_events)) >= 1, what="a resumed stream's snapshot")
    assert _snapshots(resumed_events)[0]["processing"]["processed_items"] == 4
    assert not [e for e in resumed_events if "id" in e], "nothing resent"

    paused = run_event(tenant, run_id, ev.RunPaused(reason="requested"))
    await publish(stack.kafka_bootstrap, topics.run_events, paused)
    wait_until(
        lambda: _snapshots(live_events)[-1]["run"]["status"] == "paused", what="the pause pushed"
    )
    assert _snapshots(live_events)[-1]["run"]["pause_reason"] == "requested"
    resumed_run = run_event(tenant, run_id, ev.RunResumed())
    ending = run_event(tenant, run_id, ev.RunCompleted(credits_used=2))
    await publish(stack.kafka_bootstrap, topics.run_events, resumed_run, *processed[4:], ending)
    for thread in (live, plain, resumed):
        thread.join(30)
        assert not thread.is_alive(), "the stream ends with the run"
    final = _snapshots(live_events)[-1]
    assert live_events[-1]["event"] == "run.snapshot" and final["run"]["status"] == "completed"
    assert final["processing"]["processed_items"] == 10
    assert final == _snapshots(resumed_events)[-1]
    # Every live event is followed by at most one snapshot, never preceded by none at all.
    assert len(_snapshots(live_events)) <= len([e for e in live_events if "id" in e]) + 1
    assert _snapshots(plain_events) == []
    assert [e["id"] for e in plain_events] == [e["id"] for e in live_events if "id" in e]

    # A finished run's stream: its past, then one snapshot.
    with db.begin() as conn:
        conn.execute(
            sa.update(t.automation_runs)
            .where(t.automation_runs.c.run_id == run_id)
            .values(status="completed")
        )
    again, again_events = start_listener(asking, run_id)
    again.join(30)
    assert [e["event"] for e in again_events[-2:]] == ["automation.run.completed", "run.snapshot"]
    assert _snapshots(again_events)[-1] == final


def test_the_snapshot_is_the_fold_of_the_events_the_stream_read():
    """The stream's snapshot folds the events as the log-sink does, and renders the rows the
    log-sink writes (contracts.run_rows), so it is what current_processing answers once the read
    model has caught up."""
    from datetime import UTC, datetime, timedelta

    from api_gateway.routes import live_snapshot
    from contracts.state import fold

    run_id = new_run_id()
    tenant = type("T", (), {"account_id": 1, "site_id": 2})()
    items = tuple(ItemRef(id=i, title=f"k{i}") for i in range(1, 31))
    lease = datetime.now(UTC) + timedelta(minutes=5)
    events = [
        run_event(tenant, run_id, ev.RunStarted(trigger="manual", estimate=3)),
        run_event(tenant, run_id, ev.StageStarted(stage=1, items=items)),
        run_event(
            tenant,
            run_id,
            ev.StageBatchDispatched(
                stage=1, batch_id="b1", item_ids=(1, 2, 3), attempt=1, lease_until=lease
            ),
        ),
        run_event(
            tenant,
            run_id,
            ev.StageItemProcessed(stage=1, batch_id="b1", item=items[0], total=30, credits=1),
        ),
        run_event(
            tenant,
            run_id,
            ev.StageItemFailed(stage=1, batch_id="b1", item=items[1], error="boom"),
        ),
    ]
    folder = live_snapshot.Folder()
    for message in events:
        folder.add(message)
    state = fold(events)
    assert folder.state == state
    snapshot = folder.snapshot()
    assert snapshot is not None
    assert [i.id for i in snapshot.processing.currently_processing] == [3]
    assert (snapshot.processing.processed_items, snapshot.processing.failed_items) == (1, 1)
