"""Permissions and breakers with their state in the database: shared by every process, not held in memory."""
from __future__ import annotations

import pytest

from engine.core.errors import BreakerOpenError, PermissionDenied
from engine.adapters.executors import DefiniteFailure
from tests.conftest import LIVE, deep_merge
from tests.helpers import email

AUTONOMOUS = deep_merge(LIVE, {"rollout_phase": {"current": "autonomous"}})


def test_agent_rate_limit_is_counted_in_the_database_across_instances(app_factory):
    perms = {"agents": {"GHL_MASTER": {"rate_limits": {"per_minute": 3, "per_hour": 100}}}}
    a = app_factory(production=AUTONOMOUS, warmup={"enabled": False}, permissions=perms)
    # a second, independent engine on the same database: another process, another host
    b = app_factory(production=AUTONOMOUS, warmup={"enabled": False}, permissions=perms, init=False, clock=a.clock)
    assert a.gateway.submit(email("1", to="a@a1.io")).status == "sent"
    assert b.gateway.submit(email("2", to="b@b1.io")).status == "sent"
    assert a.gateway.submit(email("3", to="c@c1.io")).status == "sent"
    r = b.gateway.submit(email("4", to="d@d1.io"))
    assert r.status == "deferred" and r.codes == ["AGENT_RATE_LIMIT"]
    assert r.not_before == a.clock() + __import__("datetime").timedelta(minutes=1)
    a.clock.advance(61)
    assert b.gateway.submit(email("4", to="d@d1.io")).status == "sent"


def test_permission_decorator_guards_a_function_and_counts_in_the_database(app_factory):
    perms = {"agents": {"HUNTER": {"rate_limits": {"per_minute": 2}}}}
    a = app_factory(permissions=perms)
    b = app_factory(permissions=perms, init=False, clock=a.clock)
    calls = []

    @a.permissions.requires("read_linkedin_profile")
    def read_profile_a(url, *, agent):
        calls.append(url)
        return "profile"

    @b.permissions.requires("read_linkedin_profile")
    def read_profile_b(url, *, agent):
        calls.append(url)
        return "profile"

    assert read_profile_a("u1", agent="HUNTER") == "profile"
    assert read_profile_b("u2", agent="HUNTER") == "profile"
    with pytest.raises(PermissionDenied) as e:
        read_profile_a("u3", agent="HUNTER")
    assert e.value.code == "AGENT_RATE_LIMIT"
    with pytest.raises(PermissionDenied) as e:
        read_profile_b("u4", agent="GHL_MASTER")  # not granted to GHL_MASTER
    assert e.value.code == "PERMISSION_DENIED"
    with pytest.raises(PermissionDenied) as e:
        read_profile_b("u5", agent="MYSTERY")
    assert e.value.code == "UNKNOWN_AGENT"
    assert calls == ["u1", "u2"]
    st = a.status()
    assert st["permission_violations"] == 2


def test_breaker_decorator_state_is_shared_between_instances(app_factory):
    prod = {"circuit_breakers": {"apis": {"clay": {"failure_threshold": 2, "recovery_timeout_seconds": 60,
                                                   "success_threshold": 1}}}}
    a = app_factory(production=prod)
    b = app_factory(production=prod, init=False, clock=a.clock)
    outcome = {"fail": True}

    def call():
        if outcome["fail"]:
            raise ConnectionError("clay unreachable")
        return "ok"

    guarded_a, guarded_b = a.breakers.guard("clay")(call), b.breakers.guard("clay")(call)
    with pytest.raises(ConnectionError):
        guarded_a()
    with pytest.raises(ConnectionError):
        guarded_b()  # the second consecutive failure, from the other instance, opens it
    with pytest.raises(BreakerOpenError) as e:
        guarded_a()
    assert e.value.retry_at == a.clock() + __import__("datetime").timedelta(seconds=60)
    outcome["fail"] = False
    a.clock.advance(61)
    assert guarded_b() == "ok"  # the half-open trial succeeds and closes it
    assert {x.name: x.state for x in a.breakers.list()}["clay"] == "CLOSED"


def test_provider_rejection_is_final_and_releases_the_quota(app_factory):
    class Rejects:
        name, api, live = "rejects", "ghl", False

        def execute(self, msg):
            raise DefiniteFailure("422 contact email is invalid", counts_against_breaker=False)

    ex = Rejects()
    app = app_factory(production=deep_merge(AUTONOMOUS, {"email_limits": {"hourly_limit": 1}}),
                      warmup={"enabled": False}, executors={"email": ex, "crm": ex})
    r = app.gateway.submit(email("k1"))
    assert (r.status, r.codes) == ("denied", ["PROVIDER_REJECTED"])
    assert app.status()["usage"]["hourly"]["used"] == 0
    assert {x.name: x.state for x in app.breakers.list()}["ghl"] == "CLOSED"
    assert app.gateway.submit(email("k1")).status == "duplicate"


def test_warmup_advances_only_when_criteria_pass(app_factory):
    from engine.core.errors import PhaseChangeRefused

    app = app_factory(production=AUTONOMOUS)
    st = app.control.warmup_status()
    assert (st["phase"], st["daily_cap"], st["effective_daily_cap"]) == (1, 10, 10)
    with pytest.raises(PhaseChangeRefused, match="days in phase"):
        app.control.set_warmup_phase(2, "ramp", "ops")
    st = app.control.set_warmup_phase(2, "new domain is clean, approved by deliverability lead", "ops", force=True)
    assert st["phase"] == 2 and st["effective_daily_cap"] == 25
    assert app.status()["usage"]["daily"]["limit"] == 25
