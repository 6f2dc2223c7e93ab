"""Slot maths for scheduled runs, pure, for every service that needs it (the gateway shows
next_run_at, the scheduler starts runs). A slot is the moment a site's run is due: its
scheduled_time (HH:MM in the site's time zone) on every day (daily), on Mondays (weekly) or on
the 1st (monthly). Slots are computed in the site's zone and compared in UTC. An unknown
frequency is an error, never taken for daily."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from contracts.envelope import deterministic_id
from contracts.values import make_run_id

MONDAY = 0
# Far enough to always find a monthly slot either way.
SEARCH_DAYS = 62


def runs_on(frequency: str, day: date) -> bool:
    match frequency:
        case "daily":
            return True
        case "weekly":
            return day.weekday() == MONDAY
        case "monthly":
            return day.day == 1
    raise ValueError(f"unknown frequency {frequency!r}")


def slot_on(day: date, scheduled_time: str, zone: str) -> datetime:
    """The slot of one local day, in UTC. A time skipped by a DST jump falls an hour later;
    a time that happens twice is the first of the two."""
    hours, minutes = (int(part) for part in scheduled_time.split(":"))
    local = datetime.combine(day, time(hours, minutes), tzinfo=ZoneInfo(zone))
    return local.astimezone(UTC)


def latest_slot(now: datetime, frequency: str, scheduled_time: str, zone: str) -> datetime:
    """The most recent slot at or before `now`."""
    today = now.astimezone(ZoneInfo(zone)).date()
    for back in range(SEARCH_DAYS):
        day = today - timedelta(days=back)
        if runs_on(frequency, day):
            slot = slot_on(day, scheduled_time, zone)
            if slot <= now:
                return slot
    raise AssertionError("no slot found")  # every frequency has one within SEARCH_DAYS


def next_slot(now: datetime, frequency: str, scheduled_time: str, zone: str) -> datetime:
    """The first slot strictly after `now`."""
    today = now.astimezone(ZoneInfo(zone)).date()
    for ahead in range(SEARCH_DAYS):
        day = today + timedelta(days=ahead)
        if runs_on(frequency, day):
            slot = slot_on(day, scheduled_time, zone)
            if slot > now:
                return slot
    raise AssertionError("no slot found")


def due_slot(
    now: datetime, frequency: str, scheduled_time: str, zone: str, lookback_seconds: float
) -> datetime | None:
    """The slot to start now, if one came within the look-back window: a site enabled today
    does not backfill last month's slot."""
    slot = latest_slot(now, frequency, scheduled_time, zone)
    return slot if (now - slot).total_seconds() <= lookback_seconds else None


def scheduled_run_id(site_id: int, slot: datetime) -> str:
    """Derived from the slot, so a scheduler that claims a slot, publishes and dies before
    committing publishes the same run again, which the orchestrator ignores as a repeat."""
    suffix = deterministic_id("scheduled-run", site_id, slot.isoformat()).hex[:6]
    return make_run_id("scheduled", slot, suffix)
