"""Retries for AI calls: transient errors back off exponentially, a fatal one (FatalAIError)
stops the batch, anything else poisons the item."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import (
    AsyncRetrying,
    RetryError,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from stage_workers.ai.base import FatalAIError, TransientAIError
from stage_workers.metrics import count_ai_retry

T = TypeVar("T")


class PoisonedItem(Exception):
    """The AI could not do this item: a permanent error, or transient ones until we gave up."""

    def __init__(self, error: str, attempts: int) -> None:
        super().__init__(error)
        self.error = error
        self.attempts = attempts


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 4
    first_wait_seconds: float = 0.5
    max_wait_seconds: float = 8.0
    call_timeout_seconds: float = 120.0


async def with_retries(policy: RetryPolicy, call: Callable[[], Awaitable[T]]) -> T:
    attempts = 0

    async def one_attempt() -> T:
        nonlocal attempts
        attempts += 1
        try:
            async with asyncio.timeout(policy.call_timeout_seconds):
                return await call()
        except TimeoutError as error:
            raise TransientAIError(f"no answer within {policy.call_timeout_seconds} s") from error

    retrying = AsyncRetrying(
        retry=retry_if_exception_type(TransientAIError),
        stop=stop_after_attempt(policy.max_attempts),
        wait=wait_exponential(multiplier=policy.first_wait_seconds, max=policy.max_wait_seconds),
        before_sleep=count_ai_retry,
    )
    try:
        return await retrying(one_attempt)
    except RetryError as error:
        last = error.last_attempt.exception()
        raise PoisonedItem(f"gave up after {attempts} attempts: {last}", attempts) from last
    except FatalAIError:
        raise
    except Exception as error:
        raise PoisonedItem(str(error) or type(error).__name__, attempts) from error
