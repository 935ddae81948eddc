"""Circuit-breaker transitions as pure functions (engine/adapters/breakers.py: admit, on_success, on_failure)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from engine.adapters.breakers import CLOSED, HALF_OPEN, OPEN, TRIAL_LEASE, Snapshot, admit, on_failure, on_success
from engine.core.config import BreakerSettings

UTC = timezone.utc
T0 = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
CFG = BreakerSettings(failure_threshold=3, recovery_timeout_seconds=300, success_threshold=2)
RECOVERY = timedelta(seconds=300)


def fail(b, now, n=1, cfg=CFG):
    for _ in range(n):
        b = on_failure(b, cfg, now, "HTTP 503")
    return b


def opened(now=T0):
    b = fail(Snapshot(), now, CFG.failure_threshold)
    assert b.state == OPEN
    return b


def half_open(now):
    ok, b, _ = admit(opened(), CFG, now)
    assert ok and b.state == HALF_OPEN
    return b


# ------------------------------------------------------------------------------------------ CLOSED -> OPEN

def test_closed_admits():
    assert admit(Snapshot(), CFG, T0) == (True, Snapshot(), None)


def test_opens_after_failure_threshold_consecutive_failures():
    b = fail(Snapshot(), T0, 2)
    assert b.state == CLOSED and b.failures == 2
    assert admit(b, CFG, T0)[0] is True
    b = on_failure(b, CFG, T0, "HTTP 503: upstream down")
    assert b.state == OPEN
    assert b.failures == 3
    assert b.opened_at == T0
    assert b.retry_at == T0 + RECOVERY
    assert b.last_error == "HTTP 503: upstream down"


def test_a_success_in_between_resets_the_count():
    b = fail(Snapshot(), T0, 2)
    b = on_success(b, CFG, T0)
    assert b.state == CLOSED and b.failures == 0
    b = fail(b, T0, 2)
    assert b.state == CLOSED
    b = fail(b, T0, 1)
    assert b.state == OPEN


def test_failure_threshold_of_one():
    cfg = BreakerSettings(failure_threshold=1, recovery_timeout_seconds=10, success_threshold=1)
    assert on_failure(Snapshot(), cfg, T0, "x").state == OPEN


def test_long_error_is_truncated():
    b = on_failure(Snapshot(), CFG, T0, "x" * 2000)
    assert len(b.last_error) == 500


# ------------------------------------------------------------------------------------------ OPEN

@pytest.mark.parametrize("after", [timedelta(0), timedelta(seconds=1), RECOVERY - timedelta(microseconds=1)])
def test_open_refuses_until_recovery_timeout(after):
    b = opened()
    ok, new, retry_at = admit(b, CFG, T0 + after)
    assert ok is False
    assert new == b
    assert retry_at == T0 + RECOVERY


def test_late_success_while_open_changes_nothing():
    b = opened()
    assert on_success(b, CFG, T0 + timedelta(seconds=5)) == b


def test_failure_while_open_keeps_retry_at():
    b = opened()
    b2 = on_failure(b, CFG, T0 + timedelta(seconds=5), "late")
    assert b2.state == OPEN and b2.retry_at == b.retry_at and b2.failures == b.failures + 1


# ------------------------------------------------------------------------------------------ HALF_OPEN

def test_after_recovery_timeout_one_trial_is_admitted():
    t = T0 + RECOVERY
    ok, b, retry_at = admit(opened(), CFG, t)
    assert ok is True and retry_at is None
    assert b.state == HALF_OPEN
    assert b.trial_started_at == t
    assert b.successes == 0


def test_second_admit_during_trial_lease_is_refused():
    t = T0 + RECOVERY
    b = half_open(t)
    for later in (timedelta(0), timedelta(seconds=1), TRIAL_LEASE - timedelta(microseconds=1)):
        ok, b2, retry_at = admit(b, CFG, t + later)
        assert ok is False
        assert b2 == b
        assert retry_at == t + TRIAL_LEASE


def test_expired_trial_lease_admits_a_new_trial():
    t = T0 + RECOVERY
    b = half_open(t)
    ok, b2, retry_at = admit(b, CFG, t + TRIAL_LEASE)
    assert ok is True and retry_at is None
    assert b2.state == HALF_OPEN and b2.trial_started_at == t + TRIAL_LEASE


def test_half_open_closes_after_success_threshold_successes():
    t = T0 + RECOVERY
    b = half_open(t)
    b = on_success(b, CFG, t + timedelta(seconds=1))
    assert b.state == HALF_OPEN and b.successes == 1
    assert b.trial_started_at is None
    # the next trial may start at once, and is again exclusive
    ok, b, _ = admit(b, CFG, t + timedelta(seconds=2))
    assert ok and b.state == HALF_OPEN
    assert admit(b, CFG, t + timedelta(seconds=3))[0] is False
    b = on_success(b, CFG, t + timedelta(seconds=4))
    assert b.state == CLOSED
    assert (b.failures, b.successes, b.retry_at, b.opened_at, b.trial_started_at) == (0, 0, None, None, None)
    assert admit(b, CFG, t + timedelta(seconds=5))[0] is True


def test_half_open_failure_opens_again_with_new_retry_at():
    t = T0 + RECOVERY + timedelta(seconds=7)
    b = half_open(t)
    b = on_success(b, CFG, t)  # one success is not enough
    ok, b, _ = admit(b, CFG, t + timedelta(seconds=10))
    assert ok
    tf = t + timedelta(seconds=20)
    b = on_failure(b, CFG, tf, "HTTP 500")
    assert b.state == OPEN
    assert b.retry_at == tf + RECOVERY
    assert b.opened_at == tf
    assert b.successes == 0 and b.trial_started_at is None
    assert b.last_error == "HTTP 500"
    ok, _, retry_at = admit(b, CFG, tf + timedelta(seconds=1))
    assert ok is False and retry_at == tf + RECOVERY
    assert admit(b, CFG, tf + RECOVERY)[0] is True


def test_success_threshold_of_one_closes_on_first_success():
    cfg = BreakerSettings(failure_threshold=1, recovery_timeout_seconds=60, success_threshold=1)
    b = on_failure(Snapshot(), cfg, T0, "x")
    ok, b, _ = admit(b, cfg, T0 + timedelta(seconds=60))
    assert ok and b.state == HALF_OPEN
    assert on_success(b, cfg, T0 + timedelta(seconds=61)).state == CLOSED


# ------------------------------------------------------------------------------------------ forced OPEN

@pytest.mark.parametrize("after", [timedelta(0), RECOVERY, timedelta(days=30)])
def test_forced_open_never_auto_recovers(after):
    b = Snapshot(state=OPEN, opened_at=T0, retry_at=None, forced=True)
    now = T0 + after
    ok, new, retry_at = admit(b, CFG, now)
    assert ok is False
    assert new == b and new.state == OPEN
    assert retry_at == now + RECOVERY


def test_forced_open_ignores_successes():
    b = Snapshot(state=OPEN, opened_at=T0, forced=True)
    assert on_success(b, CFG, T0 + timedelta(days=1)) == b
    assert admit(on_success(b, CFG, T0), CFG, T0 + timedelta(days=1))[0] is False
