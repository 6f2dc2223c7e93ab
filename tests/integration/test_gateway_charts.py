"""A run's timeline is read from its events on the topic (stages, pauses, waits, items in flight,
failed items) and drawn as SVG by the gateway; a site's credits and money per day too. What the
events carry is text in the drawing, never markup."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from api_gateway.run_commands import new_run_id
from contracts import events as ev
from contracts.values import ItemRef
from tests.support.gateway import insert_run, make_tenant, run_event
from tests.support.kafka import publish
from tests.support.wait import wait_until

HOSTILE = "<script>alert(1)</script>"


async def test_the_timeline_of_a_finished_run(db, stack, topics, gateway, tenant):
    run_id = new_run_id()
    items = tuple(ItemRef(id=i, title=f"keyword {i}") for i in range(1, 5))
    lease = datetime.now(UTC) + timedelta(minutes=5)

    def event(payload):
        return run_event(tenant, run_id, payload)

    handed_over = datetime.now(UTC)

    def batch_report(status: str, completed: int) -> ev.StageWaitingForProviderBatch:
        return ev.StageWaitingForProviderBatch(
            stage=1, batch_id="b2", provider="openai", provider_batch_ids=(HOSTILE,),
            status=status, total=2, completed=completed, since=handed_over,
        )  # fmt: skip

    events = [
        event(ev.RunStarted(trigger="manual")),
        event(ev.StageStarted(stage=1, items=items)),
        event(ev.StageBatchDispatched(stage=1, batch_id="b1", item_ids=(1, 2), lease_until=lease)),
        event(ev.StageItemProcessed(stage=1, batch_id="b1", item=items[0], total=4)),
        event(
            ev.StageWaitingForProvider(
                stage=1, provider="openai", model="m", reason=HOSTILE, since=datetime.now(UTC)
            )
        ),
        event(
            ev.StageProviderRecovered(
                stage=1, provider="openai", model="m", since=datetime.now(UTC)
            )
        ),
        event(ev.StageItemFailed(stage=1, batch_id="b1", item=items[1], error="bad answer")),
        event(ev.RunPaused(reason="requested")),
        event(ev.RunResumed()),
        event(ev.StageBatchDispatched(stage=1, batch_id="b2", item_ids=(3, 4), lease_until=lease)),
        event(batch_report("validating", 0)),
        event(batch_report("in_progress", 1)),
        event(ev.StageItemProcessed(stage=1, batch_id="b2", item=items[2], total=4)),
        event(ev.StageItemProcessed(stage=1, batch_id="b2", item=items[3], total=4)),
        event(ev.StageBatchCompleted(stage=1, batch_id="b2", processed=2, failed=0, credits=1)),
        event(ev.StageCompleted(stage=1, items_in=4, items_out=1, failed=1)),
        event(ev.RunCompleted(credits_used=3)),
    ]
    first, *_ = await publish(stack.kafka_bootstrap, topics.run_events, *events)
    insert_run(
        db,
        tenant,
        status="completed",
        run_id=run_id,
        stream_partition=first.partition,
        first_offset=first.offset,
    )

    def read() -> dict:
        answer = tenant.get("/run_timeline", run_id=run_id)
        assert answer.status_code == 200, answer.text
        return answer.json()

    wait_until(lambda: read()["ended_at"] is not None, what="the run's events, all read")
    timeline = read()
    [stage] = timeline["stages"]
    assert (stage["stage"], stage["status"]) == (1, "completed") and stage["ended_at"]
    [pause] = timeline["pauses"]
    assert pause["reason"] == "requested" and pause["ended_at"]
    [wait] = timeline["waits"]
    assert wait["stage"] == 1 and HOSTILE in wait["reason"] and wait["ended_at"]
    [batch_wait] = timeline["provider_batch_waits"]
    assert batch_wait["stage"] == 1 and batch_wait["ended_at"]
    assert datetime.fromisoformat(batch_wait["started_at"]) == handed_over
    assert batch_wait["reason"] == f"openai batch {HOSTILE}: in_progress, 1 of 2 answered, 0 failed"
    assert [p["items"] for p in timeline["in_flight"]] == [2, 1, 0, 2, 1, 0]
    assert [(f["item_id"], f["error"]) for f in timeline["failed_items"]] == [(2, "bad answer")]

    drawn = tenant.get("/run_timeline.svg", run_id=run_id)
    assert drawn.status_code == 200
    assert drawn.headers["content-type"].startswith("image/svg+xml")
    svg = drawn.text
    assert svg.startswith("<svg") and "Keywords → Clusters" in svg and "polyline" in svg
    assert "<script" not in svg and "&lt;script&gt;" in svg
    assert "waiting for the provider's batch: openai batch &lt;script" in svg

    chart = tenant.get("/usage_chart.svg", site_id=tenant.site_id)
    assert chart.status_code == 200 and chart.text.startswith("<svg")
    assert chart.text.count("<rect") >= 31  # the background and one bar per day

    other = make_tenant(db, gateway)
    assert other.get("/run_timeline", run_id=run_id).status_code == 404
    assert other.get("/run_timeline.svg", run_id=run_id).status_code == 404
    assert other.get("/usage_chart.svg", site_id=tenant.site_id).status_code == 404
