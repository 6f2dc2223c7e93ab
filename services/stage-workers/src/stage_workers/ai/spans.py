"""The span of one AI call, named and attributed as OpenTelemetry's GenAI semantic conventions
say: `chat <model>` (or `generate_content <model>` for an image), kind CLIENT, with
`gen_ai.operation.name`, `gen_ai.provider.name`, `gen_ai.request.model`, and from the answer
`gen_ai.response.model`, `gen_ai.usage.input_tokens`, `gen_ai.usage.output_tokens` and
`gen_ai.response.finish_reasons`.

The span covers the logical call, as the conventions ask: the waits at the gate and every
retry, each attempt an event on it. A call that ends without an answer sets `error.type` to
the name of what ended it (PoisonedItem, FatalAIError, ProviderWaitTooLong, ...).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from contracts import tracing
from contracts.tracing import Span
from stage_workers.ai.base import OPERATIONS, Answer

# What each function asks the model for (gen_ai.output.type); the rest answer JSON.
OUTPUT_TYPES = {"write_article": "text", "render_image": "image"}


@contextlib.contextmanager
def ai_call(function: str, provider: str, model: str) -> Iterator[Span]:
    if not tracing.enabled():
        yield tracing.NO_SPAN
        return
    operation = OPERATIONS.get(function, "chat")
    attributes = {
        "gen_ai.operation.name": operation,
        "gen_ai.provider.name": provider,
        "gen_ai.request.model": model,
        "gen_ai.output.type": OUTPUT_TYPES.get(function, "json"),
        "automation.ai.function": function,
    }
    with tracing.span(
        f"{operation} {model}", kind=tracing.SpanKind.CLIENT, attributes=attributes
    ) as span:
        try:
            yield span
        except BaseException as error:
            span.set_attribute("error.type", type(error).__name__)
            raise


def answered(answer: Answer[Any], provider: str, model: str) -> None:
    """What the answer said, on the call's span: the model that answered, the tokens, why it
    stopped; and the model asked, should the call have gone to a second model."""
    span = tracing.current_span()
    if not span.is_recording():
        return
    usage = answer.usage
    span.set_attributes(
        {
            "gen_ai.provider.name": provider,
            "gen_ai.request.model": model,
            "gen_ai.response.model": usage.model or model,
            "gen_ai.usage.input_tokens": usage.input_tokens,
            "gen_ai.usage.output_tokens": usage.output_tokens,
        }
    )
    if answer.finish_reasons:
        span.set_attribute("gen_ai.response.finish_reasons", list(answer.finish_reasons))


def attempted(outcome: str, attempt: int, waited_ms: int, latency_ms: int) -> None:
    """One try at the provider, as an event of the call's span."""
    span = tracing.current_span()
    if span.is_recording():
        span.add_event(
            "gen_ai.attempt",
            {
                "automation.ai.outcome": outcome,
                "automation.ai.attempt": attempt,
                "automation.ai.waited_ms": waited_ms,
                "automation.ai.latency_ms": latency_ms,
            },
        )


def stored_answer() -> None:
    """The answer came from the journal: a worker that had the unit before already asked. (The
    attribute keeps its published name.)"""
    span = tracing.current_span()
    if span.is_recording():
        span.set_attribute("automation.ai.kept_answer", True)
