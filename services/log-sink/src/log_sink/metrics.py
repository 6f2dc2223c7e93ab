"""Prometheus metrics. No per-run or per-site labels."""

from __future__ import annotations

from functools import partial

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

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
DEAD_LETTERS = counter("automation_log_sink_dead_letters_total", "Records sent to dead letter.")
