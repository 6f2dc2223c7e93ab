"""Process metrics: readiness, what the batches and the AI calls did, the outbox backlog and
consumer lag. No per-site or per-run labels."""

from __future__ import annotations

import time
from functools import wraps
from typing import Any

from contracts.db.tables import AI_CALL_OUTCOMES
from contracts.metrics import ServiceMetrics
from contracts.monitor import Monitor, OutboxBacklog
from stage_workers.ai.base import AI_FUNCTIONS, OPERATIONS, TransientAIError

METRICS = ServiceMetrics(ready="1 once every stage consumer has its partitions")
REGISTRY = METRICS.registry
counter, gauge, histogram = METRICS.counter, METRICS.gauge, METRICS.histogram
READY = METRICS.ready


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


ITEM_SECONDS = histogram(
    "stage_worker_item_seconds",
    "Time to take one item through a stage (AI call and writes), by stage",
    ["stage"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)


def time_item(process_unit: Any) -> Any:
    """Decorates `process_unit(deps, step, ...)`: observes its time under the stage when the
    step's unit is one item (stage 1's is its batch: stage_worker_batch_seconds times that)."""

    @wraps(process_unit)
    async def timed(deps: Any, step: Any, *args: Any) -> Any:
        if step.unit != "item":
            return await process_unit(deps, step, *args)
        with ITEM_SECONDS.labels(str(step.stage)).time():
            return await process_unit(deps, step, *args)

    return timed


# --- AI calls ----------------------------------------------------------------------------------

AI_SECONDS = histogram(
    "stage_worker_ai_call_seconds",
    "AI call latency (one attempt), by provider and function",
    ["provider", "function"],
    buckets=(0.005, 0.025, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80, 160),
)
AI_ERRORS = counter(
    "stage_worker_ai_errors_total",
    "AI calls that failed, by provider, function and kind (transient: the gate decides)",
    ["provider", "function", "kind"],
)


class InstrumentedProvider:
    """Wraps an AI provider: times every call and counts its errors, nothing else changes."""

    def __init__(self, provider: Any, name: str) -> None:
        self._provider = provider
        self._name = name
        for function in AI_FUNCTIONS:  # every series exists from the start, at zero
            AI_SECONDS.labels(name, function)
            for kind in ("transient", "permanent"):
                AI_ERRORS.labels(name, function, kind)

    def __getattr__(self, function: str) -> Any:
        call = getattr(self._provider, function)
        if function not in AI_FUNCTIONS:
            return call

        @wraps(call)
        async def measured(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await call(*args, **kwargs)
            except (TransientAIError, TimeoutError):
                AI_ERRORS.labels(self._name, function, "transient").inc()
                raise
            except Exception:  # PermanentAIError, or anything the provider did not foresee
                AI_ERRORS.labels(self._name, function, "permanent").inc()
                raise
            finally:
                AI_SECONDS.labels(self._name, function).observe(time.perf_counter() - started)

        return measured


# --- GenAI client metrics, named as OpenTelemetry's GenAI semantic conventions name them --------

GEN_AI_TOKENS = histogram(
    "gen_ai_client_token_usage",
    "Tokens used per AI call (gen_ai.client.token.usage), by token type",
    ["gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model", "gen_ai_token_type"],
    buckets=tuple(4**n for n in range(14)),
)
GEN_AI_SECONDS = histogram(
    "gen_ai_client_operation_duration_seconds",
    "Duration of AI calls (gen_ai.client.operation.duration); error_type empty on success",
    ["gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model", "error_type"],
    buckets=tuple(0.01 * 2**n for n in range(14)),
)
GEN_AI_COST = counter(
    "gen_ai_client_cost_usd",
    "Money the AI calls cost at the price table's prices, in US dollars",
    ["gen_ai_provider_name", "gen_ai_request_model"],
)
GEN_AI_CALLS = counter(
    "gen_ai_client_calls",
    "AI calls by outcome: answered, rate_limited, unavailable, refused, fatal",
    ["gen_ai_provider_name", "gen_ai_request_model", "outcome"],
)
GEN_AI_UNPRICED = counter(
    "gen_ai_client_unpriced_calls",
    "Answered AI calls whose model the price table does not know (cost unknown)",
    ["gen_ai_provider_name", "gen_ai_request_model"],
)


# --- The gate ----------------------------------------------------------------------------------

GATE_WAITING = gauge(
    "stage_worker_ai_waiting_calls",
    "AI calls of this process waiting at the gate for their provider + model to admit them",
    ["provider", "model"],
)
GATE_HELD = gauge(
    "stage_worker_ai_provider_unavailable",
    "1 while the provider holds this process's calls back (circuit open after failures, or a "
    "long rest it asked for); 0 when it admits them or none wait",
    ["provider", "model"],
)


def gate_line(provider: str, model: str, waiting: int, held: bool) -> None:
    GATE_WAITING.labels(provider, model).set(waiting)
    GATE_HELD.labels(provider, model).set(1 if held else 0)


def declare_models(provider: str, models: Any) -> None:
    """Every series of the models this process asks exists from the start, at zero."""
    for model in set(models):
        for outcome in AI_CALL_OUTCOMES:
            GEN_AI_CALLS.labels(provider, model, outcome)
        gate_line(provider, model, 0, held=False)


def count_calls(records: Any) -> None:
    for r in records:
        operation = OPERATIONS.get(r.function, "chat")
        model = r.model_requested
        GEN_AI_CALLS.labels(r.provider, model, r.outcome).inc()
        error = "" if r.outcome == "answered" else r.outcome
        GEN_AI_SECONDS.labels(operation, r.provider, model, error).observe(r.latency_ms / 1000)
        if r.usage is not None:
            for kind, tokens in (
                ("input", r.usage.input_tokens),
                ("output", r.usage.output_tokens),
            ):
                GEN_AI_TOKENS.labels(operation, r.provider, model, kind).observe(tokens)
        if r.cost_usd is not None:
            GEN_AI_COST.labels(r.provider, model).inc(float(r.cost_usd))
        elif r.outcome == "answered":
            GEN_AI_UNPRICED.labels(r.provider, model).inc()


# --- looked up in the background: consumer lag, outbox backlog, dead letters -------------------

PROVIDER_BATCHES = counter(
    "stage_worker_provider_batches_created_total",
    "Provider batches created for economy runs, by stage",
    ["stage"],
)
PROVIDER_BATCH_WAITS = gauge(
    "stage_worker_provider_batch_waits",
    "Stage batches of economy runs waiting for the provider's batch right now, by stage",
    ["stage"],
)
PROVIDER_BATCH_WAKEUPS = counter(
    "stage_worker_provider_batch_wakeups_total",
    "Provider batch ends heard through the provider's webhook (each wakes the waits at once)",
)
PROVIDER_BATCH_REQUESTS = counter(
    "stage_worker_provider_batch_requests_total",
    "Requests of provider batches, by stage and how they ended "
    "(answered, refused, unanswered: made as standard calls or failed)",
    ["stage", "outcome"],
)
OUTBOX_ROWS = gauge(
    "automation_outbox_unpublished_rows", "Outbox rows of this relay's topics not yet published"
)
OUTBOX_AGE = gauge(
    "automation_outbox_oldest_unpublished_age_seconds",
    "Age of the oldest unpublished outbox row (0 when none waits)",
)
CONSUMER_LAG, DEAD_LETTERS = METRICS.consumer_lag, METRICS.dead_letters  # every worker has both


def watch(settings: Any) -> Monitor:
    """Start polling lag of the stage groups this process serves and the outbox backlog."""
    topics = settings.topics
    groups = {
        f"{settings.kafka_group_prefix}automation-stage-{stage}": [topics.stage(stage)]
        for stage in settings.stages()
    }
    METRICS.reads(topics.stage(stage) for stage in settings.stages())
    relay_topics = [spec.name for spec in topics.specs()]
    backlog = OutboxBacklog(settings.database_url, relay_topics, OUTBOX_ROWS, OUTBOX_AGE)
    return METRICS.watch(settings.kafka_bootstrap_servers, groups, backlog)
