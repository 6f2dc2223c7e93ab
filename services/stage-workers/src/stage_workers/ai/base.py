"""The one interface every AI provider implements, and the drafts it returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol


@dataclass(frozen=True)
class ClusterDraft:
    name: str
    description: str
    members: tuple[int, ...]  # indexes into the keywords the provider was given


@dataclass(frozen=True)
class IdeaDraft:
    title: str
    outline: str


@dataclass(frozen=True)
class ArticleDraft:
    title: str
    markdown: str

    @property
    def word_count(self) -> int:
        return len(self.markdown.split())


@dataclass(frozen=True)
class PromptDraft:
    kind: Literal["featured", "in_article"]
    prompt: str


class TransientAIError(Exception):
    """Worth retrying: a timeout, a rate limit, a server error, a dropped connection."""


class PermanentAIError(Exception):
    """Retrying will not help: the request or the answer is wrong."""


class FatalAIError(Exception):
    """No item can succeed until an operator acts: the provider refuses the credentials, the
    account or the model. The batch stops and the run fails, rather than failing every item."""


class AIProvider(Protocol):
    async def cluster_keywords(self, keywords: list[str]) -> list[ClusterDraft]: ...

    async def write_ideas(self, cluster_name: str, keywords: list[str]) -> list[IdeaDraft]: ...

    async def write_article(self, title: str, brief: str, keywords: list[str]) -> ArticleDraft: ...

    async def write_image_prompts(self, title: str, body: str) -> list[PromptDraft]: ...

    async def render_image(self, prompt: str) -> bytes: ...
