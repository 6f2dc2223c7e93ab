"""AI providers behind one interface: `offline` (deterministic, no network) and `openai`."""

from stage_workers.ai.base import (
    AIProvider,
    ArticleDraft,
    ClusterDraft,
    IdeaDraft,
    PermanentAIError,
    PromptDraft,
    TransientAIError,
)

__all__ = [
    "AIProvider",
    "ArticleDraft",
    "ClusterDraft",
    "IdeaDraft",
    "PermanentAIError",
    "PromptDraft",
    "TransientAIError",
]
