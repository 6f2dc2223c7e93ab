"""The OpenAI provider: chat completions with JSON-schema answers, plain text for articles, the
images API for pictures. The SDK's own retries are off; the worker retries (see retry.py)."""

from __future__ import annotations

import base64
import json
from typing import Any

import openai
from openai import AsyncOpenAI

from stage_workers.ai.base import (
    ArticleDraft,
    ClusterDraft,
    FatalAIError,
    IdeaDraft,
    PermanentAIError,
    PromptDraft,
    TransientAIError,
)

TRANSIENT = (openai.APITimeoutError, openai.APIConnectionError, openai.RateLimitError)
# The key, the account or the model is wrong: every other call would fail the same way.
FATAL = (openai.AuthenticationError, openai.PermissionDeniedError, openai.NotFoundError)


def classify(error: openai.OpenAIError) -> Exception:
    if isinstance(error, TRANSIENT):
        return TransientAIError(f"{type(error).__name__}: {error}")
    if isinstance(error, FATAL):
        return FatalAIError(f"{type(error).__name__}: {error}")
    status = getattr(error, "status_code", None)
    if isinstance(status, int) and status >= 500:
        return TransientAIError(f"HTTP {status}: {error}")
    return PermanentAIError(f"{type(error).__name__}: {error}")


def _schema(name: str, properties: dict[str, Any], required: list[str]) -> dict:
    return {
        "type": "json_schema",
        "json_schema": {
            "name": name,
            "strict": True,
            "schema": {
                "type": "object",
                "properties": properties,
                "required": required,
                "additionalProperties": False,
            },
        },
    }


def _list_of(item_properties: dict[str, Any]) -> dict:
    return {
        "type": "array",
        "items": {
            "type": "object",
            "properties": item_properties,
            "required": list(item_properties),
            "additionalProperties": False,
        },
    }


CLUSTERS_FORMAT = _schema(
    "keyword_clusters",
    {
        "clusters": _list_of(
            {
                "name": {"type": "string"},
                "description": {"type": "string"},
                "keyword_indexes": {"type": "array", "items": {"type": "integer"}},
            }
        )
    },
    ["clusters"],
)
IDEAS_FORMAT = _schema(
    "content_ideas",
    {"ideas": _list_of({"title": {"type": "string"}, "outline": {"type": "string"}})},
    ["ideas"],
)
PROMPTS_FORMAT = _schema(
    "image_prompts",
    {
        "prompts": _list_of(
            {
                "kind": {"type": "string", "enum": ["featured", "in_article"]},
                "prompt": {"type": "string"},
            }
        )
    },
    ["prompts"],
)


class OpenAIProvider:
    def __init__(
        self,
        *,
        base_url: str | None,
        api_key: str,
        text_model: str,
        image_model: str,
        timeout_seconds: float,
    ) -> None:
        self.client = AsyncOpenAI(
            base_url=base_url, api_key=api_key, timeout=timeout_seconds, max_retries=0
        )
        self.text_model = text_model
        self.image_model = image_model

    async def _chat(self, prompt: str, response_format: dict | None = None) -> str:
        kwargs = {"response_format": response_format} if response_format else {}
        try:
            completion = await self.client.chat.completions.create(
                model=self.text_model,
                messages=[{"role": "user", "content": prompt}],
                **kwargs,
            )
        except openai.OpenAIError as error:
            raise classify(error) from error
        content = completion.choices[0].message.content if completion.choices else None
        if not content:
            raise PermanentAIError("the model returned no content")
        return content

    async def _chat_json(self, prompt: str, response_format: dict) -> dict:
        text = await self._chat(prompt, response_format)
        try:
            return json.loads(text)
        except json.JSONDecodeError as error:
            raise PermanentAIError(f"answer is not JSON: {error}") from None

    async def cluster_keywords(self, keywords: list[str]) -> list[ClusterDraft]:
        listing = "\n".join(f"{i}: {k}" for i, k in enumerate(keywords))
        answer = await self._chat_json(
            "Group these search keywords into topical clusters. Every index belongs to exactly "
            f"one cluster.\n{listing}",
            CLUSTERS_FORMAT,
        )
        return _clusters_from(answer, len(keywords))

    async def write_ideas(self, cluster_name: str, keywords: list[str]) -> list[IdeaDraft]:
        answer = await self._chat_json(
            f"Propose 3 article ideas for the topic '{cluster_name}' covering these keywords: "
            f"{', '.join(keywords)}.",
            IDEAS_FORMAT,
        )
        return [IdeaDraft(i["title"], i["outline"]) for i in answer.get("ideas", [])]

    async def write_article(self, title: str, brief: str, keywords: list[str]) -> ArticleDraft:
        text = await self._chat(
            f"Write an article of 800-1200 words in Markdown titled '{title}'. Brief: {brief}. "
            f"Use these keywords naturally: {', '.join(keywords)}. Use ## section headings."
        )
        return ArticleDraft(title=title, markdown=text)

    async def write_image_prompts(self, title: str, body: str) -> list[PromptDraft]:
        answer = await self._chat_json(
            "Write 4 image prompts for this article: 1 featured image and 3 in-article images."
            f"\nTitle: {title}\n\n{body[:4000]}",
            PROMPTS_FORMAT,
        )
        return [PromptDraft(p["kind"], p["prompt"]) for p in answer.get("prompts", [])]

    async def render_image(self, prompt: str) -> bytes:
        try:
            result = await self.client.images.generate(
                model=self.image_model, prompt=prompt, n=1, response_format="b64_json"
            )
        except openai.OpenAIError as error:
            raise classify(error) from error
        if not result.data or not result.data[0].b64_json:
            raise PermanentAIError("the images API returned no picture")
        return base64.b64decode(result.data[0].b64_json)


def _clusters_from(answer: dict, count: int) -> list[ClusterDraft]:
    """Keep the model honest: indexes in range, each keyword in one cluster, none left out."""
    seen: set[int] = set()
    drafts = []
    for raw in answer.get("clusters", []):
        members = tuple(
            i for i in raw.get("keyword_indexes", []) if 0 <= i < count and i not in seen
        )
        seen.update(members)
        if members:
            drafts.append(
                ClusterDraft(raw.get("name", "Cluster"), raw.get("description", ""), members)
            )
    drafts += [ClusterDraft("Other", "", (i,)) for i in range(count) if i not in seen]
    return drafts
