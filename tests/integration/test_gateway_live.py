"""A client subscribed to a run's live stream sees every event of the run, in stream order, as it
arrives, and the stream ends with the run."""

from __future__ import annotations

import json
import threading

from contracts import events as ev
from contracts.values import ItemRef
from tests.integration.test_gateway_support import (
    API,
    make_tenant,
    run_event,
)
from tests.support.kafka import publish
from tests.support.wait import wait_until

ITEMS = 40


def _listen(tenant, run_id: str, into: list[dict], connected: threading.Event, headers=None):
    with tenant.client.stream(
        "GET", f"{API}/runs/{run_id}/events", headers=headers or {}, timeout=60
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        event: dict = {}
        for line in response.iter_lines():
            connected.set()
            if line.startswith(("id:", "event:", "data:")):
                name, _, value = line.partition(": ")
                event[name.rstrip(":")] = value
            elif line == "" and event:
                into.append(event)
                event = {}


def _start_listener(tenant, run_id, headers=None):
    received: list[dict] = []
    connected = threading.Event()
    thread = threading.Thread(
        target=_listen, args=(tenant, run_id, received, connected, headers), daemon=True
    )
    thread.start()
    assert connected.wait(10)
    return thread, received


async def test_live_stream_pushes_every_item_in_order(db, gateway, orchestrator):
    tenant = make_tenant(db, gateway, credits=1000)
    tenant.client.post(
        f"{API}/keywords/import", params={"site_id": tenant.site_id}, json=[{"keyword": "a"}]
    )
    run_id = tenant.post("/run_now", site_id=tenant.site_id).json()["run_id"]
    early, early_events = _start_listener(tenant, run_id)
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
    wait_until(lambda: len(early_events) >= 2, what="events pushed while the run goes on")
    late, late_events = _start_listener(tenant, run_id)
    resumed, resumed_events = _start_listener(tenant, run_id, headers={"Last-Event-ID": "10"})
    ending = run_event(tenant, run_id, ev.RunCompleted(credits_used=8))
    await publish(gateway.bootstrap, gateway.topics.run_events, *processed[half:], ending)
    for thread in (early, late, resumed):
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
        assert [int(e["id"]) for e in events] == list(range(1, len(events) + 1))
    assert [int(e["id"]) for e in resumed_events] == list(range(11, len(early_events) + 1))


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
