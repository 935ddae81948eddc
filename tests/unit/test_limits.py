"""Sending limits (engine/rules/guardrails/limits.py): calendar and sliding windows, caps, not_before.

The clock is always an explicit datetime. The property tests simulate a sender that obeys check_limits and
check that what it accepted never breaks a limit, that every refusal is justified, and that every not_before
is exactly the first instant at which the refusing rule lets go.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from engine.core.config import load_settings
from engine.rules.guardrails.limits import HOUR, Usage, calendar_windows, check_limits, sliding_window
from engine.core.reasons import Code, Kind
from tests.conftest import write_config

UTC = timezone.utc
NOW = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)  # a Tuesday
US = timedelta(microseconds=1)

NO_WARMUP = {"enabled": False}


def codes(reasons):
    return [r.code for r in reasons]


def only(reasons, code):
    hits = [r for r in reasons if r.code == code]
    assert len(hits) == 1, f"expected exactly one {code}, got {reasons}"
    return hits[0]


# ------------------------------------------------------------------------------------------- baseline

def test_fresh_usage_passes(settings):
    assert check_limits(Usage(), settings, NOW) == []


def test_one_below_every_cap_passes(settings):
    lim = settings.limits
    cap, _ = settings.effective_daily_cap(1)
    usage = Usage(
        month_count=lim.monthly_limit - 1,
        day_count=cap - 1,
        hour_times=tuple(NOW - timedelta(minutes=59 - i) for i in range(lim.hourly_limit - 1)),
        domain_hour_times=tuple(NOW - timedelta(minutes=30 - i) for i in range(lim.per_domain_hourly_limit - 1)),
        mailbox_last=NOW - timedelta(seconds=lim.min_delay_seconds),
        warmup_phase=1,
    )
    assert check_limits(usage, settings, NOW) == []


def test_every_limit_reason_is_temporary_with_not_before(settings):
    lim = settings.limits
    usage = Usage(
        month_count=lim.monthly_limit,
        day_count=10_000,
        hour_times=tuple(NOW - timedelta(minutes=1) for _ in range(lim.hourly_limit)),
        domain_hour_times=tuple(NOW - timedelta(minutes=1) for _ in range(lim.per_domain_hourly_limit)),
        mailbox_last=NOW,
    )
    reasons = check_limits(usage, settings, NOW)
    assert codes(reasons) == [Code.LIMIT_MONTHLY, Code.WARMUP_CAP, Code.LIMIT_HOURLY, Code.LIMIT_DOMAIN_HOURLY,
                              Code.MIN_DELAY]
    for r in reasons:
        assert r.kind is Kind.TEMPORARY
        assert r.not_before is not None and r.not_before > NOW


# ------------------------------------------------------------------------------------------- monthly

def test_monthly_exactly_at_cap_defers_to_next_month(settings):
    lim = settings.limits
    r = only(check_limits(Usage(month_count=lim.monthly_limit), settings, NOW), Code.LIMIT_MONTHLY)
    assert r.detail == f"{lim.monthly_limit}/{lim.monthly_limit} this month"
    assert r.not_before == datetime(2026, 12, 1, tzinfo=UTC)


def test_monthly_one_below_cap_passes(settings):
    usage = Usage(month_count=settings.limits.monthly_limit - 1)
    assert Code.LIMIT_MONTHLY not in codes(check_limits(usage, settings, NOW))


def test_monthly_over_cap_still_refused(settings):
    usage = Usage(month_count=settings.limits.monthly_limit + 7)
    assert Code.LIMIT_MONTHLY in codes(check_limits(usage, settings, NOW))


def test_monthly_at_year_end_rolls_to_january(settings_factory):
    s = settings_factory(production={"email_limits": {"monthly_limit": 5}})
    now = datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC)
    r = only(check_limits(Usage(month_count=5), s, now), Code.LIMIT_MONTHLY)
    assert r.not_before == datetime(2027, 1, 1, tzinfo=UTC)


# ------------------------------------------------------------------------------------------- daily / warm-up

def test_daily_limit_binds_when_warmup_disabled(settings_factory):
    s = settings_factory(production={"email_limits": {"daily_limit": 150}}, warmup=NO_WARMUP)
    reasons = check_limits(Usage(day_count=150, warmup_phase=1), s, NOW)
    r = only(reasons, Code.LIMIT_DAILY)
    assert Code.WARMUP_CAP not in codes(reasons)
    assert r.detail == "150/150 today (daily_limit)"
    assert r.not_before == datetime(2026, 11, 25, tzinfo=UTC)


def test_daily_limit_one_below_passes_when_warmup_disabled(settings_factory):
    s = settings_factory(production={"email_limits": {"daily_limit": 150}}, warmup=NO_WARMUP)
    # far above every warm-up cap: the disabled plan must not bind
    assert check_limits(Usage(day_count=149, warmup_phase=1), s, NOW) == []


def test_warmup_cap_smaller_than_daily_limit_binds(settings):
    assert settings.warmup.enabled and settings.warmup.cap_for(1) == 10 and settings.limits.daily_limit == 150
    reasons = check_limits(Usage(day_count=10, warmup_phase=1), settings, NOW)
    r = only(reasons, Code.WARMUP_CAP)
    assert Code.LIMIT_DAILY not in codes(reasons)
    assert r.detail == "10/10 today (warm-up phase 1 cap)"
    assert r.not_before == datetime(2026, 11, 25, tzinfo=UTC)


def test_warmup_cap_one_below_passes(settings):
    assert check_limits(Usage(day_count=9, warmup_phase=1), settings, NOW) == []


def test_warmup_cap_follows_the_phase(settings):
    # phase 2 allows 25 a day
    assert check_limits(Usage(day_count=10, warmup_phase=2), settings, NOW) == []
    assert check_limits(Usage(day_count=24, warmup_phase=2), settings, NOW) == []
    r = only(check_limits(Usage(day_count=25, warmup_phase=2), settings, NOW), Code.WARMUP_CAP)
    assert r.detail == "25/25 today (warm-up phase 2 cap)"


def test_daily_limit_smaller_than_warmup_cap_binds(settings_factory):
    s = settings_factory(production={"email_limits": {"daily_limit": 8}})  # phase 1 cap is 10
    assert check_limits(Usage(day_count=7, warmup_phase=1), s, NOW) == []
    reasons = check_limits(Usage(day_count=8, warmup_phase=1), s, NOW)
    assert codes(reasons) == [Code.LIMIT_DAILY]
    assert reasons[0].detail == "8/8 today (daily_limit)"


def test_warmup_cap_equal_to_daily_limit_reports_daily_limit(settings):
    # phase 5 cap 150 == daily_limit 150: the daily limit is the one named
    reasons = check_limits(Usage(day_count=150, warmup_phase=5), settings, NOW)
    assert codes(reasons) == [Code.LIMIT_DAILY]


def test_warmup_phase_beyond_plan_uses_last_phase(settings_factory):
    s = settings_factory(production={"email_limits": {"daily_limit": 1000}})
    assert check_limits(Usage(day_count=149, warmup_phase=99), s, NOW) == []
    r = only(check_limits(Usage(day_count=150, warmup_phase=99), s, NOW), Code.WARMUP_CAP)
    assert "150/150" in r.detail


# ------------------------------------------------------------------------------------------- hourly (sliding)

def test_hourly_exactly_at_cap_defers_until_oldest_leaves(settings_factory):
    s = settings_factory(production={"email_limits": {"hourly_limit": 3}})
    times = (NOW - timedelta(minutes=50), NOW - timedelta(minutes=20), NOW - timedelta(minutes=1))
    r = only(check_limits(Usage(hour_times=times), s, NOW), Code.LIMIT_HOURLY)
    assert r.detail == "3 sends in the last 60 minutes"
    assert r.not_before == NOW + timedelta(minutes=10)  # 50 minutes ago + 60 minutes


def test_hourly_one_below_cap_passes(settings_factory):
    s = settings_factory(production={"email_limits": {"hourly_limit": 3}})
    times = (NOW - timedelta(minutes=50), NOW - timedelta(minutes=1))
    assert check_limits(Usage(hour_times=times), s, NOW) == []


def test_hourly_send_exactly_one_hour_ago_has_left_the_window(settings_factory):
    s = settings_factory(production={"email_limits": {"hourly_limit": 3}})
    times = (NOW - HOUR, NOW - timedelta(minutes=20), NOW - timedelta(minutes=1))
    assert check_limits(Usage(hour_times=times), s, NOW) == []
    # ... but one microsecond less than an hour ago it still counts
    times = (NOW - HOUR + US, NOW - timedelta(minutes=20), NOW - timedelta(minutes=1))
    r = only(check_limits(Usage(hour_times=times), s, NOW), Code.LIMIT_HOURLY)
    assert r.not_before == NOW + US


def test_hourly_window_is_sliding_not_clock_hour(settings_factory):
    # 3 sends in 14:40-14:59 block 15:05 although a new clock hour started
    s = settings_factory(production={"email_limits": {"hourly_limit": 3}})
    times = tuple(datetime(2026, 11, 24, 14, m, tzinfo=UTC) for m in (40, 50, 59))
    now = datetime(2026, 11, 24, 15, 5, tzinfo=UTC)
    r = only(check_limits(Usage(hour_times=times), s, now), Code.LIMIT_HOURLY)
    assert r.not_before == datetime(2026, 11, 24, 15, 40, tzinfo=UTC)


def test_hourly_not_before_when_over_cap_waits_for_enough_to_leave(settings_factory):
    s = settings_factory(production={"email_limits": {"hourly_limit": 2}})
    times = tuple(NOW - timedelta(minutes=m) for m in (55, 45, 30, 10))  # 4 inside, cap 2
    r = only(check_limits(Usage(hour_times=times), s, NOW), Code.LIMIT_HOURLY)
    # 3 of them must leave: the one from 30 minutes ago leaves at NOW+30min
    assert r.not_before == NOW + timedelta(minutes=30)


def test_hourly_unsorted_times_are_handled(settings_factory):
    s = settings_factory(production={"email_limits": {"hourly_limit": 2}})
    times = (NOW - timedelta(minutes=5), NOW - timedelta(minutes=40))
    r = only(check_limits(Usage(hour_times=times), s, NOW), Code.LIMIT_HOURLY)
    assert r.not_before == NOW + timedelta(minutes=20)


def test_hourly_limit_zero_blocks_everything(settings_factory):
    s = settings_factory(production={"email_limits": {"hourly_limit": 0}})
    r = only(check_limits(Usage(), s, NOW), Code.LIMIT_HOURLY)
    assert r.not_before == NOW + HOUR


def test_sliding_window_helper_boundaries():
    t0 = NOW - timedelta(minutes=30)
    assert sliding_window([], 1, HOUR, NOW) is None
    assert sliding_window([t0], 2, HOUR, NOW) is None
    assert sliding_window([t0], 1, HOUR, NOW) == t0 + HOUR
    assert sliding_window([NOW - HOUR], 1, HOUR, NOW) is None


# ------------------------------------------------------------------------------------------- per-domain hourly

def test_domain_hourly_exactly_at_cap(settings):
    n = settings.limits.per_domain_hourly_limit
    times = tuple(NOW - timedelta(minutes=40 - i) for i in range(n))
    reasons = check_limits(Usage(hour_times=times, domain_hour_times=times), settings, NOW)
    r = only(reasons, Code.LIMIT_DOMAIN_HOURLY)
    assert Code.LIMIT_HOURLY not in codes(reasons)
    assert r.detail == f"{n} sends to this domain in the last 60 minutes"
    assert r.not_before == NOW + timedelta(minutes=20)


def test_domain_hourly_one_below_cap_passes(settings):
    n = settings.limits.per_domain_hourly_limit
    times = tuple(NOW - timedelta(minutes=40 - i) for i in range(n - 1))
    assert check_limits(Usage(hour_times=times, domain_hour_times=times), settings, NOW) == []


def test_domain_hourly_counts_only_last_hour(settings):
    n = settings.limits.per_domain_hourly_limit
    old = tuple(NOW - HOUR - timedelta(minutes=i) for i in range(n))
    assert check_limits(Usage(domain_hour_times=old), settings, NOW) == []


# ------------------------------------------------------------------------------------------- min delay

def test_min_delay_refuses_until_delay_elapsed(settings):
    d = settings.limits.min_delay_seconds
    assert d == 30
    last = NOW - timedelta(seconds=29)
    r = only(check_limits(Usage(mailbox_last=last), settings, NOW), Code.MIN_DELAY)
    assert r.detail == "mailbox sent 29s ago; minimum is 30s"
    assert r.not_before == last + timedelta(seconds=30) == NOW + timedelta(seconds=1)


def test_min_delay_exactly_elapsed_passes(settings):
    last = NOW - timedelta(seconds=settings.limits.min_delay_seconds)
    assert check_limits(Usage(mailbox_last=last), settings, NOW) == []


def test_min_delay_zero_disables_rule(settings_factory):
    s = settings_factory(production={"email_limits": {"min_delay_seconds": 0}})
    assert check_limits(Usage(mailbox_last=NOW), s, NOW) == []


def test_min_delay_without_previous_send_passes(settings):
    assert check_limits(Usage(mailbox_last=None), settings, NOW) == []


# ------------------------------------------------------------------------------------------- calendar windows

def test_daily_window_in_los_angeles(settings_factory):
    s = settings_factory(production={"email_limits": {"daily_limit": 5, "limits_timezone": "America/Los_Angeles"}},
                         warmup=NO_WARMUP)
    # 07:30 UTC on the 25th is still 23:30 on the 24th in Los Angeles (PST, UTC-8)
    now = datetime(2026, 11, 25, 7, 30, tzinfo=UTC)
    r = only(check_limits(Usage(day_count=5), s, now), Code.LIMIT_DAILY)
    assert r.not_before == datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
    win = calendar_windows(now, "America/Los_Angeles")
    assert win["day_start"] == datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
    assert win["next_day"] == datetime(2026, 11, 25, 8, 0, tzinfo=UTC)


def test_daily_window_in_tokyo_starts_before_utc_midnight(settings_factory):
    s = settings_factory(production={"email_limits": {"daily_limit": 5, "limits_timezone": "Asia/Tokyo"}},
                         warmup=NO_WARMUP)
    # 15:30 UTC is 00:30 next day in Tokyo: the day started 30 minutes ago
    now = datetime(2026, 11, 24, 15, 30, tzinfo=UTC)
    win = calendar_windows(now, "Asia/Tokyo")
    assert win["day_start"] == datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
    assert win["next_day"] == datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
    r = only(check_limits(Usage(day_count=5), s, now), Code.LIMIT_DAILY)
    assert r.not_before == datetime(2026, 11, 25, 15, 0, tzinfo=UTC)


def test_monthly_window_in_los_angeles(settings_factory):
    s = settings_factory(production={"email_limits": {"monthly_limit": 5, "limits_timezone": "America/Los_Angeles"}})
    # 05:00 UTC on Dec 1 is 21:00 on Nov 30 in Los Angeles: still November there
    now = datetime(2026, 12, 1, 5, 0, tzinfo=UTC)
    win = calendar_windows(now, "America/Los_Angeles")
    assert win["month_start"] == datetime(2026, 11, 1, 7, 0, tzinfo=UTC)  # Nov 1 00:00 PDT (UTC-7)
    assert win["next_month"] == datetime(2026, 12, 1, 8, 0, tzinfo=UTC)   # Dec 1 00:00 PST (UTC-8)
    r = only(check_limits(Usage(month_count=5), s, now), Code.LIMIT_MONTHLY)
    assert r.not_before == datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize("now, day_start, next_day", [
    # spring forward: 23-hour day
    (datetime(2026, 3, 8, 12, 0, tzinfo=UTC), datetime(2026, 3, 8, 5, 0, tzinfo=UTC),
     datetime(2026, 3, 9, 4, 0, tzinfo=UTC)),
    # fall back: 25-hour day
    (datetime(2026, 11, 1, 12, 0, tzinfo=UTC), datetime(2026, 11, 1, 4, 0, tzinfo=UTC),
     datetime(2026, 11, 2, 5, 0, tzinfo=UTC)),
    # last instant of a day
    (datetime(2026, 11, 25, 4, 59, 59, 999999, tzinfo=UTC), datetime(2026, 11, 24, 5, 0, tzinfo=UTC),
     datetime(2026, 11, 25, 5, 0, tzinfo=UTC)),
    # first instant of a day
    (datetime(2026, 11, 25, 5, 0, tzinfo=UTC), datetime(2026, 11, 25, 5, 0, tzinfo=UTC),
     datetime(2026, 11, 26, 5, 0, tzinfo=UTC)),
])
def test_calendar_day_across_dst_in_new_york(now, day_start, next_day):
    win = calendar_windows(now, "America/New_York")
    assert win["day_start"] == day_start
    assert win["next_day"] == next_day


def test_calendar_month_across_dst_in_new_york():
    win = calendar_windows(datetime(2026, 3, 20, tzinfo=UTC), "America/New_York")
    assert win["month_start"] == datetime(2026, 3, 1, 5, 0, tzinfo=UTC)  # EST
    assert win["next_month"] == datetime(2026, 4, 1, 4, 0, tzinfo=UTC)  # EDT


def test_daily_not_before_across_dst_in_new_york(settings_factory):
    s = settings_factory(production={"email_limits": {"daily_limit": 3, "limits_timezone": "America/New_York"}},
                         warmup=NO_WARMUP)
    now = datetime(2026, 11, 1, 23, 0, tzinfo=UTC)  # 18:00 EST on the 25-hour day
    r = only(check_limits(Usage(day_count=3), s, now), Code.LIMIT_DAILY)
    assert r.not_before == datetime(2026, 11, 2, 5, 0, tzinfo=UTC)


# ------------------------------------------------------------------------------------------- properties

HOURLY, PER_DOMAIN, DAILY, MONTHLY, MIN_DELAY = 4, 2, 7, 14, 90
WARMUP_CAPS = [3, 5, 9]  # phase 3's cap is above DAILY: DAILY binds there
DOMAINS = ("a.example", "b.example", "c.example")
MAILBOXES = ("sales@alphaswarm.example", "hello@alphaswarm.example")


def _small_limits(tz: str) -> dict:
    return {"email_limits": {"monthly_limit": MONTHLY, "daily_limit": DAILY, "hourly_limit": HOURLY,
                             "per_domain_hourly_limit": PER_DOMAIN, "min_delay_seconds": MIN_DELAY,
                             "limits_timezone": tz}}


def _warmup(enabled: bool) -> dict:
    crit = {"min_days": 0, "min_sends": 0, "max_bounce_rate": 0.05, "max_complaint_rate": 0.01}
    return {"enabled": enabled,
            "phases": [{"phase": i + 1, "daily_cap": c, "criteria": crit} for i, c in enumerate(WARMUP_CAPS)]}


@pytest.fixture(scope="module")
def small_settings(tmp_path_factory):
    """Small limits so every rule binds. Built once per module (hypothesis re-runs the body many times)."""
    base = tmp_path_factory.mktemp("limits_cfg")
    return {
        "warmup_new_york": load_settings(write_config(base / "a", _small_limits("America/New_York"), _warmup(True))),
        "no_warmup_tokyo": load_settings(write_config(base / "b", _small_limits("Asia/Tokyo"), _warmup(False))),
        "warmup_utc": load_settings(write_config(base / "c", _small_limits("UTC"), _warmup(True))),
    }


def expected_daily_cap(variant: str, phase: int) -> int:
    if variant == "no_warmup_tokyo":
        return DAILY
    return min(WARMUP_CAPS[min(phase, len(WARMUP_CAPS)) - 1], DAILY)


def build_usage(accepted, domain, mailbox, now, settings, phase) -> Usage:
    """What engine/queries/outbox.py load_usage derives from the reserved rows."""
    win = calendar_windows(now, settings.limits.limits_timezone)
    month = [t for t, _, _ in accepted if t >= win["month_start"]]
    day = [t for t in month if t >= win["day_start"]]
    since = now - HOUR
    hour = sorted(t for t, _, _ in accepted if t > since)
    dom = sorted(t for t, d, _ in accepted if d == domain and t > since)
    mb = [t for t, _, m in accepted if m == mailbox]
    return Usage(month_count=len(month), day_count=len(day), hour_times=tuple(hour), domain_hour_times=tuple(dom),
                 mailbox_last=max(mb) if mb else None, warmup_phase=phase)


def local_day(t, tz):
    return t.astimezone(ZoneInfo(tz)).date()


def justify(code, accepted, domain, mailbox, now, tz, cap):
    """A refusal must be backed by the accepted history (no over-restriction)."""
    if code == Code.LIMIT_HOURLY:
        assert sum(1 for t, _, _ in accepted if now - HOUR < t <= now) >= HOURLY
    elif code == Code.LIMIT_DOMAIN_HOURLY:
        assert sum(1 for t, d, _ in accepted if d == domain and now - HOUR < t <= now) >= PER_DOMAIN
    elif code in (Code.LIMIT_DAILY, Code.WARMUP_CAP):
        assert sum(1 for t, _, _ in accepted if local_day(t, tz) == local_day(now, tz)) >= cap
    elif code == Code.LIMIT_MONTHLY:
        ym = local_day(now, tz).replace(day=1)
        assert sum(1 for t, _, _ in accepted if local_day(t, tz).replace(day=1) == ym) >= MONTHLY
    elif code == Code.MIN_DELAY:
        last = max(t for t, _, m in accepted if m == mailbox)
        assert (now - last).total_seconds() < MIN_DELAY
    else:  # pragma: no cover
        raise AssertionError(f"unexpected code {code}")


gaps = st.one_of(st.integers(0, 120), st.integers(0, 1800), st.integers(1800, 30_000), st.integers(30_000, 200_000))
attempts = st.lists(st.tuples(gaps, st.sampled_from(DOMAINS), st.sampled_from(MAILBOXES)), min_size=15, max_size=80)
# start between Oct 25 and Nov 3: crosses a month end and the US DST change
starts = st.integers(0, 9 * 86400).map(lambda s: datetime(2026, 10, 25, tzinfo=UTC) + timedelta(seconds=s))


def simulate(variant, settings, start, seq, phase):
    tz = settings.limits.limits_timezone
    cap = expected_daily_cap(variant, phase)
    assert settings.effective_daily_cap(phase)[0] == cap
    accepted: list[tuple[datetime, str, str]] = []
    now = start
    for gap, domain, mailbox in seq:
        now = now + timedelta(seconds=gap)
        reasons = check_limits(build_usage(accepted, domain, mailbox, now, settings, phase), settings, now)
        if not reasons:
            accepted.append((now, domain, mailbox))
            continue
        for r in reasons:
            justify(r.code, accepted, domain, mailbox, now, tz, cap)
            # not_before is the first instant at which this rule lets go (nothing else sent meanwhile)
            assert r.not_before is not None and r.not_before > now, r
            later = check_limits(build_usage(accepted, domain, mailbox, r.not_before, settings, phase), settings,
                                 r.not_before)
            assert r.code not in codes(later), (r, later)
            before = r.not_before - US
            earlier = check_limits(build_usage(accepted, domain, mailbox, before, settings, phase), settings, before)
            assert r.code in codes(earlier), (r, earlier)
    return accepted, cap


def assert_invariants(accepted, tz, cap):
    times = [t for t, _, _ in accepted]
    assert times == sorted(times)
    for i, t in enumerate(times):
        in_window = [u for u in times[i:] if u < t + HOUR]
        assert len(in_window) <= HOURLY, f"{len(in_window)} sends in the hour from {t}"
    by_domain = defaultdict(list)
    for t, d, _ in accepted:
        by_domain[d].append(t)
    for d, ts in by_domain.items():
        for i, t in enumerate(ts):
            assert len([u for u in ts[i:] if u < t + HOUR]) <= PER_DOMAIN, f"domain {d} over cap from {t}"
    per_day = Counter(local_day(t, tz) for t in times)
    assert not per_day or max(per_day.values()) <= cap, per_day
    per_month = Counter(local_day(t, tz).replace(day=1) for t in times)
    assert not per_month or max(per_month.values()) <= MONTHLY, per_month
    by_mailbox = defaultdict(list)
    for t, _, m in accepted:
        by_mailbox[m].append(t)
    for m, ts in by_mailbox.items():
        for a, b in zip(ts, ts[1:]):
            assert (b - a).total_seconds() >= MIN_DELAY, f"{m}: {a} then {b}"


@pytest.mark.parametrize("variant", ["warmup_new_york", "no_warmup_tokyo", "warmup_utc"])
@hsettings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(start=starts, seq=attempts, phase=st.integers(1, 4))
def test_property_accepted_sends_never_break_a_limit(small_settings, variant, start, seq, phase):
    s = small_settings[variant]
    accepted, cap = simulate(variant, s, start, seq, phase)
    assert_invariants(accepted, s.limits.limits_timezone, cap)


@hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(start=starts, burst=st.lists(st.tuples(st.integers(0, 40), st.sampled_from(DOMAINS),
                                               st.sampled_from(MAILBOXES)), min_size=10, max_size=40))
def test_property_dense_bursts_respect_hourly_and_domain(small_settings, start, burst):
    """Gaps shorter than the min delay: the hourly, per-domain and delay rules do all the work."""
    s = small_settings["warmup_utc"]
    accepted, cap = simulate("warmup_utc", s, start, burst, 3)
    assert_invariants(accepted, "UTC", cap)
    # the sender is not starved: the first attempt always goes out
    assert accepted and accepted[0][0] == start + timedelta(seconds=burst[0][0])
