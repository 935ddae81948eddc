"""Working hours in the recipient's time zone (engine/rules/guardrails/hours.py)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from engine.rules.guardrails.hours import check_working_hours, is_open, next_opening
from engine.core.reasons import Code, Kind

UTC = timezone.utc
NY = "America/New_York"
LONDON = "Europe/London"
TOKYO = "Asia/Tokyo"


def utc(*a):
    return datetime(*a, tzinfo=UTC)


@pytest.fixture
def wh(settings):
    w = settings.production.working_hours
    assert (w.start, w.end, w.days, w.default_timezone) == ("08:00", "18:00", ["mon", "tue", "wed", "thu", "fri"], NY)
    return w


def refused(reasons):
    assert len(reasons) == 1 and reasons[0].code == Code.OUTSIDE_WORKING_HOURS, reasons
    assert reasons[0].kind is Kind.TEMPORARY
    return reasons[0]


# ------------------------------------------------------------------------------ recipient's time zone

def test_morning_in_tokyo_is_allowed_while_night_in_new_york(wh):
    now = utc(2026, 11, 24, 0, 0)  # Tue 09:00 in Tokyo, Mon 19:00 in New York
    assert check_working_hours(TOKYO, wh, now) == []
    r = refused(check_working_hours(NY, wh, now))
    assert r.detail == "Mon 19:00 in America/New_York; working hours 08:00-18:00 mon,tue,wed,thu,fri"
    assert r.not_before == utc(2026, 11, 24, 13, 0)  # Tue 08:00 EST


def test_working_time_in_new_york_is_night_in_tokyo(wh):
    now = utc(2026, 11, 24, 15, 0)  # Tue 10:00 New York, Wed 00:00 Tokyo
    assert check_working_hours(NY, wh, now) == []
    r = refused(check_working_hours(TOKYO, wh, now))
    assert "Wed 00:00 in Asia/Tokyo" in r.detail
    assert r.not_before == utc(2026, 11, 24, 23, 0)  # Wed 08:00 JST


@pytest.mark.parametrize("tz", [None, ""])
def test_default_timezone_used_when_none_given(wh, tz):
    # Tue 09:00 in Tokyo but Mon 19:00 in the default zone (New York): refused
    r = refused(check_working_hours(tz, wh, utc(2026, 11, 24, 0, 0)))
    assert "in America/New_York" in r.detail
    assert r.not_before == utc(2026, 11, 24, 13, 0)
    # Tue 10:00 in New York (midnight in Tokyo): allowed
    assert check_working_hours(tz, wh, utc(2026, 11, 24, 15, 0)) == []


def test_default_timezone_from_config(settings_factory):
    s = settings_factory(production={"working_hours": {"default_timezone": TOKYO}})
    w = s.production.working_hours
    assert check_working_hours(None, w, utc(2026, 11, 24, 0, 0)) == []  # 09:00 Tokyo
    r = refused(check_working_hours(None, w, utc(2026, 11, 24, 15, 0)))
    assert "in Asia/Tokyo" in r.detail


# ------------------------------------------------------------------------------ weekends

@pytest.mark.parametrize("now", [utc(2026, 11, 28, 15, 0), utc(2026, 11, 29, 15, 0)])  # Sat / Sun 10:00 NY
def test_weekend_refused_until_monday_morning(wh, now):
    r = refused(check_working_hours(NY, wh, now))
    assert r.detail.startswith(("Sat 10:00", "Sun 10:00"))
    assert r.not_before == utc(2026, 11, 30, 13, 0)  # Mon 08:00 EST


def test_friday_evening_defers_to_monday(wh):
    r = refused(check_working_hours(NY, wh, utc(2026, 11, 27, 23, 30)))  # Fri 18:30 EST
    assert r.not_before == utc(2026, 11, 30, 13, 0)


def test_weekend_is_judged_in_the_recipients_zone(wh):
    now = utc(2026, 11, 30, 0, 30)  # Mon 09:30 in Tokyo, Sun 19:30 in New York
    assert check_working_hours(TOKYO, wh, now) == []
    assert refused(check_working_hours(NY, wh, now)).detail.startswith("Sun 19:30")
    now = utc(2026, 11, 27, 23, 30)  # Sat 08:30 in Tokyo: weekend there
    r = refused(check_working_hours(TOKYO, wh, now))
    assert r.detail.startswith("Sat 08:30")
    assert r.not_before == utc(2026, 11, 29, 23, 0)  # Mon 08:00 JST


def test_weekend_day_allowed_when_configured(settings_factory):
    s = settings_factory(production={"working_hours": {"days": ["sat"]}})
    w = s.production.working_hours
    assert check_working_hours(NY, w, utc(2026, 11, 28, 15, 0)) == []  # Sat 10:00
    r = refused(check_working_hours(NY, w, utc(2026, 11, 24, 15, 0)))  # Tue 10:00
    assert r.not_before == utc(2026, 11, 28, 13, 0)  # next Saturday 08:00


# ------------------------------------------------------------------------------ boundaries

@pytest.mark.parametrize("local, open_", [
    ((7, 59, 59), False),
    ((8, 0, 0), True),
    ((12, 0, 0), True),
    ((17, 59, 0), True),
    ((17, 59, 59), True),
    ((18, 0, 0), False),  # end is exclusive
    ((18, 0, 1), False),
    ((23, 59, 59), False),
    ((0, 0, 0), False),
])
def test_start_inclusive_end_exclusive(wh, local, open_):
    h, m, sec = local
    now = utc(2026, 11, 24, h, m, sec) + timedelta(hours=5)  # EST = UTC-5, Tuesday local
    reasons = check_working_hours(NY, wh, now)
    assert (reasons == []) is open_, reasons


def test_end_boundary_defers_to_next_morning(wh):
    r = refused(check_working_hours(NY, wh, utc(2026, 11, 24, 23, 0)))  # Tue 18:00 EST
    assert r.detail.startswith("Tue 18:00")
    assert r.not_before == utc(2026, 11, 25, 13, 0)  # Wed 08:00


def test_before_start_defers_to_same_morning(wh):
    r = refused(check_working_hours(NY, wh, utc(2026, 11, 24, 12, 0)))  # Tue 07:00 EST
    assert r.not_before == utc(2026, 11, 24, 13, 0)


def test_end_at_midnight_keeps_the_last_minute_open(settings_factory):
    s = settings_factory(production={"working_hours": {"start": "00:00", "end": "24:00"}})
    w = s.production.working_hours
    assert check_working_hours(NY, w, utc(2026, 11, 25, 4, 59)) == []  # Tue 23:59 EST
    assert check_working_hours(NY, w, utc(2026, 11, 24, 5, 0)) == []  # Tue 00:00 EST


def test_is_open_uses_local_weekday(wh):
    from zoneinfo import ZoneInfo

    assert is_open(datetime(2026, 11, 24, 9, 0, tzinfo=ZoneInfo(TOKYO)), wh)
    assert not is_open(datetime(2026, 11, 28, 9, 0, tzinfo=ZoneInfo(TOKYO)), wh)


# ------------------------------------------------------------------------------ DST

@pytest.mark.parametrize("tz, now, expected", [
    # New York springs forward Sun 2026-03-08: Monday opens at 08:00 EDT = 12:00 UTC (not 13:00)
    (NY, utc(2026, 3, 6, 23, 30), utc(2026, 3, 9, 12, 0)),
    (NY, utc(2026, 3, 7, 15, 0), utc(2026, 3, 9, 12, 0)),
    # New York falls back Sun 2026-11-01: Monday opens at 08:00 EST = 13:00 UTC (not 12:00)
    (NY, utc(2026, 10, 30, 22, 30), utc(2026, 11, 2, 13, 0)),
    # London springs forward Sun 2026-03-29: Monday opens at 08:00 BST = 07:00 UTC
    (LONDON, utc(2026, 3, 27, 19, 0), utc(2026, 3, 30, 7, 0)),
    # London falls back Sun 2026-10-25: Monday opens at 08:00 GMT = 08:00 UTC
    (LONDON, utc(2026, 10, 23, 18, 30), utc(2026, 10, 26, 8, 0)),
])
def test_next_opening_across_weekend_and_dst(wh, tz, now, expected):
    assert next_opening(now, wh, tz) == expected
    r = refused(check_working_hours(tz, wh, now))
    assert r.not_before == expected
    assert check_working_hours(tz, wh, expected) == []
    assert check_working_hours(tz, wh, expected - timedelta(microseconds=1)) != []


def test_next_opening_within_working_hours_is_next_day(wh):
    # next_opening is the next *opening*: during working hours that is tomorrow morning
    assert next_opening(utc(2026, 11, 24, 15, 0), wh, NY) == utc(2026, 11, 25, 13, 0)


def test_next_opening_is_utc(wh):
    nb = next_opening(utc(2026, 11, 24, 0, 0), wh, TOKYO)
    assert nb.utcoffset() == timedelta(0)
