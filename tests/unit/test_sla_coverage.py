"""Approval SLAs and expiry count only minutes inside the roster's coverage hours (engine/services/approvals.py)."""
from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st
from sqlmodel import select

from engine.services.approvals import Coverage, add_covered_minutes, covered_minutes, load_roster
from engine.core.clock import FixedClock
from engine.core.errors import ConfigError
from engine.adapters.models import Approval, OutboxItem
from tests.conftest import CONFIG, LIVE, deep_merge
from tests.helpers import email

UTC = timezone.utc
NY = ZoneInfo("America/New_York")
WEEKDAYS = ["mon", "tue", "wed", "thu", "fri"]
ALL_DAYS = WEEKDAYS + ["sat", "sun"]


def cov(start="08:00", end="18:00", days=WEEKDAYS, tz="America/New_York") -> Coverage:
    return Coverage(days=days, start=start, end=end, timezone=tz)


def ny(*a) -> datetime:
    return datetime(*a, tzinfo=NY)


def local(dt: datetime, tz=NY) -> tuple:
    d = dt.astimezone(tz)
    return d.year, d.month, d.day, d.hour, d.minute


# ------------------------------------------------------------------------------ examples from the roster

def test_friday_evening_request_starts_counting_at_monday_opening():
    fri = ny(2026, 11, 27, 19, 0)
    assert local(add_covered_minutes(fri, 60, cov())) == (2026, 11, 30, 9, 0)


def test_expiry_of_48_covered_hours_is_about_five_working_days_later():
    fri = ny(2026, 11, 27, 19, 0)
    due = add_covered_minutes(fri, 2880, cov())
    # Mon..Thu are 40 covered hours; 8 more on Friday
    assert local(due) == (2026, 12, 4, 16, 0)
    assert covered_minutes(fri, due, cov()) == 2880


def test_inside_coverage_it_is_plain_minutes_and_may_end_at_the_closing_instant():
    tue = ny(2026, 11, 24, 10, 0)
    assert add_covered_minutes(tue, 240, cov()) == tue + timedelta(minutes=240)
    assert local(add_covered_minutes(tue, 480, cov())) == (2026, 11, 24, 18, 0)
    assert local(add_covered_minutes(tue, 481, cov())) == (2026, 11, 25, 8, 1)


def test_request_before_opening_starts_at_opening_and_rolls_over_the_night():
    assert local(add_covered_minutes(ny(2026, 11, 24, 6, 0), 30, cov())) == (2026, 11, 24, 8, 30)
    assert local(add_covered_minutes(ny(2026, 11, 24, 17, 30), 60, cov())) == (2026, 11, 25, 8, 30)


def test_zero_minutes_is_now_and_naive_input_is_utc():
    t = ny(2026, 11, 28, 3, 0)
    assert add_covered_minutes(t, 0, cov()) == t
    naive = datetime(2026, 11, 27, 23, 59)  # Fri 18:59 in New York (UTC-5)
    out = add_covered_minutes(naive, 60, cov())
    assert out.tzinfo is None and out == datetime(2026, 11, 30, 14, 0)


def test_all_days_all_hours_is_wall_time():
    c = cov("00:00", "24:00", ALL_DAYS, "UTC")
    t = datetime(2026, 11, 28, 23, 30, tzinfo=UTC)
    assert add_covered_minutes(t, 10_000, c) == t + timedelta(minutes=10_000)


# ------------------------------------------------------------------------------ DST

def test_dst_starts_over_the_weekend_monday_opens_at_local_eight():
    # 2026-03-08 02:00 EST -> 03:00 EDT
    fri = ny(2026, 3, 6, 17, 0)
    due = add_covered_minutes(fri, 120, cov())
    assert local(due) == (2026, 3, 9, 9, 0) and due == datetime(2026, 3, 9, 13, 0, tzinfo=UTC)


def test_dst_ends_over_the_weekend_monday_opens_at_local_eight():
    # 2026-11-01 02:00 EDT -> 01:00 EST
    fri = ny(2026, 10, 30, 17, 0)
    due = add_covered_minutes(fri, 120, cov())
    assert local(due) == (2026, 11, 2, 9, 0) and due == datetime(2026, 11, 2, 14, 0, tzinfo=UTC)


def test_a_round_the_clock_coverage_counts_real_minutes_across_the_spring_gap():
    c = cov("00:00", "24:00", ALL_DAYS)
    sat = ny(2026, 3, 7, 12, 0)
    due = add_covered_minutes(sat, 24 * 60, c)
    assert due - sat == timedelta(hours=24)
    assert local(due) == (2026, 3, 8, 13, 0)  # the clocks went forward an hour


