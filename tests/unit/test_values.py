"""Progress figures shared by the log-sink's lines and the gateway's answers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from contracts.values import percentage, seconds_between

T0 = datetime(2026, 3, 4, 10, tzinfo=UTC)


def test_percentage_is_the_settled_share_to_one_decimal():
    assert percentage(1, 3) == 33.3
    assert percentage(2, 5) == 40.0
    assert percentage(7, 5) == 100.0  # a redelivered count never reads past 100


def test_an_empty_stage_reads_zero_until_it_finishes():
    assert percentage(0, 0) == 0.0
    assert percentage(0, 0, finished=True) == 100.0


def test_seconds_between_needs_both_ends():
    assert seconds_between(T0, T0 + timedelta(milliseconds=1500, microseconds=400)) == 1.5
    assert seconds_between(None, T0) is None
    assert seconds_between(T0, None) is None
