"""Working hours in the recipient's time zone."""
from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from engine.core.config import DAYS, WorkingHours
from engine.core.reasons import Code, Reason


def _minutes(dt: datetime) -> int:
    return dt.hour * 60 + dt.minute


def is_open(local: datetime, wh: WorkingHours) -> bool:
    if DAYS[local.weekday()] not in wh.days:
        return False
    return wh.minutes(wh.start) <= _minutes(local) < wh.minutes(wh.end)


def next_opening(now: datetime, wh: WorkingHours, tzname: str) -> datetime:
    """The next instant (UTC) at which working hours open in ``tzname``."""
    tz = ZoneInfo(tzname)
    local = now.astimezone(tz)
    start_min = wh.minutes(wh.start)
    for add in range(0, 8):
        day = (local + timedelta(days=add)).date()
        if DAYS[day.weekday()] not in wh.days:
            continue
        opening = datetime(day.year, day.month, day.day, start_min // 60, start_min % 60, tzinfo=tz)
        if add == 0 and _minutes(local) >= start_min:
            continue
        return opening.astimezone(ZoneInfo("UTC"))
    raise ValueError("working_hours.days is empty")  # config validation prevents this


def check_working_hours(tzname: str | None, wh: WorkingHours, now: datetime) -> list[Reason]:
    tzname = tzname or wh.default_timezone
    local = now.astimezone(ZoneInfo(tzname))
    if is_open(local, wh):
        return []
    nb = next_opening(now, wh, tzname)
    return [Reason(Code.OUTSIDE_WORKING_HOURS,
                   f"{local:%a %H:%M} in {tzname}; working hours {wh.start}-{wh.end} {','.join(wh.days)}", nb)]
