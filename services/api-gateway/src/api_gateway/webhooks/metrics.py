"""Prometheus metrics of the webhooks process, on a registry of its own (the API's registry
describes the API process). No per-endpoint, per-account or per-site label."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from api_gateway.webhooks.payloads import WEBHOOK_TYPES
from contracts.db import tables as t
from contracts.metrics import ServiceMetrics
from contracts.monitor import Monitor, RowBacklog, seconds_since

METRICS = ServiceMetrics(ready="1 once the run-event consumer is assigned")
REGISTRY = METRICS.registry
counter, gauge, histogram = METRICS.counter, METRICS.gauge, METRICS.histogram
READY = METRICS.ready
ENQUEUED = counter(
    "automation_webhook_deliveries_enqueued_total",
    "Deliveries made from events (one per endpoint that wants the event), by webhook type",
    ["type"],
)
ATTEMPTS = counter(
    "automation_webhook_attempts_total",
    "Delivery attempts by outcome (delivered, failed, refused)",
    ["outcome"],
)
ATTEMPT_SECONDS = histogram(
    "automation_webhook_attempt_seconds",
    "How long an attempt took, from connecting to the answer's headers",
    ["outcome"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15),
)
LOST_LEASES = counter(
    "automation_webhook_lost_leases_total",
    "Attempts whose outcome was not recorded: the lease ran out or the endpoint was disabled",
)
IN_FLIGHT = gauge("automation_webhook_attempts_in_flight", "Attempts under way in this process")
PENDING = gauge("automation_webhook_deliveries_pending", "Deliveries not yet delivered or failed")
OLDEST_DUE = gauge(
    "automation_webhook_oldest_due_seconds",
    "How long the most overdue pending delivery has been due (0: none is due)",
)
UNREADABLE = counter(
    "automation_webhook_unreadable_events_total",
    "Run events of a webhook's type this process could not read (skipped)",
)
# Every series at zero from the start, so increase() sees its first step and the dashboard's
# panels answer before the first delivery.
for _outcome in ("delivered", "failed", "refused"):
    ATTEMPTS.labels(_outcome)
    ATTEMPT_SECONDS.labels(_outcome)
for _type in WEBHOOK_TYPES:
    ENQUEUED.labels(_type)


def count_enqueued(new: dict[str, int]) -> None:
    """Deliveries a committed transaction made, by webhook type."""
    for type_, count in new.items():
        ENQUEUED.labels(type_).inc(count)


def delivery_backlog(database_url: str) -> RowBacklog:
    """Pending deliveries, and how long the most overdue one has waited past its time."""
    d = t.webhook_deliveries.c
    query = sa.select(sa.func.count(), seconds_since(d.next_attempt_at)).where(
        d.status == "pending"
    )
    return RowBacklog(database_url, query, PENDING, OLDEST_DUE)


def watch(settings: Any, group_id: str) -> Monitor:
    groups = {group_id: [settings.topics.run_events]}
    return METRICS.watch(
        settings.kafka_bootstrap_servers, groups, delivery_backlog(settings.database_url)
    )
