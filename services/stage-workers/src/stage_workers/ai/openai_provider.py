"""The OpenAI provider (or any OpenAI-compatible server): chat completions with JSON-schema
answers, plain text for articles, the images API for pictures. Each function is one HTTP call
that answers with its draft, the usage the provider counted and what its rate-limit headers
said. The SDK's own retries are off: the gate (stage_workers.gate) decides what happens next.
A call is also data (`request`, `read`): an economy run sends the same bodies in a provider
batch and reads the answers from its output file the same way."""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import openai
from openai import AsyncOpenAI
from openai.types import ImagesResponse
from openai.types.chat import ChatCompletion

from stage_workers.ai.advice import RateLimitAdvice
from stage_workers.ai.base import (
    IMAGE_FUNCTIONS,
    Answer,
    ArticleDraft,
    ClusterDraft,
    FatalAIError,
    IdeaDraft,
    PermanentAIError,
    PromptDraft,
    ProviderUnavailable,
    RateLimited,
    Usage,
)

UNAVAILABLE = (openai.APITimeoutError, openai.APIConnectionError)
# The key, the account or the model is wrong: every other call would fail the same way.
FATAL = (openai.AuthenticationError, openai.PermissionDeniedError, openai.NotFoundError)
# Statuses that say "not now" rather than "not this": a request timeout, a conflict, 5xx.
RETRYABLE_STATUSES = frozenset({408, 409})
# The most each function may write, in tokens: bounds the cost of a call, and is what a call
# counts against the tokens-per-minute budget besides its prompt.
MAX_OUTPUT_TOKENS = {
    "cluster_keywords": 2000,
    "write_ideas": 1000,
    "write_article": 3000,
    "write_image_prompts": 1000,
}
IMAGE_SIZE = "1024x1024"
IMAGE_TOKENS = 300  # what an image request counts against a tokens budget, roughly


def classify(error: openai.OpenAIError) -> Exception:
    if isinstance(error, openai.RateLimitError):
        if _code(error) == "insufficient_quota":  # the account is out of money, not of pace
            return FatalAIError(f"RateLimitError: {error}")
        advice = RateLimitAdvice.from_headers(error.response.headers, datetime.now(UTC))
        return RateLimited(f"RateLimitError: {error}", advice)
    if isinstance(error, UNAVAILABLE):
        return ProviderUnavailable(f"{type(error).__name__}: {error}")
    if isinstance(error, FATAL):
        return FatalAIError(f"{type(error).__name__}: {error}")
    status = getattr(error, "status_code", None)
    if isinstance(status, int) and (status >= 500 or status in RETRYABLE_STATUSES):
        return ProviderUnavailable(f"HTTP {status}: {error}")
    return PermanentAIError(f"{type(error).__name__}: {error}")


def _code(error: openai.APIStatusError) -> str | None:
    body = error.body if isinstance(error.body, dict) else {}
    return body.get("code") or (body.get("error") or {}).get("code")


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


CHAT = "/v1/chat/completions"
IMAGES = "/v1/images/generations"


@dataclass(frozen=True)
class Request:
    """One call as data: the endpoint and the body sent to it. A call made alone sends it; an
    economy run puts it, as one line, into a file for the provider's batch interface."""

    endpoint: str
    body: dict[str, Any]


def _text(function: str, args: tuple) -> tuple[str, dict | None]:
    """The prompt of a text function, and the JSON schema its answer must follow (if any)."""
    match function, args:
        case "cluster_keywords", (keywords,):
            listing = "\n".join(f"{i}: {k}" for i, k in enumerate(keywords))
            return (
                "Group these search keywords into topical clusters. Every index belongs to "
                f"exactly one cluster.\n{listing}",
                CLUSTERS_FORMAT,
            )
        case "write_ideas", (cluster_name, keywords):
            return (
                f"Propose 3 article ideas for the topic '{cluster_name}' covering these "
                f"keywords: {', '.join(keywords)}.",
                IDEAS_FORMAT,
            )
        case "write_article", (title, brief, keywords):
            return (
                f"Write an article of 800-1200 words in Markdown titled '{title}'. Brief: "
                f"{brief}. Use these keywords naturally: {', '.join(keywords)}. Use ## section "
                "headings.",
                None,
            )
        case "write_image_prompts", (title, body):
            return (
                "Write 4 image prompts for this article: 1 featured image and 3 in-article "
                f"images.\nTitle: {title}\n\n{body[:4000]}",
                PROMPTS_FORMAT,
            )
    raise ValueError(f"no prompt for {function}")


def _draft(function: str, args: tuple, content: str) -> Any:
    """A text function's draft from the model's answer."""
    if function == "write_article":
        return ArticleDraft(title=args[0], markdown=content)
    try:
        document = json.loads(content)
    except json.JSONDecodeError as error:
        raise PermanentAIError(f"answer is not JSON: {error}") from None
    if not isinstance(document, dict):
        raise PermanentAIError("answer is not a JSON object")
    match function:
        case "cluster_keywords":
            return _clusters_from(document, len(args[0]))
        case "write_ideas":
            return [IdeaDraft(i["title"], i["outline"]) for i in document.get("ideas", [])]
        case _:
            return [PromptDraft(p["kind"], p["prompt"]) for p in document.get("prompts", [])]


