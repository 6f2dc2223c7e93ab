"""Prometheus metrics. No per-run or per-site labels."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

READY = Gauge("automation_service_ready", "1 once partitions are assigned and replayed.")
EVENTS = Counter("automation_log_sink_events_total", "Run events consumed.", ["outcome"])
LINES = Counter("automation_log_sink_lines_written_total", "Lines appended to files.", ["kind"])
WRITE_ERRORS = Counter(
    "automation_log_sink_write_errors_total",
    "Failed writes, retried later (disk full, read-only, database down).",
    ["target"],
)
PENDING_RUNS = Gauge(
    "automation_log_sink_pending_runs", "Runs whose files or rows are not yet written."
)
ACTIVE_RUNS = Gauge("automation_log_sink_active_runs", "Runs held in memory.")
LAG = Gauge("automation_log_sink_lag_records", "Records between the read position and the end.")
DEAD_LETTERS = Counter("automation_log_sink_dead_letters_total", "Records sent to dead letter.")
