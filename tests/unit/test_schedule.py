"""Slot maths (contracts.schedule): frequencies, time zones, DST, the look-back window."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfoNotFoundError

import pytest

from contracts.schedule import due_slot, latest_slot, next_slot, scheduled_run_id


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


@pytest.mark.parametrize(
    ("frequency", "now", "latest", "following"),
    [
        ("daily", utc(2026, 3, 4, 10), utc(2026, 3, 4, 2), utc(2026, 3, 5, 2)),
        ("daily", utc(2026, 3, 4, 1, 59), utc(2026, 3, 3, 2), utc(2026, 3, 4, 2)),
        ("daily", utc(2026, 3, 4, 2), utc(2026, 3, 4, 2), utc(2026, 3, 5, 2)),
        # 2026-03-02 is a Monday.
        ("weekly", utc(2026, 3, 4, 10), utc(2026, 3, 2, 2), utc(2026, 3, 9, 2)),
        ("weekly", utc(2026, 3, 2, 1), utc(2026, 2, 23, 2), utc(2026, 3, 2, 2)),
        ("monthly", utc(2026, 3, 15, 10), utc(2026, 3, 1, 2), utc(2026, 4, 1, 2)),
        ("monthly", utc(2026, 3, 1, 1), utc(2026, 2, 1, 2), utc(2026, 3, 1, 2)),
        ("monthly", utc(2026, 12, 31, 23), utc(2026, 12, 1, 2), utc(2027, 1, 1, 2)),
    ],
)
def test_slots_in_utc(frequency, now, latest, following):
    assert latest_slot(now, frequency, "02:00", "UTC") == latest
    assert next_slot(now, frequency, "02:00", "UTC") == following


def test_weekly_is_on_mondays_and_monthly_on_the_first():
    for week in range(8):
        slot = next_slot(
            utc(2026, 1, 1) + week * (utc(2026, 1, 8) - utc(2026, 1, 1)), "weekly", "09:30", "UTC"
        )
        assert slot.weekday() == 0 and (slot.hour, slot.minute) == (9, 30)
    slot = utc(2026, 1, 1)
    for _ in range(14):
        slot = next_slot(slot, "monthly", "00:00", "UTC")
        assert slot.day == 1 and slot.hour == 0


def test_the_site_time_zone_moves_the_slot_with_daylight_saving():
    winter = latest_slot(utc(2026, 1, 15, 20), "daily", "09:00", "America/New_York")
    summer = latest_slot(utc(2026, 7, 15, 20), "daily", "09:00", "America/New_York")
    assert winter == utc(2026, 1, 15, 14)
    assert summer == utc(2026, 7, 15, 13)


def test_a_time_skipped_by_spring_forward_runs_an_hour_later():
    # Berlin jumps from 02:00 to 03:00 on 2026-03-29: 02:30 does not exist that day.
    slot = next_slot(utc(2026, 3, 28, 12), "daily", "02:30", "Europe/Berlin")
    assert slot == utc(2026, 3, 29, 1, 30)  # 03:30 CEST
    assert next_slot(slot, "daily", "02:30", "Europe/Berlin") == utc(2026, 3, 30, 0, 30)


def test_a_time_repeated_by_fall_back_runs_once_at_the_first():
    # Berlin goes from 03:00 back to 02:00 on 2026-10-25: 02:30 happens twice.
    slot = next_slot(utc(2026, 10, 24, 12), "daily", "02:30", "Europe/Berlin")
    assert slot == utc(2026, 10, 25, 0, 30)
    assert next_slot(slot, "daily", "02:30", "Europe/Berlin") == utc(2026, 10, 26, 1, 30)


def test_the_local_monday_counts_not_the_utc_one():
    # 01:00 Monday in Auckland (UTC+13 in March) is Sunday noon in UTC.
    now = utc(2026, 3, 1, 13)  # Sunday in UTC, Monday 02:00 in Auckland
    assert latest_slot(now, "weekly", "01:00", "Pacific/Auckland") == utc(2026, 3, 1, 12)


def test_due_only_within_the_look_back_window():
    now = utc(2026, 3, 4, 2, 30)
    assert due_slot(now, "daily", "02:00", "UTC", 3600) == utc(2026, 3, 4, 2)
    assert due_slot(now, "daily", "02:00", "UTC", 1200) is None


def test_a_site_enabled_mid_month_does_not_backfill_the_monthly_slot():
    assert due_slot(utc(2026, 3, 15, 10), "monthly", "02:00", "UTC", 3600) is None


def test_an_unknown_frequency_or_zone_is_an_error():
    with pytest.raises(ValueError):
        latest_slot(utc(2026, 3, 4), "hourly", "02:00", "UTC")
    with pytest.raises(ZoneInfoNotFoundError):
        latest_slot(utc(2026, 3, 4), "daily", "02:00", "Mars/Olympus")


def test_scheduled_run_ids_name_the_slot_and_are_stable():
    slot = utc(2026, 3, 4, 2)
    run_id = scheduled_run_id(17, slot)
    assert re.fullmatch(r"run_20260304_020000_scheduled_[0-9a-f]{6}", run_id)
    assert scheduled_run_id(17, slot) == run_id
    assert scheduled_run_id(18, slot) != run_id


WEDNESDAY = utc(2026, 3, 4, 10)


@pytest.mark.parametrize(
    ("frequency", "time", "zone", "expected"),
    [
        ("daily", "11:30", "UTC", utc(2026, 3, 4, 11, 30)),
        ("daily", "09:00", "UTC", utc(2026, 3, 5, 9, 0)),
        ("weekly", "02:00", "UTC", utc(2026, 3, 9, 2, 0)),
        ("monthly", "02:00", "UTC", utc(2026, 4, 1, 2, 0)),
        ("daily", "11:30", "Europe/Berlin", utc(2026, 3, 4, 10, 30)),
    ],
)
def test_next_slot_in_the_sites_zone(frequency, time, zone, expected):
    assert next_slot(WEDNESDAY, frequency, time, zone) == expected


@pytest.mark.parametrize("slot_of", [next_slot, latest_slot])
def test_an_unknown_frequency_is_an_error_not_daily(slot_of):
    with pytest.raises(ValueError, match="unknown frequency 'hourly'"):
        slot_of(WEDNESDAY, "hourly", "02:00", "UTC")
