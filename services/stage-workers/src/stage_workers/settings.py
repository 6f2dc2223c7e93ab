"""Settings of a stage-worker process, from the environment (docs/runtime.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from contracts.settings import ServiceSettings, default_media_dir
from stage_workers.ai.base import STAGE_FUNCTIONS
from stage_workers.ai.prices import DEFAULT_PRICES, PriceTable


class ModelLimits(BaseModel):
    requests_per_minute: int | None = Field(None, ge=1)
    tokens_per_minute: int | None = Field(None, ge=1)


class WorkerSettings(ServiceSettings):
    worker_stages: str = "1,2,3,4,5,6,7"
    metrics_port: int = 9102
    ai_provider: Literal["offline", "openai"] = "offline"
    offline_latency_ms: int = 0
    openai_base_url: str | None = None
    openai_api_key: str = "unset"
    openai_text_model: str = "gpt-4o-mini"
    openai_image_model: str = "gpt-image-1-mini"
    openai_timeout_seconds: float = 60.0
    ai_max_attempts: int = Field(
        4, ge=1, description="Calls an item may see fail while the provider otherwise answers."
    )
    ai_retry_first_wait_seconds: float = 0.5
    ai_requests_per_minute: int | None = Field(
        500, ge=1, description="Each model's request budget, shared by every worker process."
    )
    ai_tokens_per_minute: int | None = Field(
        200_000, ge=1, description="Each model's token budget, shared by every worker process."
    )
    ai_model_limits: dict[str, ModelLimits] = Field(
        default_factory=dict,
        description='Budgets of particular models, as JSON: {"gpt-image-1-mini": '
        '{"requests_per_minute": 5}}; a limit left out is the default one.',
    )
    ai_failures_to_open: int = Field(
        5, ge=1, description="Failures in a row (timeouts, 5xx) that open a model's circuit."
    )
    ai_first_probe_seconds: float = Field(
        2, gt=0, description="How long an open circuit waits before its first probe call."
    )
    ai_longest_probe_seconds: float = Field(
        30, gt=0, description="The longest interval between probes of an open circuit."
    )
    ai_longest_wait_seconds: float = Field(
        1800, gt=0, description="How long a run waits for the provider before it pauses itself."
    )
    economy_poll_first_seconds: float = Field(
        5, gt=0, description="An economy run first looks at its provider batch after this long."
    )
    economy_poll_longest_seconds: float = Field(
        300, gt=0, description="The longest pause between two looks at a provider batch."
    )
    economy_fallback: Literal["standard", "fail"] = Field(
        "standard",
        description="What becomes of requests a provider batch left unanswered twice (expired, "
        "cancelled, a server error): standard calls, or failed items.",
    )
    ai_fallback_models: dict[int, str] = Field(
        default_factory=dict,
        description='A second model per AI stage, as JSON: {"4": "gpt-4.1-mini"}; used for a '
        "call that waited longer than AI_FALLBACK_AFTER_SECONDS at the first model's gate (its "
        "circuit open, or its budget spent).",
    )
    ai_fallback_after_seconds: float = Field(
        60, gt=0, description="How long a call waits for the first model before the second."
    )
    ai_fallback_base_url: str | None = Field(
        None, description="Another OpenAI-compatible provider for the second models."
    )
    ai_fallback_api_key: str | None = Field(None, description="Its key (default OPENAI_API_KEY).")
    ai_prices: PriceTable = Field(
        default_factory=lambda: DEFAULT_PRICES,
        description="The price table (JSON): version, and per model USD per 1M input, cached "
        "and output tokens, or per image by size.",
    )
    worker_max_in_flight: int = Field(
        64, ge=1, description="Stage commands this process handles at once, over all runs."
    )
    worker_per_run: int = Field(
        16, ge=1, description="Of those, at most this many of one run: no run starves the rest."
    )
    worker_db_connections: int = Field(
        16, ge=1, description="Database connections (and threads that use them) for handlers."
    )
    retention_hours: float = Field(
        168,
        ge=0,
        description="Published outbox rows and handled command ids older than this are pruned; "
        "keep it at least the stage topics' retention (Kafka's default is 168 h).",
    )
    prune_every_seconds: float = Field(600, gt=0, description="How often pruning runs.")
    media_dir: Path = Field(default_factory=default_media_dir)

    def stages(self) -> list[int]:
        return sorted({int(part) for part in self.worker_stages.split(",") if part.strip()})

    @field_validator("ai_fallback_models")
    @classmethod
    def _ai_stages_only(cls, models: dict[int, str]) -> dict[int, str]:
        if wrong := sorted(set(models) - set(STAGE_FUNCTIONS)):
            raise ValueError(
                f"stages {wrong} make no AI calls; a second model is for stages "
                f"{sorted(STAGE_FUNCTIONS)}"
            )
        return models
