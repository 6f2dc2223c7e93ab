"""Which run events make which webhooks, what their bodies say, and that one event gives one
`webhook-id` per endpoint however often it is read."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest

from api_gateway.webhooks import payloads
from api_gateway.webhooks.payloads import WebhookEvent, from_event, webhook_id
from contracts import events as ev
from contracts.codec import decode, encode
from contracts.credits import PendingWork, estimate
from contracts.envelope import Payload, deterministic_id, new_message
from contracts.events import RUN_EVENTS
from contracts.values import ItemRef

NOW = datetime(2026, 12, 6, 12, 0, 0, 123_456, tzinfo=UTC)
RUN = "run_20261206_115500_manual_ab12cd"


def message(payload: Payload, *parts: object):
    return new_message(
        payload,
        source="/automation/orchestrator",
        account_id=7,
        site_id=42,
        run_id=RUN,
        message_id=deterministic_id(RUN, *(parts or (payload.TYPE,))),
        time=NOW,
    )


def body_of(event: WebhookEvent) -> dict:
    return json.loads(event.body())


def test_a_completed_run_with_articles_waiting_makes_two_webhooks():
    completed = message(ev.RunCompleted(credits_used=31, ready_for_review=(5, 9, 12)))
    done, review = from_event(completed)
    assert body_of(done) == {
        "type": "run.completed",
        "timestamp": "2026-12-06T12:00:00.123456Z",
        "data": {"run_id": RUN, "site_id": 42, "credits_used": 31, "ready_for_review": 3},
    }
    assert body_of(review)["type"] == "review.ready"
    assert body_of(review)["data"] == {
        "run_id": RUN,
        "site_id": 42,
        "content_ids": [5, 9, 12],
        "count": 3,
    }
    assert {(e.account_id, e.site_id, e.run_id) for e in (done, review)} == {(7, 42, RUN)}


def test_a_completed_run_with_nothing_to_review_makes_only_run_completed():
    [done] = from_event(message(ev.RunCompleted(credits_used=0)))
    assert done.type == "run.completed" and done.data["ready_for_review"] == 0


def test_failed_and_cancelled_runs():
    [failed] = from_event(message(ev.RunFailed(error="stage 4: all 3 items failed", stage=4)))
    assert body_of(failed)["data"] == {
        "run_id": RUN,
        "site_id": 42,
        "error": "stage 4: all 3 items failed",
        "stage": 4,
    }
    [cancelled] = from_event(message(ev.RunCancelled(requested_by="user:3")))
    assert (cancelled.type, cancelled.data["requested_by"]) == ("run.cancelled", "user:3")


@pytest.mark.parametrize(
    ("said", "reason", "detail"),
    [
        ("requested", "requested", None),
        ("insufficient_credits", "insufficient_credits", None),
        ("insufficient_credits: costs 5", "insufficient_credits", "costs 5"),
        ("ai_provider_unavailable: 503 for 30 min", "ai_provider_unavailable", "503 for 30 min"),
        ("the moon is full", "other", "the moon is full"),
        ("other: x", "other", "other: x"),
    ],
)
def test_a_paused_run_says_why(said: str, reason: str, detail: str | None):
    [paused] = from_event(message(ev.RunPaused(reason=said)))
    assert paused.type == "run.paused"
    assert (paused.data["reason"], paused.data["detail"]) == (reason, detail)
    assert paused.data["reason"] in payloads.PAUSE_REASONS


def test_every_other_run_event_makes_nothing():
    makers = {cls for cls in RUN_EVENTS if cls.TYPE in payloads.SOURCE_EVENTS}
    assert makers == {ev.RunCompleted, ev.RunFailed, ev.RunPaused, ev.RunCancelled}
    started = ev.StageStarted(stage=2, items=(ItemRef(id=1, title="a"),))
    assert from_event(message(started)) == []
    assert from_event(message(ev.RunResumed(requested_by="user:3"))) == []


def test_every_webhook_type_is_made_by_something():
    made = {
        e.type
        for payload in (
            ev.RunCompleted(credits_used=1, ready_for_review=(1,)),
            ev.RunFailed(error="x"),
            ev.RunPaused(),
            ev.RunCancelled(),
        )
        for e in from_event(message(payload))
    }
    assert made | {"credits.low", "endpoint.disabled"} == set(payloads.WEBHOOK_TYPES)


def test_a_disabled_endpoint_is_told_to_the_whole_account_once_per_disabling():
    at = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)
    told = payloads.endpoint_disabled(5, 9, "https://hooks.example/x", "gone (410)", at)
    assert told.site_id is None and told.account_id == 5
    assert json.loads(told.body()) == {
        "type": "endpoint.disabled",
        "timestamp": "2026-12-07T01:00:00Z",
        "data": {
            "endpoint_id": 9,
            "url": "https://hooks.example/x",
            "reason": "gone (410)",
            "disabled_at": "2026-12-07T01:00:00Z",
        },
    }
    later = payloads.endpoint_disabled(
        5, 9, "https://hooks.example/x", "gone (410)", at.replace(hour=2)
    )
    assert payloads.webhook_id(1, told) != payloads.webhook_id(1, later)


def test_the_id_is_the_same_for_the_same_event_read_again_and_differs_otherwise():
    completed = message(ev.RunCompleted(credits_used=3, ready_for_review=(1,)))
    again = decode(encode(completed))  # as a consumer reads it after a restart
    first, second = from_event(completed), from_event(again)
    assert [webhook_id(1, e) for e in first] == [webhook_id(1, e) for e in second]
    assert [e.body() for e in first] == [e.body() for e in second]
    done, review = first
    ids = {webhook_id(1, done), webhook_id(1, review), webhook_id(2, done)}
    assert len(ids) == 3  # per type and per endpoint
    other_run = message(ev.RunCompleted(credits_used=3), "another event")
    assert webhook_id(1, from_event(other_run)[0]) not in ids
    assert isinstance(webhook_id(1, done), UUID) and webhook_id(1, done).version == 5


def test_the_body_is_compact_utf8_json_in_a_fixed_order():
    [failed] = from_event(message(ev.RunFailed(error="café ☕ broke")))
    raw = failed.body()
    assert raw.startswith(b'{"type":"run.failed","timestamp":"2026-12-06T12:00:00.123456Z"')
    assert "café ☕".encode() in raw
    berlin = NOW.astimezone(ZoneInfo("Europe/Berlin"))
    other_zone = message(ev.RunFailed(error="x")).model_copy(update={"time": berlin})
    assert body_of(from_event(other_zone)[0])["timestamp"] == "2026-12-06T12:00:00.123456Z"


# --- credits.low ---------------------------------------------------------------------------

SLOT = datetime(2026, 12, 7, 2, 0, tzinfo=UTC)
WORK = PendingWork(tasks=4)  # 4 articles: 20 credits, 24 needed to start


def test_credits_low_when_the_balance_does_not_pass_the_next_runs_start_check():
    low = payloads.credits_low(7, 42, estimate(WORK, balance=23), SLOT, NOW)
    assert low is not None
    assert body_of(low) == {
        "type": "credits.low",
        "timestamp": "2026-12-06T12:00:00.123456Z",
        "data": {
            "site_id": 42,
            "next_run_at": "2026-12-07T02:00:00Z",
            "balance": 23,
            "required": 24,
            "estimated_credits": 20,
            "start_check": "pending",
        },
    }
    assert payloads.credits_low(7, 42, estimate(WORK, balance=24), SLOT, NOW) is None


def test_credits_low_is_one_warning_per_site_and_slot():
    def low(site: int, slot: datetime, now: datetime) -> UUID:
        event = payloads.credits_low(7, site, estimate(WORK, balance=0), slot, now)
        assert event is not None
        return webhook_id(1, event)

    later = NOW + timedelta(minutes=15)
    assert low(42, SLOT, NOW) == low(42, SLOT, later)  # the sweep finds it again: same id
    assert low(42, SLOT, NOW) != low(42, SLOT + timedelta(days=1), later)
    assert low(42, SLOT, NOW) != low(43, SLOT, NOW)