def test_a_window_containing_the_transition_lasts_as_long_as_it_really_does():
    c = cov("01:00", "03:00", ALL_DAYS)
    # spring: 01:00 EST to 03:00 EDT is one hour
    day = ny(2026, 3, 8, 0, 0)
    assert covered_minutes(day, day + timedelta(days=1) - timedelta(minutes=1), c) == 60
    assert local(add_covered_minutes(day, 60, c)) == (2026, 3, 8, 3, 0)
    assert local(add_covered_minutes(day, 61, c)) == (2026, 3, 9, 1, 1)
    # autumn: 01:00 EDT to 03:00 EST is three hours (01:00-02:00 happens twice)
    day = ny(2026, 11, 1, 0, 0)
    assert covered_minutes(day, day + timedelta(days=1), c) == 180
    assert add_covered_minutes(day, 180, c) == datetime(2026, 11, 1, 8, 0, tzinfo=UTC)  # 03:00 EST


def test_a_window_opening_in_the_spring_gap_opens_at_the_transition():
    c = cov("02:30", "04:00", ALL_DAYS)  # 02:30 does not exist on 2026-03-08
    day = ny(2026, 3, 8, 0, 0)
    assert add_covered_minutes(day, 1, c) == datetime(2026, 3, 8, 7, 1, tzinfo=UTC)  # 03:01 EDT
    assert covered_minutes(day, ny(2026, 3, 8, 12, 0), c) == 60


# ------------------------------------------------------------------------------ a window that ends at midnight

def test_a_window_that_ends_at_midnight_runs_to_the_next_day():
    c = cov("20:00", "24:00", ALL_DAYS)
    t = ny(2026, 11, 24, 23, 30)
    assert local(add_covered_minutes(t, 30, c)) == (2026, 11, 25, 0, 0)
    assert local(add_covered_minutes(t, 31, c)) == (2026, 11, 25, 20, 1)
    assert local(add_covered_minutes(ny(2026, 11, 24, 12, 0), 240, c)) == (2026, 11, 25, 0, 0)


def test_midnight_that_does_not_exist_ends_the_window_at_the_transition():
    # Chile: on 2026-09-06 the clocks go from 00:00 (-04) to 01:00 (-03)
    scl = ZoneInfo("America/Santiago")
    c = cov("18:00", "24:00", ALL_DAYS, "America/Santiago")
    t = datetime(2026, 9, 5, 18, 0, tzinfo=scl)
    assert add_covered_minutes(t, 360, c) == datetime(2026, 9, 6, 4, 0, tzinfo=UTC)
    assert local(add_covered_minutes(t, 361, c), scl) == (2026, 9, 6, 18, 1)


def test_weekday_windows_count_in_the_coverage_time_zone_not_utc():
    c = cov("09:00", "17:00", WEEKDAYS, "Asia/Tokyo")
    # Friday 20:00 UTC is Saturday 05:00 in Tokyo: nothing counts until Monday 09:00 there (Mon 00:00 UTC)
    assert add_covered_minutes(datetime(2026, 11, 27, 20, 0, tzinfo=UTC), 1, c) == \
        datetime(2026, 11, 30, 0, 1, tzinfo=UTC)


def test_no_covered_days_is_an_error_not_a_hang():
    with pytest.raises(ValueError, match="empty"):
        add_covered_minutes(ny(2026, 11, 24, 10, 0), 60, cov(days=[]))


def test_the_roster_refuses_a_coverage_without_days(tmp_path):
    cdir = tmp_path / "cfg"
    shutil.copytree(CONFIG, cdir)
    data = json.loads((cdir / "approvers.json").read_text())
    data["action_types"]["crm_write"]["coverage"]["days"] = []
    (cdir / "approvers.json").write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="crm_write.coverage.days"):
        load_roster(cdir)


# ------------------------------------------------------------------------------ properties

ZONES = ["UTC", "America/New_York", "Europe/London", "America/Santiago", "Australia/Lord_Howe", "Asia/Kathmandu",
         "Pacific/Auckland", "America/St_Johns"]


