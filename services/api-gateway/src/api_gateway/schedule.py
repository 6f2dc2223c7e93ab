"""When a site's next scheduled run is due: the next daily, weekly (Monday) or monthly (the 1st)
slot at HH:MM in the site's time zone, strictly after `now`."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo


def _is_slot_day(day: date, frequency: str) -> bool:
    if frequency == "weekly":
        return day.weekday() == 0
    if frequency == "monthly":
        return day.day == 1
    return True


def next_slot(now: datetime, frequency: str, scheduled_time: str, timezone: str) -> datetime:
    zone = ZoneInfo(timezone)
    hour, minute = (int(part) for part in scheduled_time.split(":"))
    local_now = now.astimezone(zone)
    day = local_now.date()
    for _ in range(32 + 31):
        if _is_slot_day(day, frequency):
            slot = datetime.combine(day, time(hour, minute), zone)
            if slot > local_now:
                return slot.astimezone(UTC)
        day += timedelta(days=1)
    raise AssertionError("a slot comes within two months")
