"""The retry schedule: 8 attempts over about 27.6 hours, a 2xx ends it, 410 disables the
endpoint, a 429's Retry-After is honoured up to the longest step, an endpoint failing for 5
days is disabled."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest

from api_gateway.webhooks.retry import (
    LONGEST_WAIT,
    MAX_ATTEMPTS,
    SCHEDULE,
    Answer,
    after_attempt,
    retry_after,
)

T0 = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
FAILED = Answer(status=503)
NO_ANSWER = Answer(status=None, error="timed out after 15 s")


def test_the_schedule_is_the_issues():
    waits = [int(w.total_seconds()) for w in SCHEDULE]
    assert waits == [0, 5, 300, 1800, 7200, 18000, 36000, 36000]
    total = sum(SCHEDULE, timedelta(0))
    assert timedelta(hours=27) < total < timedelta(hours=28)  # "about a day and a half"


def test_a_receiver_that_never_answers_gets_eight_attempts_then_the_delivery_fails():
    now, since, attempts = T0, None, []
    for attempt in range(1, MAX_ATTEMPTS + 1):
        attempts.append(now)
        step = after_attempt(attempt, NO_ANSWER, now, since)
        since = step.failing_since
        if step.delivery != "pending":
            break
        now = step.next_attempt_at
    assert step.delivery == "failed" and step.disable is None
    assert step.reason == "no attempt of 8 was delivered"
    assert [b - a for a, b in pairwise(attempts)] == list(SCHEDULE[1:])
    assert since == T0  # the endpoint has been failing since the first attempt


def test_fails_three_times_then_succeeds():
    step = after_attempt(1, FAILED, T0, None)
    assert (step.delivery, step.next_attempt_at, step.failing_since) == (
        "pending",
        T0 + timedelta(seconds=5),
        T0,
    )
    step = after_attempt(2, Answer(500), step.next_attempt_at, step.failing_since)
    assert step.next_attempt_at == T0 + timedelta(seconds=5 + 300)
    step = after_attempt(3, Answer(404), step.next_attempt_at, step.failing_since)
    assert step.next_attempt_at == T0 + timedelta(seconds=5 + 300 + 1800)
    step = after_attempt(4, Answer(204), step.next_attempt_at, step.failing_since)
    assert step.delivery == "delivered" and step.next_attempt_at is None
    assert step.failing_since is None  # a success clears the endpoint's failing clock


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
def test_any_2xx_is_delivered(status: int):
    assert after_attempt(1, Answer(status), T0, T0 - timedelta(days=4)).delivery == "delivered"


@pytest.mark.parametrize("status", [100, 301, 302, 304, 307, 308, 400, 401, 404, 500, 502])
def test_anything_else_is_retried_redirects_included(status: int):
    step = after_attempt(1, Answer(status), T0, None)
    assert step.delivery == "pending" and step.disable is None


def test_410_disables_the_endpoint_at_once():
    step = after_attempt(1, Answer(410), T0, None)
    assert step.delivery == "failed" and step.next_attempt_at is None
    assert step.disable == "the endpoint answered 410 Gone" == step.reason


def test_an_endpoint_failing_for_five_days_is_disabled():
    since = T0 - timedelta(days=5)
    step = after_attempt(2, FAILED, T0, since)
    assert step.delivery == "failed" and step.failing_since == since
    assert step.disable is not None and since.isoformat() in step.disable
    nearly = after_attempt(2, FAILED, T0 - timedelta(seconds=1), since)
    assert nearly.delivery == "pending" and nearly.disable is None
    # A success just before the limit saves it; the next failure starts the clock anew.
    assert after_attempt(2, Answer(200), T0, since).failing_since is None


def test_a_429_waits_as_long_as_it_asks_but_no_less_than_the_schedule():
    asks_more = after_attempt(1, Answer(429, retry_after="120"), T0, None)
    assert asks_more.next_attempt_at == T0 + timedelta(seconds=120)  # not 5 s
    asks_less = after_attempt(2, Answer(429, retry_after="120"), T0, None)
    assert asks_less.next_attempt_at == T0 + timedelta(minutes=5)
    no_header = after_attempt(1, Answer(429), T0, None)
    assert no_header.next_attempt_at == T0 + timedelta(seconds=5)
    unreadable = after_attempt(1, Answer(429, retry_after="soon"), T0, None)
    assert unreadable.next_attempt_at == T0 + timedelta(seconds=5)


def test_a_429_cannot_park_a_delivery_for_longer_than_the_longest_step():
    week = str(7 * 24 * 3600)
    step = after_attempt(1, Answer(429, retry_after=week), T0, None)
    assert step.next_attempt_at == T0 + LONGEST_WAIT == T0 + timedelta(hours=10)
    huge = after_attempt(1, Answer(429, retry_after="9" * 40), T0, None)
    assert huge.next_attempt_at == T0 + LONGEST_WAIT


def test_a_429_still_counts_as_an_attempt():
    step = after_attempt(MAX_ATTEMPTS, Answer(429, retry_after="1"), T0, None)
    assert step.delivery == "failed"


def test_retry_after_reads_seconds_and_http_dates():
    assert retry_after("0", T0) == timedelta(0)
    assert retry_after(" 30 ", T0) == timedelta(seconds=30)
    assert retry_after("Sun, 06 Dec 2026 12:01:30 GMT", T0) == timedelta(seconds=90)
    assert retry_after("Sun, 06 Dec 2026 11:00:00 GMT", T0) == timedelta(0)  # past: now
    assert retry_after("Sunday, 06-Dec-26 12:00:10 GMT", T0) == timedelta(seconds=10)
    for unreadable in (None, "", "-5", "1.5", "soon", "٣٠", "Sun, 99 Dec 2026 12:00:00 GMT"):
        assert retry_after(unreadable, T0) is None, unreadable


def test_attempts_are_numbered_from_one():
    with pytest.raises(ValueError):
        after_attempt(0, FAILED, T0, None)
