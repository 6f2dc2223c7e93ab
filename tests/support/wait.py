"""The one way tests wait: poll a check until it holds, with tenacity, and fail with what was
last seen when time runs out. Never a fixed sleep standing in for a signal."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import (
    AsyncRetrying,
    RetryError,
    Retrying,
    retry_if_exception_type,
    retry_if_result,
    stop_after_delay,
    wait_fixed,
)

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """A condition did not hold in time."""


def _not_yet(result: object) -> bool:
    return not result


def _policy(timeout: float, every: float, retry_on: tuple[type[BaseException], ...]) -> dict:
    retry = retry_if_result(_not_yet)
    if retry_on:
        retry = retry | retry_if_exception_type(retry_on)
    return dict(stop=stop_after_delay(timeout), wait=wait_fixed(every), retry=retry)


def wait_until(
    check: Callable[[], T],
    *,
    timeout: float = 30.0,
    every: float = 0.2,
    what: str = "condition",
    retry_on: tuple[type[BaseException], ...] = (),
) -> T:
    """Call `check` until it returns something truthy, and return that. Exceptions of the
    `retry_on` types count as "not yet"; any other is raised at once."""
    try:
        return Retrying(**_policy(timeout, every, retry_on))(check)
    except RetryError as error:
        raise WaitTimeout(f"timed out after {timeout:g} s waiting for {what}") from error


async def wait_until_async(
    check: Callable[[], Awaitable[T]],
    *,
    timeout: float = 30.0,
    every: float = 0.2,
    what: str = "condition",
    retry_on: tuple[type[BaseException], ...] = (),
) -> T:
    """`wait_until` for a coroutine check, without blocking the event loop between calls."""
    try:
        return await AsyncRetrying(**_policy(timeout, every, retry_on))(check)
    except RetryError as error:
        raise WaitTimeout(f"timed out after {timeout:g} s waiting for {what}") from error
