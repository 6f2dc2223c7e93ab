"""The orchestrator's Prometheus metrics. No per-site or per-run labels (cardinality)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

ready = Gauge("automation_service_ready", "1 once partitions are assigned and state caught up")
commands = Counter(
    "orchestrator_commands_total", "Run commands handled, by type and outcome", ["type", "outcome"]
)
events_folded = Counter("orchestrator_events_folded_total", "Run events folded into state")
stage_commands = Counter(
    "orchestrator_stage_commands_total", "Stage commands sent, by stage", ["stage"]
)
active_runs = Gauge("orchestrator_active_runs", "Running or paused runs of the owned sites")
replay_seconds = Gauge("orchestrator_replay_seconds", "How long the last catch-up took")
decide_seconds = Histogram(
    "orchestrator_decide_seconds",
    "Time spent in a decision (command or tick)",
    buckets=(0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.1),
)
dead_letters = Counter("orchestrator_dead_letters_total", "Unreadable records sent to dead-letter")
scheduled_starts = Counter("orchestrator_scheduled_starts_total", "Scheduled slots claimed")
