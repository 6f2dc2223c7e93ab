"""Prometheus metrics. No per-run or per-site labels."""

from __future__ import annotations

from functools import partial
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

from contracts.monitor import ConsumerLag, Monitor

# The service's own registry, so that services imported into one process (the test suite) do
# not clash on names they share, such as automation_service_ready.
REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)
counter = partial(Counter, registry=REGISTRY)
gauge = partial(Gauge, registry=REGISTRY)
histogram = partial(Histogram, registry=REGISTRY)

READY = gauge("automation_service_ready", "1 once partitions are assigned and replayed.")
EVENTS = counter("automation_log_sink_events_total", "Run events consumed.", ["outcome"])
LINES = counter("automation_log_sink_lines_written_total", "Lines appended to files.", ["kind"])
WRITE_ERRORS = counter(
    "automation_log_sink_write_errors_total",
    "Failed writes, retried later (disk full, read-only, database down).",
    ["target"],
)
PENDING_RUNS = gauge(
    "automation_log_sink_pending_runs", "Runs whose files or rows are not yet written."
)
ACTIVE_RUNS = gauge("automation_log_sink_active_runs", "Runs held in memory.")
LAG = gauge("automation_log_sink_lag_records", "Records between the read position and the end.")
DEAD_LETTERS = counter(
    "automation_dead_letters_total",
    "Records this service could not read and sent to the dead-letter topic, by source topic.",
    ["topic"],
)
CONSUMER_LAG = gauge(
    "automation_consumer_lag_records",
    "Records between a consumer group's committed offsets and the end of the topic.",
    ["group", "topic"],
)
for _target in ("diagnostic", "files", "mirror", "read_model"):  # at zero from the start
    WRITE_ERRORS.labels(_target)


def watch(settings: Any) -> Monitor:
    """Poll the committed lag of the sink's group on the run-event topic."""
    topic = settings.topics.run_events
    DEAD_LETTERS.labels(topic)
    groups = {settings.group_id: [topic]}
    return Monitor([ConsumerLag(settings.kafka_bootstrap_servers, groups, CONSUMER_LAG)]).start()
