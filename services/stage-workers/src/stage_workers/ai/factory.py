"""Choose the provider the settings name."""

from __future__ import annotations

from stage_workers.ai.base import AIProvider
from stage_workers.ai.offline import OfflineProvider
from stage_workers.ai.openai_provider import OpenAIProvider
from stage_workers.settings import WorkerSettings


def make_provider(settings: WorkerSettings) -> AIProvider:
    if settings.ai_provider == "openai":
        return OpenAIProvider(
            base_url=settings.openai_base_url,
            api_key=settings.openai_api_key,
            text_model=settings.openai_text_model,
            image_model=settings.openai_image_model,
            timeout_seconds=settings.openai_timeout_seconds,
        )
    return OfflineProvider(settings.offline_latency_ms)
