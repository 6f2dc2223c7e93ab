"""Prometheus metrics. No per-run or per-site labels."""

from __future__ import annotations

from typing import Any

from contracts.metrics import ServiceMetrics
from contracts.monitor import Monitor

METRICS = ServiceMetrics(ready="1 once partitions are assigned and replayed.")
REGISTRY = METRICS.registry
counter, gauge = METRICS.counter, METRICS.gauge
READY = METRICS.ready
DEAD_LETTERS = METRICS.dead_letters
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
for _target in ("diagnostic", "files", "mirror", "read_model"):  # at zero from the start
    WRITE_ERRORS.labels(_target)


def watch(settings: Any) -> Monitor:
    """Poll the committed lag of the sink's group on the run-event topic."""
    topic = settings.topics.run_events
    METRICS.reads([topic])
    return METRICS.watch(settings.kafka_bootstrap_servers, {settings.group_id: [topic]})
