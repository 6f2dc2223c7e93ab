"""Reading a provider's rate-limit headers: every format OpenAI uses, and each header absent,
-1 or unreadable, as OpenAI-compatible servers send them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from stage_workers.ai.advice import RateLimitAdvice, parse_duration

NOW = datetime(2026, 12, 6, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1s", 1.0),
        ("6m0s", 360.0),
        ("20ms", 0.02),
        ("1m30.5s", 90.5),
        ("1h2m3s", 3723.0),
        ("0.5", 0.5),
        ("12", 12.0),
        ("0s", 0.0),
    ],
)
def test_durations_in_every_format_openai_sends(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", [None, "-1", "-3s", "soon", "", "1x", "s"])
def test_absent_negative_or_unreadable_durations_are_none(text):
    assert parse_duration(text) is None


def test_a_full_set_of_headers():
    advice = RateLimitAdvice.from_headers(
        {
            "retry-after-ms": "250",
            "retry-after": "1",
            "x-ratelimit-limit-requests": "300",
            "x-ratelimit-limit-tokens": "150000",
            "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-remaining-tokens": "149000",
            "x-ratelimit-reset-requests": "200ms",
            "x-ratelimit-reset-tokens": "6m0s",
        },
        NOW,
    )
    assert advice.retry_after == 0.25  # the finer one wins
    assert (advice.limit_requests, advice.limit_tokens) == (300, 150000)
    assert (advice.remaining_requests, advice.remaining_tokens) == (0, 149000)
    assert (advice.reset_requests, advice.reset_tokens) == (0.2, 360.0)
    assert advice.cool_down(default=9) == 0.25


def test_retry_after_in_seconds_or_as_an_http_date():
    assert RateLimitAdvice.from_headers({"retry-after": "3"}, NOW).retry_after == 3
    dated = RateLimitAdvice.from_headers({"retry-after": "Sun, 06 Dec 2026 12:00:05 GMT"}, NOW)
    assert dated.retry_after == 5


def test_no_headers_at_all_cool_for_the_default():
    advice = RateLimitAdvice.from_headers({}, NOW)
    assert advice == RateLimitAdvice()
    assert advice.cool_down(default=1.5) == 1.5
    assert advice.exhausted_for() is None


def test_minus_one_everywhere_reads_as_nothing_said():
    names = [
        "retry-after-ms",
        "retry-after",
        "x-ratelimit-limit-requests",
        "x-ratelimit-remaining-requests",
        "x-ratelimit-remaining-tokens",
        "x-ratelimit-reset-requests",
        "x-ratelimit-reset-tokens",
    ]
    advice = RateLimitAdvice.from_headers(dict.fromkeys(names, "-1"), NOW)
    assert advice == RateLimitAdvice()


def test_without_retry_after_a_429_rests_until_the_spent_budget_resets():
    advice = RateLimitAdvice.from_headers(
        {
            "x-ratelimit-remaining-requests": "4",
            "x-ratelimit-reset-requests": "1s",
            "x-ratelimit-remaining-tokens": "0",
            "x-ratelimit-reset-tokens": "7s",
        },
        NOW,
    )
    assert advice.cool_down(default=1) == 7  # the token budget is the spent one


def test_an_answer_that_spends_the_last_request_says_how_long_to_hold_back():
    spent = RateLimitAdvice.from_headers(
        {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "2s"}, NOW
    )
    assert spent.exhausted_for() == 2
    room = RateLimitAdvice.from_headers(
        {"x-ratelimit-remaining-requests": "3", "x-ratelimit-reset-requests": "2s"}, NOW
    )
    assert room.exhausted_for() is None
