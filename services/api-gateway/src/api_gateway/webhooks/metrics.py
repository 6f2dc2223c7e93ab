"""Prometheus metrics of the webhooks process, on a registry of its own (the API's registry
describes the API process). No per-endpoint, per-account or per-site label."""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

from api_gateway.webhooks.payloads import WEBHOOK_TYPES
from contracts.db import tables as t
from contracts.monitor import ConsumerLag, Monitor

REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)
counter = partial(Counter, registry=REGISTRY)
gauge = partial(Gauge, registry=REGISTRY)
histogram = partial(Histogram, registry=REGISTRY)

READY = gauge("automation_service_ready", "1 once the run-event consumer is assigned")
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
CONSUMER_LAG = gauge(
    "automation_consumer_lag_records",
    "Records between a consumer group's committed offsets and the end of the topic.",
    ["group", "topic"],
)
# Every series at zero from the start, so increase() sees its first step and the dashboard's
# panels answer before the first delivery.
for _outcome in ("delivered", "failed", "refused"):
    ATTEMPTS.labels(_outcome)
    ATTEMPT_SECONDS.labels(_outcome)
for _type in WEBHOOK_TYPES:
    ENQUEUED.labels(_type)


class DeliveryBacklog:
    """Pending deliveries, and how long the most overdue one has waited past its time."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self._engine: sa.Engine | None = None

    async def poll(self) -> None:
        if self._engine is None:
            self._engine = sa.create_engine(self.database_url, pool_size=1, max_overflow=0)
        count, overdue = await asyncio.to_thread(self._read)
        PENDING.set(count)
        OLDEST_DUE.set(max(0.0, overdue or 0.0))

    def _read(self) -> tuple[int, float | None]:
        d = t.webhook_deliveries.c
        query = sa.select(
            sa.func.count(),
            sa.func.extract("epoch", sa.func.now() - sa.func.min(d.next_attempt_at)),
        ).where(d.status == "pending")
        assert self._engine is not None
        with self._engine.connect() as conn:
            count, overdue = conn.execute(query).one()
        return count, None if overdue is None else float(overdue)

    async def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


def watch(settings: Any, group_id: str) -> Monitor:
    groups = {group_id: [settings.topics.run_events]}
    lag = ConsumerLag(settings.kafka_bootstrap_servers, groups, CONSUMER_LAG)
    return Monitor([lag, DeliveryBacklog(settings.database_url)]).start()