@st.composite
def coverages(draw):
    days = draw(st.lists(st.sampled_from(ALL_DAYS), min_size=1, max_size=7, unique=True))
    a = draw(st.integers(0, 1380))
    b = draw(st.integers(a + 60, 1440))  # at least an hour a covered day (keeps the examples quick)
    hhmm = lambda m: f"{m // 60:02d}:{m % 60:02d}"  # noqa: E731
    return cov(hhmm(a), hhmm(b), days, draw(st.sampled_from(ZONES)))


starts = st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2028, 12, 31),
                      timezones=st.just(UTC))
PROPS = hsettings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPS
@given(starts, st.integers(0, 10_000), coverages())
def test_result_is_not_before_start_and_exactly_the_minutes_are_covered(start, minutes, c):
    due = add_covered_minutes(start, minutes, c)
    assert due >= start
    assert covered_minutes(start, due, c) == pytest.approx(minutes, abs=1e-6)
    if minutes:  # and it is the first such instant
        assert covered_minutes(start, due - timedelta(seconds=1), c) < minutes


@PROPS
@given(starts, st.integers(0, 10_000), st.integers(0, 10_000), coverages())
def test_monotonic_in_minutes(start, m1, m2, c):
    lo, hi = sorted((m1, m2))
    assert add_covered_minutes(start, lo, c) <= add_covered_minutes(start, hi, c)


@PROPS
@given(starts, st.integers(1, 20_000), st.sampled_from(ZONES))
def test_round_the_clock_coverage_is_elapsed_time(start, minutes, tz):
    assert add_covered_minutes(start, minutes, cov("00:00", "24:00", ALL_DAYS, tz)) == \
        start + timedelta(minutes=minutes)


@PROPS
@given(starts, st.integers(1, 5000), st.integers(1, 5000), coverages())
def test_adding_in_two_steps_is_adding_once(start, m1, m2, c):
    assert add_covered_minutes(add_covered_minutes(start, m1, c), m2, c) == add_covered_minutes(start, m1 + m2, c)


# ------------------------------------------------------------------------------ the queue uses it (and sweep)

def test_roster_deadlines_follow_coverage():
    from engine.services.approvals import ApprovalService

    roster = load_roster(CONFIG)
    fri = ny(2026, 11, 27, 19, 0)
    d = ApprovalService.deadlines(roster.action_types["tier1_email"], fri)
    assert local(d["sla_due_at"]) == (2026, 11, 30, 9, 0) and local(d["expires_at"]) == (2026, 12, 4, 16, 0)
    hot = ApprovalService.deadlines(roster.action_types["hot_lead"], fri)  # 07:00-20:00 coverage
    assert local(hot["sla_due_at"]) == (2026, 11, 27, 19, 5)


def test_a_friday_evening_request_neither_escalates_nor_expires_over_the_weekend(app_factory):
    from tests.integration.test_approvals import add_users

    clock = FixedClock(ny(2026, 11, 27, 19, 0))
    app = app_factory(production=deep_merge(LIVE, {"rollout_phase": {"current": "assisted"}}),
                      warmup={"enabled": False}, clock=clock)
    assert app.control.state().phase == "assisted"
    add_users(app.settings.config_dir)
    r = app.gateway.submit(email("fri", tier=2))  # 240 SLA minutes, 2880 to expiry
    assert r.status == "pending_approval", r.to_dict(True)
    with app.store.read() as s:
        appr = s.exec(select(Approval).where(Approval.outbox_id == r.outbox_id)).one()
    assert local(appr.sla_due_at) == (2026, 11, 30, 12, 0) and local(appr.expires_at) == (2026, 12, 4, 16, 0)
    clock.now = ny(2026, 11, 29, 20, 0).astimezone(UTC)  # Sunday evening
    assert app.approvals.sweep() == {"escalated": [], "expired": []}
    clock.now = ny(2026, 11, 30, 11, 59).astimezone(UTC)
    assert app.approvals.sweep() == {"escalated": [], "expired": []}
    clock.now = ny(2026, 11, 30, 12, 0).astimezone(UTC)
    assert app.approvals.sweep() == {"escalated": [appr.id], "expired": []}
    clock.now = ny(2026, 12, 4, 15, 59).astimezone(UTC)
    assert app.approvals.sweep() == {"escalated": [], "expired": []}
    clock.now = ny(2026, 12, 4, 16, 0).astimezone(UTC)
    assert app.approvals.sweep() == {"escalated": [], "expired": [appr.id]}
    with app.store.read() as s:
        assert s.get(OutboxItem, r.outbox_id).status == "denied"
        assert s.get(Approval, appr.id).status == "expired"
