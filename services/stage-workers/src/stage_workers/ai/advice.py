"""What a provider's response headers say about its rate limits, read defensively: every header
is optional, and some OpenAI-compatible servers send -1 or nothing at all.

OpenAI sends `retry-after-ms` and `retry-after` with a 429, and on every answer
`x-ratelimit-{limit,remaining,reset}-{requests,tokens}`, the resets as Go-style durations
("1s", "6m0s", "20ms").
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime

_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|us|µs|ns|h|m|s)")


def parse_duration(text: str | None) -> float | None:
    """Seconds in "1h2m3.5s", "20ms", "6m0s" or a bare number of seconds; None when absent,
    negative or unreadable."""
    if text is None:
        return None
    text = text.strip()
    try:
        seconds = float(text)
    except ValueError:
        parts = _PART.findall(text)
        if not parts or "".join(n + u for n, u in parts) != text:
            return None
        seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)
    return seconds if seconds >= 0 else None


def _count(text: str | None) -> int | None:
    try:
        value = int(float(text)) if text is not None else None
    except ValueError:
        return None
    return value if value is not None and value >= 0 else None


def _retry_after(headers: Mapping[str, str], now: datetime) -> float | None:
    ms = _count(headers.get("retry-after-ms"))
    if ms is not None:
        return ms / 1000
    text = headers.get("retry-after")
    seconds = parse_duration(text)
    if seconds is not None or text is None:
        return seconds
    try:  # an HTTP date
        return max((parsedate_to_datetime(text) - now).total_seconds(), 0.0)
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class RateLimitAdvice:
    retry_after: float | None = None  # seconds
    limit_requests: int | None = None
    limit_tokens: int | None = None
    remaining_requests: int | None = None
    remaining_tokens: int | None = None
    reset_requests: float | None = None  # seconds until the request budget is full again
    reset_tokens: float | None = None

    @classmethod
    def from_headers(cls, headers: Mapping[str, str], now: datetime) -> RateLimitAdvice:
        """`headers` as httpx gives them (case-insensitive)."""
        return cls(
            retry_after=_retry_after(headers, now),
            limit_requests=_count(headers.get("x-ratelimit-limit-requests")),
            limit_tokens=_count(headers.get("x-ratelimit-limit-tokens")),
            remaining_requests=_count(headers.get("x-ratelimit-remaining-requests")),
            remaining_tokens=_count(headers.get("x-ratelimit-remaining-tokens")),
            reset_requests=parse_duration(headers.get("x-ratelimit-reset-requests")),
            reset_tokens=parse_duration(headers.get("x-ratelimit-reset-tokens")),
        )

    def cool_down(self, default: float) -> float:
        """After a 429, how long the provider + model should rest: its own retry-after first;
        else the reset of whichever budget it says is spent; else `default`."""
        if self.retry_after is not None:
            return self.retry_after
        spent = [
            reset
            for remaining, reset in (
                (self.remaining_requests, self.reset_requests),
                (self.remaining_tokens, self.reset_tokens),
            )
            if remaining == 0 and reset is not None
        ]
        return max(spent) if spent else default

    def exhausted_for(self) -> float | None:
        """On a successful answer: how long a budget the provider says is spent stays spent,
        or None when it has room (or said nothing)."""
        spent = self.cool_down(default=-1.0) if self.retry_after is None else None
        return spent if spent is not None and spent > 0 else None