class OpenAIProvider:
    name = "openai"

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

    def model_for(self, function: str) -> str:
        return self.image_model if function in IMAGE_FUNCTIONS else self.text_model

    def estimate_tokens(self, function: str, *args: object) -> int:
        if function in IMAGE_FUNCTIONS:
            return IMAGE_TOKENS
        prompt_chars = sum(len(" ".join(a) if isinstance(a, list) else str(a)) for a in args)
        return math.ceil(prompt_chars / 4) + 100 + MAX_OUTPUT_TOKENS[function]

    def request(self, function: str, args: tuple) -> Request:
        if function in IMAGE_FUNCTIONS:
            # The DALL-E models answer with a URL unless asked; the GPT image models always
            # give base64 and refuse the parameter.
            b64 = {"response_format": "b64_json"} if self.image_model.startswith("dall-e") else {}
            body = {"model": self.image_model, "prompt": args[0], "n": 1, "size": IMAGE_SIZE}
            return Request(IMAGES, body | b64)
        prompt, response_format = _text(function, args)
        body = {
            "model": self.text_model,
            "messages": [{"role": "user", "content": prompt}],
            "max_completion_tokens": MAX_OUTPUT_TOKENS[function],
        }
        return Request(
            CHAT, body | ({"response_format": response_format} if response_format else {})
        )

    def read(self, function: str, args: tuple, response: dict[str, Any]) -> Answer:
        """The answer in a response body (a line of a provider batch's output file)."""
        if function in IMAGE_FUNCTIONS:
            return self._image_answer(ImagesResponse.model_validate(response))
        return self._chat_answer(function, args, ChatCompletion.model_validate(response))

    async def _send(self, function: str, args: tuple) -> Answer:
        request = self.request(function, args)
        try:
            if request.endpoint == IMAGES:
                raw: Any = await self.client.images.with_raw_response.generate(**request.body)
            else:
                raw = await self.client.chat.completions.with_raw_response.create(**request.body)
            parsed = raw.parse()
        except openai.OpenAIError as error:
            raise classify(error) from error
        if request.endpoint == IMAGES:
            answer = self._image_answer(parsed)
        else:
            answer = self._chat_answer(function, args, parsed)
        return replace(answer, advice=_advice(raw.headers))

    def _chat_answer(self, function: str, args: tuple, completion: Any) -> Answer:
        content = completion.choices[0].message.content if completion.choices else None
        if not content:
            raise PermanentAIError("the model returned no content")
        finished = tuple(c.finish_reason for c in completion.choices if c.finish_reason)
        draft = _draft(function, args, content)
        return Answer(draft, _chat_usage(completion), None, finished)

    def _image_answer(self, result: Any) -> Answer[bytes]:
        if not result.data or not result.data[0].b64_json:
            raise PermanentAIError("the images API returned no picture")
        usage = getattr(result, "usage", None)
        return Answer(
            base64.b64decode(result.data[0].b64_json),
            Usage(
                self.image_model,
                input_tokens=getattr(usage, "input_tokens", 0) or 0,
                output_tokens=getattr(usage, "output_tokens", 0) or 0,
                images=len(result.data),
                image_size=IMAGE_SIZE,
            ),
        )

    async def cluster_keywords(self, keywords: list[str]) -> Answer[list[ClusterDraft]]:
        return await self._send("cluster_keywords", (keywords,))

    async def write_ideas(self, cluster_name: str, keywords: list[str]) -> Answer[list[IdeaDraft]]:
        return await self._send("write_ideas", (cluster_name, keywords))

    async def write_article(
        self, title: str, brief: str, keywords: list[str]
    ) -> Answer[ArticleDraft]:
        return await self._send("write_article", (title, brief, keywords))

    async def write_image_prompts(self, title: str, body: str) -> Answer[list[PromptDraft]]:
        return await self._send("write_image_prompts", (title, body))

    async def render_image(self, prompt: str) -> Answer[bytes]:
        return await self._send("render_image", (prompt,))


def _chat_usage(completion: Any) -> Usage:
    usage = completion.usage
    details = getattr(usage, "prompt_tokens_details", None) if usage else None
    return Usage(
        completion.model or "",
        input_tokens=getattr(usage, "prompt_tokens", 0) or 0,
        output_tokens=getattr(usage, "completion_tokens", 0) or 0,
        cached_tokens=getattr(details, "cached_tokens", 0) or 0,
    )


def _advice(headers: Any) -> RateLimitAdvice:
    return RateLimitAdvice.from_headers(headers, datetime.now(UTC))


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
