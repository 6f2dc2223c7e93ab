"""The one interface every AI provider implements, and the drafts it returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, Literal, Protocol, TypeVar

from contracts.values import word_count
from stage_workers.ai.advice import RateLimitAdvice

T = TypeVar("T")


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
        return word_count(self.markdown)


@dataclass(frozen=True)
class PromptDraft:
    kind: Literal["featured", "in_article"]
    prompt: str


@dataclass(frozen=True)
class Usage:
    """What one answered call used, as the provider counted it (zeros where it said nothing)."""

    model: str  # the model that answered, which may name a dated version of the one asked
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0  # of the input tokens, those the provider served from its cache
    images: int = 0
    image_size: str | None = None


@dataclass(frozen=True)
class Answer(Generic[T]):
    """A provider's draft and what producing it used."""

    draft: T
    usage: Usage
    advice: RateLimitAdvice | None = None  # what the answer's headers said of the budgets
    finish_reasons: tuple[str, ...] = ()  # why the model stopped, per choice, where it says


class TransientAIError(Exception):
    """Worth retrying: a timeout, a rate limit, a server error, a dropped connection."""


class RateLimited(TransientAIError):
    """The provider said 429: the whole provider + model waits as it advises, no item failed."""

    def __init__(self, message: str, advice: RateLimitAdvice) -> None:
        super().__init__(message)
        self.advice = advice


class ProviderUnavailable(TransientAIError):
    """No usable answer for reasons of the provider's, not the item's: a timeout, a dropped
    connection, a 5xx. Repeated, they open the provider + model's circuit."""


class PermanentAIError(Exception):
    """Retrying will not help: the request or the answer is wrong."""


class FatalAIError(Exception):
    """No item can succeed until an operator acts: the provider refuses the credentials, the
    account or the model. The batch stops and the run fails, rather than failing every item."""


# The provider's functions, each one call; the ones that write text use the text model.
AI_FUNCTIONS = (
    "cluster_keywords",
    "write_ideas",
    "write_article",
    "write_image_prompts",
    "render_image",
)
IMAGE_FUNCTIONS = frozenset({"render_image"})
# Each function's operation, named as OpenTelemetry's GenAI semantic conventions name them
# (gen_ai.operation.name, in spans and metrics); the rest are chat calls.
OPERATIONS = {"render_image": "generate_content"}
# The function each AI stage calls.
STAGE_FUNCTIONS = {
    1: "cluster_keywords",
    2: "write_ideas",
    4: "write_article",
    5: "write_image_prompts",
    6: "render_image",
}


class AIProvider(Protocol):
    """What the stages ask of the AI: drafts. The gate (stage_workers.gate) stands between this
    and a `Provider`: it admits each call, retries, waits out outages and records usage."""

    async def cluster_keywords(self, keywords: list[str]) -> list[ClusterDraft]: ...

    async def write_ideas(self, cluster_name: str, keywords: list[str]) -> list[IdeaDraft]: ...

    async def write_article(self, title: str, brief: str, keywords: list[str]) -> ArticleDraft: ...

    async def write_image_prompts(self, title: str, body: str) -> list[PromptDraft]: ...

    async def render_image(self, prompt: str) -> bytes: ...


class Provider(Protocol):
    """One AI provider. Each function makes one call and answers with the draft and its usage,
    or raises RateLimited, ProviderUnavailable, PermanentAIError or FatalAIError; `model_for`
    names the model a function's calls ask for."""

    name: str

    def model_for(self, function: str) -> str: ...

    def estimate_tokens(self, function: str, *args: object) -> int:
        """What a call will count against the tokens-per-minute budget, at most."""

    async def cluster_keywords(self, keywords: list[str]) -> Answer[list[ClusterDraft]]: ...

    async def write_ideas(
        self, cluster_name: str, keywords: list[str]
    ) -> Answer[list[IdeaDraft]]: ...

    async def write_article(
        self, title: str, brief: str, keywords: list[str]
    ) -> Answer[ArticleDraft]: ...

    async def write_image_prompts(self, title: str, body: str) -> Answer[list[PromptDraft]]: ...

    async def render_image(self, prompt: str) -> Answer[bytes]: ...
