"""The orchestrator's Prometheus metrics. No per-site or per-run labels (cardinality)."""

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

ready = gauge("automation_service_ready", "1 once partitions are assigned and state caught up")
commands = counter(
    "orchestrator_commands_total", "Run commands handled, by type and outcome", ["type", "outcome"]
)
events_folded = counter("orchestrator_events_folded_total", "Run events folded into state")
stage_commands = counter(
    "orchestrator_stage_commands_total", "Stage commands sent, by stage", ["stage"]
)
active_runs = gauge("orchestrator_active_runs", "Running or paused runs of the owned sites")
replay_seconds = gauge("orchestrator_replay_seconds", "How long the last catch-up took")
decide_seconds = histogram(
    "orchestrator_decide_seconds",
    "Time spent in a decision (command or tick)",
    buckets=(0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.1),
)
dead_letters = counter("orchestrator_dead_letters_total", "Unreadable records sent to dead-letter")
scheduled_starts = counter("orchestrator_scheduled_starts_total", "Scheduled slots claimed")
