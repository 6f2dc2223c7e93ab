"""The orchestrator's Prometheus metrics. No per-site or per-run labels (cardinality)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from contracts import events as ev
from contracts.envelope import Envelope
from contracts.metrics import ServiceMetrics
from contracts.monitor import Monitor
from contracts.state import RunState
from contracts.values import seconds_between

METRICS = ServiceMetrics(ready="1 once partitions are assigned and state caught up")
REGISTRY = METRICS.registry
counter, gauge, histogram = METRICS.counter, METRICS.gauge, METRICS.histogram
ready = METRICS.ready
dead_letters = METRICS.dead_letters
commands = counter(
    "orchestrator_commands_total", "Run commands handled, by type and outcome", ["type", "outcome"]
)
events_folded = counter("orchestrator_events_folded_total", "Run events folded into state")
stage_commands = counter(
    "orchestrator_stage_commands_total", "Stage commands sent, by stage", ["stage"]
)
active_runs = gauge(
    "orchestrator_active_runs", "Running or paused runs of the owned sites, by status", ["status"]
)
replay_seconds = gauge("orchestrator_replay_seconds", "How long the last catch-up took")
replayed_events = gauge(
    "orchestrator_replayed_events",
    "Run events the last catch-up folded (those after the partitions' snapshots)",
)
snapshots = counter(
    "orchestrator_snapshots_total",
    "Partition snapshots by outcome: written, superseded (a newer one was there), loaded, "
    "ignored (unreadable, another version, past the end), failed (database)",
    ["outcome"],
)
snapshot_bytes = gauge("orchestrator_snapshot_bytes", "Size of the last snapshot written")
decide_seconds = histogram(
    "orchestrator_decide_seconds",
    "Time spent in a decision (command or tick)",
    buckets=(0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.1),
)
scheduled_starts = counter("orchestrator_scheduled_starts_total", "Scheduled slots claimed")

TRIGGERS = ("manual", "scheduled")
runs_started = counter("automation_runs_started_total", "Runs started, by trigger", ["trigger"])
runs_finished = counter(
    "automation_runs_finished_total", "Runs ended, by status and trigger", ["status", "trigger"]
)
stage_seconds = histogram(
    "automation_stage_duration_seconds",
    "From a stage's start to its end, by stage and how it ended",
    ["stage", "status"],
    buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200),
)
for _trigger in TRIGGERS:  # every series exists from the start, at zero
    runs_started.labels(_trigger)
    for _status in ev.RUN_ENDINGS.values():
        runs_finished.labels(_status, _trigger)
for _status in ("running", "paused"):
    active_runs.labels(_status)
for _outcome in ("written", "superseded", "loaded", "ignored", "failed"):
    snapshots.labels(_outcome)


def run_event(message: Envelope, before: RunState | None) -> None:
    """Count a run-level event the orchestrator has just decided, from the run as it was before
    the decision (once ended, a run keeps no stages)."""
    match message.data:
        case ev.RunStarted(trigger=trigger):
            runs_started.labels(trigger).inc()
        case ev.RunCompleted() | ev.RunFailed() | ev.RunCancelled() if before is not None:
            status = ev.RUN_ENDINGS[type(message.data)]
            runs_finished.labels(status, before.trigger or "manual").inc()
        case ev.StageCompleted(stage=n) | ev.StageFailed(stage=n) if before is not None:
            status = "completed" if isinstance(message.data, ev.StageCompleted) else "failed"
            elapsed = seconds_between(before.stage(n).started_at, message.time)
            if elapsed is not None:
                stage_seconds.labels(str(n), status).observe(elapsed)


def count_active(runs: Iterable[RunState]) -> None:
    statuses = [run.status for run in runs]
    for status in ("running", "paused"):
        active_runs.labels(status).set(statuses.count(status))


def watch(settings: Any) -> Monitor:
    """Poll the lag of the run-command topic (the orchestrator's run-event offsets are never
    committed: it replays that topic on every assignment)."""
    topics = settings.topics
    METRICS.reads([topics.run_commands, topics.run_events])
    groups = {settings.group_id: [topics.run_commands]}
    return METRICS.watch(settings.kafka_bootstrap_servers, groups)
