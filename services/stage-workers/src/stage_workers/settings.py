"""Settings of a stage-worker process, from the environment (docs/runtime.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from contracts.settings import ServiceSettings, var_dir


class WorkerSettings(ServiceSettings):
    worker_stages: str = "1,2,3,4,5,6,7"
    metrics_port: int = 9102
    ai_provider: Literal["offline", "openai"] = "offline"
    offline_latency_ms: int = 0
    openai_base_url: str | None = None
    openai_api_key: str = "unset"
    openai_text_model: str = "gpt-4o-mini"
    openai_image_model: str = "gpt-image-1"
    openai_timeout_seconds: float = 60.0
    ai_max_attempts: int = 4
    ai_retry_first_wait_seconds: float = 0.5
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
    media_dir: Path = Field(default_factory=lambda: var_dir() / "media")

    def stages(self) -> list[int]:
        return sorted({int(part) for part in self.worker_stages.split(",") if part.strip()})
