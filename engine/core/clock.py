"""Time is injected everywhere a rule depends on it, so rules are tested without sleeping."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Callable, overload

Clock = Callable[[], datetime]

UTC = timezone.utc


def system_clock() -> datetime:
    return datetime.now(UTC)


class FixedClock:
    """A clock for tests: returns the same instant until moved."""

    def __init__(self, now: datetime):
        self.now = as_utc(now)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float = 0, **kw) -> datetime:
        self.now = self.now + timedelta(seconds=seconds, **kw)
        return self.now


def as_utc(dt: datetime) -> datetime:
    if dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


@overload
def iso(dt: datetime) -> str: ...
@overload
def iso(dt: None) -> None: ...
@overload
def iso(dt: datetime | None) -> str | None: ...


def iso(dt: datetime | None) -> str | None:
    """Fixed-width ISO-8601 in UTC (sorts lexicographically in time order)."""
    if dt is None:
        return None
    return as_utc(dt).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(value: str) -> datetime:
    v = value.strip()
    if v.endswith("Z"):
        v = v[:-1] + "+00:00"
    return as_utc(datetime.fromisoformat(v))


def duration_text(d: timedelta) -> str:
    """A duration as a person says it: ``45 s``, ``12 min``, ``5 h``, ``3 days`` (negative counts as 0)."""
    sec = max(0, int(d.total_seconds()))
    if sec < 90:
        return f"{sec} s"
    if sec < 120 * 60:
        return f"{sec // 60} min"
    if sec < 48 * 3600:
        return f"{sec // 3600} h"
    return f"{sec // 86400} days"
