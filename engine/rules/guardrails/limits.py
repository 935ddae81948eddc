"""Sending limits as pure functions of (usage, config, now).

Windows: monthly and daily are calendar windows in ``email_limits.limits_timezone``; hourly and
per-domain hourly are sliding 60-minute windows (no hour of any clock ever holds more than the cap);
min delay is per sending mailbox.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Sequence
from zoneinfo import ZoneInfo

from engine.core.config import Settings
from engine.core.reasons import Code, Reason

HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class Usage:
    """What has already been reserved (sending, sent or awaiting reconciliation)."""

    month_count: int = 0
    day_count: int = 0
    hour_times: tuple[datetime, ...] = ()         # every mailbox, last 60 minutes, ascending
    domain_hour_times: tuple[datetime, ...] = ()  # the recipient's domain, last 60 minutes, ascending
    mailbox_last: datetime | None = None          # the sending mailbox's last reservation
    warmup_phase: int = 1


def calendar_windows(now: datetime, tzname: str) -> dict[str, datetime]:
    """Start of this month/day and the next ones, in UTC, for the limits' time zone."""
    tz = ZoneInfo(tzname)
    local = now.astimezone(tz)
    day = local.replace(hour=0, minute=0, second=0, microsecond=0)
    next_day = (day + timedelta(days=1, hours=2)).replace(hour=0)  # robust across DST changes
    month = day.replace(day=1)
    next_month = (month + timedelta(days=32)).replace(day=1)
    utc = ZoneInfo("UTC")
    return {
        "day_start": day.astimezone(utc),
        "next_day": next_day.astimezone(utc),
        "month_start": month.astimezone(utc),
        "next_month": next_month.astimezone(utc),
    }


def sliding_window(times: Sequence[datetime], limit: int, window: timedelta, now: datetime) -> datetime | None:
    """None if one more event fits in the window ending now; otherwise when the next one will fit."""
    inside = sorted(t for t in times if t > now - window)
    if len(inside) < limit:
        return None
    if limit <= 0 or not inside:
        return now + window
    return inside[len(inside) - limit] + window


def check_limits(usage: Usage, settings: Settings, now: datetime) -> list[Reason]:
    lim = settings.limits
    out: list[Reason] = []
    win = calendar_windows(now, lim.limits_timezone)
    if usage.month_count >= lim.monthly_limit:
        out.append(Reason(Code.LIMIT_MONTHLY, f"{usage.month_count}/{lim.monthly_limit} this month", win["next_month"]))
    cap, code = settings.effective_daily_cap(usage.warmup_phase)
    if usage.day_count >= cap:
        what = f"warm-up phase {usage.warmup_phase} cap" if code == "WARMUP_CAP" else "daily_limit"
        out.append(Reason(Code(code), f"{usage.day_count}/{cap} today ({what})", win["next_day"]))
    nb = sliding_window(usage.hour_times, lim.hourly_limit, HOUR, now)
    if nb is not None:
        out.append(Reason(Code.LIMIT_HOURLY, f"{lim.hourly_limit} sends in the last 60 minutes", nb))
    nb = sliding_window(usage.domain_hour_times, lim.per_domain_hourly_limit, HOUR, now)
    if nb is not None:
        out.append(Reason(Code.LIMIT_DOMAIN_HOURLY,
                          f"{lim.per_domain_hourly_limit} sends to this domain in the last 60 minutes", nb))
    if lim.min_delay_seconds > 0 and usage.mailbox_last is not None:
        ready = usage.mailbox_last + timedelta(seconds=lim.min_delay_seconds)
        if now < ready:
            out.append(Reason(Code.MIN_DELAY, f"mailbox sent {(now - usage.mailbox_last).total_seconds():.0f}s ago; "
                                              f"minimum is {lim.min_delay_seconds}s", ready))
    return out
