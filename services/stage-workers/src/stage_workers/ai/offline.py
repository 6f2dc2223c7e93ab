"""The offline provider: deterministic, no network; `latency_ms` imitates a model's delay."""

from __future__ import annotations

import asyncio

from stage_workers.ai import clustering, writing
from stage_workers.ai.base import ArticleDraft, ClusterDraft, IdeaDraft, PromptDraft
from stage_workers.ai.png import draw_from_prompt


class OfflineProvider:
    def __init__(self, latency_ms: int = 0) -> None:
        self.latency = latency_ms / 1000

    async def _think(self) -> None:
        if self.latency:
            await asyncio.sleep(self.latency)

    async def cluster_keywords(self, keywords: list[str]) -> list[ClusterDraft]:
        await self._think()
        return clustering.cluster(keywords)

    async def write_ideas(self, cluster_name: str, keywords: list[str]) -> list[IdeaDraft]:
        await self._think()
        return writing.ideas(cluster_name, keywords)

    async def write_article(self, title: str, brief: str, keywords: list[str]) -> ArticleDraft:
        await self._think()
        return writing.article(title, brief, keywords)

    async def write_image_prompts(self, title: str, body: str) -> list[PromptDraft]:
        await self._think()
        return writing.image_prompts(title, body)

    async def render_image(self, prompt: str) -> bytes:
        await self._think()
        # Drawing is pure Python; keep the event loop free for the consumer's heartbeats.
        return await asyncio.to_thread(draw_from_prompt, prompt)
