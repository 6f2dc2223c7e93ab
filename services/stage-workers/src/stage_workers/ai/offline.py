"""The offline provider: deterministic, no network; `latency_ms` imitates a model's delay. Its
usage counts a token per four characters, as a rough guide; its model costs nothing."""

from __future__ import annotations

import asyncio
from typing import TypeVar

from stage_workers.ai import clustering, writing
from stage_workers.ai.base import (
    Answer,
    ArticleDraft,
    ClusterDraft,
    IdeaDraft,
    PromptDraft,
    Usage,
)
from stage_workers.ai.png import draw_from_prompt

MODEL = "offline"
STOPPED = ("stop",)
T = TypeVar("T")


def _text(draft: T, prompt_chars: int, answer_chars: int) -> Answer[T]:
    """A text answer: a token per four characters each way, and it ends where it meant to."""
    usage = Usage(MODEL, input_tokens=prompt_chars // 4, output_tokens=answer_chars // 4)
    return Answer(draft, usage, finish_reasons=STOPPED)


class OfflineProvider:
    name = "offline"

    def __init__(self, latency_ms: int = 0) -> None:
        self.latency = latency_ms / 1000

    def model_for(self, function: str) -> str:
        return MODEL

    def estimate_tokens(self, function: str, *args: object) -> int:
        return 0

    async def _think(self) -> None:
        if self.latency:
            await asyncio.sleep(self.latency)

    async def cluster_keywords(self, keywords: list[str]) -> Answer[list[ClusterDraft]]:
        await self._think()
        drafts = clustering.cluster(keywords)
        answer = sum(len(d.name) + len(d.description) for d in drafts)
        return _text(drafts, sum(map(len, keywords)), answer)

    async def write_ideas(self, cluster_name: str, keywords: list[str]) -> Answer[list[IdeaDraft]]:
        await self._think()
        ideas = writing.ideas(cluster_name, keywords)
        answer = sum(len(i.title) + len(i.outline) for i in ideas)
        return _text(ideas, len(cluster_name) + sum(map(len, keywords)), answer)

    async def write_article(
        self, title: str, brief: str, keywords: list[str]
    ) -> Answer[ArticleDraft]:
        await self._think()
        article = writing.article(title, brief, keywords)
        prompt = len(title) + len(brief) + sum(map(len, keywords))
        return _text(article, prompt, len(article.markdown))

    async def write_image_prompts(self, title: str, body: str) -> Answer[list[PromptDraft]]:
        await self._think()
        prompts = writing.image_prompts(title, body)
        answer = sum(len(p.prompt) for p in prompts)
        return _text(prompts, len(title) + min(len(body), 4000), answer)

    async def render_image(self, prompt: str) -> Answer[bytes]:
        await self._think()
        # Drawing is pure Python; keep the event loop free for the consumer's heartbeats.
        png = await asyncio.to_thread(draw_from_prompt, prompt)
        return Answer(png, Usage(MODEL, images=1, image_size="offline"))
