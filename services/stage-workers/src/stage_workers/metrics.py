"""Process metrics: readiness, and what the batches did. No per-site or per-run labels."""

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

READY = gauge("automation_service_ready", "1 once every stage consumer has its partitions")


class Readiness:
    """Ready when every stage consumer has been through one partition assignment (possibly
    empty: more workers than partitions is a valid deployment)."""

    def __init__(self, stages: list[int]) -> None:
        self.waiting = set(stages)
        READY.set(0)

    def assigned(self, stage: int) -> None:
        self.waiting.discard(stage)
        if not self.waiting:
            READY.set(1)


IN_FLIGHT = gauge("stage_worker_commands_in_flight", "Stage commands being handled right now")
ITEMS = counter(
    "stage_worker_items_total", "Items handled, by stage and outcome", ["stage", "outcome"]
)
CREDITS = counter("stage_worker_credits_charged_total", "Credits charged, by stage", ["stage"])
HALTS = counter("stage_worker_halted_batches_total", "Batches stopped: the run could not pay")
BATCH_SECONDS = histogram(
    "stage_worker_batch_seconds",
    "Time to handle one stage command (AI calls included), by stage",
    ["stage"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)


def count_batch(stage: int, processed: int, failed: int, credits: int, halted: bool) -> None:
    ITEMS.labels(str(stage), "processed").inc(processed)
    ITEMS.labels(str(stage), "failed").inc(failed)
    CREDITS.labels(str(stage)).inc(credits)
    if halted:
        HALTS.inc()
