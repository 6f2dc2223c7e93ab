"""What follows an attempt: delivered, tried again at a time, given up, or the endpoint disabled.

Attempts go at once, then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h after the one before: 8
in all over about 27.6 hours. Delivered is a 2xx within the attempt's timeout. 410 Gone disables
the endpoint. A 429's `Retry-After` is honoured up to the schedule's longest step. An endpoint
failing for 5 days is disabled. Pure: the time and the answer are given.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Literal

SCHEDULE: tuple[timedelta, ...] = (
    timedelta(0),
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=10),
)
"""SCHEDULE[n - 1] is the wait before attempt n, after attempt n - 1 failed."""
MAX_ATTEMPTS = len(SCHEDULE)
LONGEST_WAIT = max(SCHEDULE)
CONNECT_TIMEOUT = timedelta(seconds=5)
ATTEMPT_TIMEOUT = timedelta(seconds=15)  # a 2xx later than this is not a delivery
FAILING_LIMIT = timedelta(days=5)
MOST_SECONDS = 10**9  # a Retry-After past this is read as this (timedelta has a limit)
GONE = 410
TOO_MANY_REQUESTS = 429


@dataclass(frozen=True)
class Answer:
    """What an attempt got: an HTTP status, or None when no answer came in time (timeout,
    refused connection or address, TLS error; `error` says which)."""

    status: int | None
    retry_after: str | None = None
    error: str | None = None

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass(frozen=True)
class Next:
    """The delivery's state after an attempt, and the endpoint's."""

    delivery: Literal["delivered", "pending", "failed"]
    next_attempt_at: datetime | None  # set when pending
    failing_since: datetime | None  # the endpoint's, after this attempt
    disable: str | None = None  # why the endpoint is disabled, when it is
    reason: str | None = None  # why the delivery failed, when it did


def after_attempt(
    attempt: int, answer: Answer, now: datetime, failing_since: datetime | None
) -> Next:
    """`attempt` is the number of the attempt just made (1 for the first)."""
    if attempt < 1:
        raise ValueError("attempts are numbered from 1")
    if answer.delivered:
        return Next("delivered", None, failing_since=None)
    failing_since = failing_since or now
    if answer.status == GONE:
        why = "the endpoint answered 410 Gone"
        return Next("failed", None, failing_since, disable=why, reason=why)
    if now - failing_since >= FAILING_LIMIT:
        why = f"the endpoint has failed every attempt since {failing_since.isoformat()}"
        return Next("failed", None, failing_since, disable=why, reason=why)
    if attempt >= MAX_ATTEMPTS:
        why = f"no attempt of {MAX_ATTEMPTS} was delivered"
        return Next("failed", None, failing_since, reason=why)
    wait = SCHEDULE[attempt]
    if answer.status == TOO_MANY_REQUESTS:
        asked = retry_after(answer.retry_after, now)
        if asked is not None:
            wait = max(wait, min(asked, LONGEST_WAIT))
    return Next("pending", now + wait, failing_since)


def retry_after(value: str | None, now: datetime) -> timedelta | None:
    """A `Retry-After` header as a wait: delta-seconds or an HTTP date; None when absent or
    unreadable, zero for a time already past."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return timedelta(seconds=min(int(value), MOST_SECONDS))
    try:
        at = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if at.tzinfo is None:  # "-0000" means UTC with no zone known; HTTP dates are GMT
        at = at.replace(tzinfo=UTC)
    return max(at - now, timedelta(0))
