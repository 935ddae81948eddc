"""Pure permission rules (engine/services/permissions.py: check_permission, check_agent_rate)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from engine.core.config import AgentRateLimits
from engine.services.permissions import check_agent_rate, check_permission
from engine.core.reasons import Code, Kind

UTC = timezone.utc
NOW = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)


def only(reasons, code):
    assert [r.code for r in reasons] == [code], reasons
    return reasons[0]


# ------------------------------------------------------------------------------------------ roles

def test_unknown_agent(settings):
    r = only(check_permission("ROGUE", "send_email", settings.permissions), Code.UNKNOWN_AGENT)
    assert r.detail == "agent 'ROGUE' is not in permissions.json"
    assert r.kind is Kind.PERMANENT


def test_agent_names_are_case_sensitive(settings):
    only(check_permission("ghl_master", "send_email", settings.permissions), Code.UNKNOWN_AGENT)


@pytest.mark.parametrize("agent", ["GHL_MASTER", "ROGUE"])
def test_unmapped_action(settings, agent):
    r = only(check_permission(agent, "send_sms", settings.permissions), Code.UNMAPPED_ACTION)
    assert r.detail == "action 'send_sms' is not in the action map"


def test_hunter_may_not_send_email(settings):
    r = only(check_permission("HUNTER", "send_email", settings.permissions), Code.PERMISSION_DENIED)
    assert r.detail == "HUNTER may not send_email"


@pytest.mark.parametrize("agent, action", [
    ("CRAFTER", "send_email"), ("ENRICHER", "crm_delete_contact"), ("SEGMENTOR", "crm_upsert_contact"),
    ("GATEKEEPER", "send_campaign_email"), ("GHL_MASTER", "read_linkedin_profile"),
])
def test_actions_not_granted_are_denied(settings, agent, action):
    only(check_permission(agent, action, settings.permissions), Code.PERMISSION_DENIED)


def test_platform_denied_when_role_grants_action_but_not_platform(settings_factory):
    s = settings_factory(permissions={"agents": {"HUNTER": {
        "actions": ["read_linkedin_profile", "search_sales_navigator", "enrich_lead"],
        "platforms": ["linkedin", "sales_navigator"]}}})
    r = only(check_permission("HUNTER", "enrich_lead", s.permissions), Code.PLATFORM_DENIED)
    assert r.detail == "HUNTER may not use platform clay"
    assert r.kind is Kind.PERMANENT
    assert check_permission("HUNTER", "read_linkedin_profile", s.permissions) == []


def test_platform_denied_for_explicit_platform(settings):
    r = only(check_permission("GHL_MASTER", "send_email", settings.permissions, platform="linkedin"),
             Code.PLATFORM_DENIED)
    assert r.detail == "GHL_MASTER may not use platform linkedin"


def test_platform_match_ignores_case(settings):
    assert check_permission("GHL_MASTER", "send_email", settings.permissions, platform="GHL") == []


def test_internal_actions_need_no_platform(settings_factory):
    s = settings_factory(permissions={"agents": {"CRAFTER": {"actions": ["draft_email"], "platforms": []}}})
    assert check_permission("CRAFTER", "draft_email", s.permissions) == []


@pytest.mark.parametrize("agent, action", [
    ("GHL_MASTER", "send_email"), ("HUNTER", "read_linkedin_profile"), ("HUNTER", "search_sales_navigator"),
    ("ENRICHER", "enrich_lead"), ("CRAFTER", "draft_email"), ("GATEKEEPER", "approve_campaign"),
])
def test_allowed(settings, agent, action):
    assert check_permission(agent, action, settings.permissions) == []


# ------------------------------------------------------------------------------------------ agent rate

def ago(*seconds):
    return [NOW - timedelta(seconds=s) for s in seconds]


def test_per_minute_limit_reached():
    lim = AgentRateLimits(per_minute=3, per_hour=100)
    r = only(check_agent_rate("HUNTER", ago(50, 30, 10), lim, NOW), Code.AGENT_RATE_LIMIT)
    assert r.detail == "HUNTER reached 3 actions per minute"
    assert r.kind is Kind.TEMPORARY
    assert r.not_before == NOW + timedelta(seconds=10)  # the call 50 s ago leaves the minute


def test_per_minute_one_below_passes():
    assert check_agent_rate("HUNTER", ago(50, 30), AgentRateLimits(per_minute=3, per_hour=100), NOW) == []


def test_per_minute_window_is_sliding():
    # a call exactly 60 s ago is out of the window
    assert check_agent_rate("HUNTER", ago(60, 30, 10), AgentRateLimits(per_minute=3), NOW) == []


def test_per_hour_limit_reached():
    lim = AgentRateLimits(per_minute=10, per_hour=4)
    times = ago(3500, 2000, 1000, 100)  # never more than one a minute
    r = only(check_agent_rate("ENRICHER", times, lim, NOW), Code.AGENT_RATE_LIMIT)
    assert r.detail == "ENRICHER reached 4 actions per hour"
    assert r.not_before == NOW + timedelta(seconds=100)


def test_per_hour_one_below_passes():
    assert check_agent_rate("ENRICHER", ago(3500, 2000, 100), AgentRateLimits(per_minute=10, per_hour=4), NOW) == []


def test_old_calls_do_not_count():
    assert check_agent_rate("X", ago(3600, 4000, 7200), AgentRateLimits(per_minute=1, per_hour=1), NOW) == []


def test_minute_limit_reported_first_when_both_reached():
    r = only(check_agent_rate("X", ago(5), AgentRateLimits(per_minute=1, per_hour=1), NOW), Code.AGENT_RATE_LIMIT)
    assert "per minute" in r.detail


def test_no_limits_configured():
    assert check_agent_rate("X", ago(*range(100)), AgentRateLimits(), NOW) == []


def test_zero_limit_blocks():
    r = only(check_agent_rate("X", [], AgentRateLimits(per_minute=0), NOW), Code.AGENT_RATE_LIMIT)
    assert r.not_before == NOW + timedelta(minutes=1)


def test_limits_from_config(settings_factory):
    s = settings_factory(permissions={"agents": {"HUNTER": {"rate_limits": {"per_minute": 2, "per_hour": 5}}}})
    lim = s.permissions.agents["HUNTER"].rate_limits
    assert check_agent_rate("HUNTER", ago(20), lim, NOW) == []
    r = only(check_agent_rate("HUNTER", ago(40, 20), lim, NOW), Code.AGENT_RATE_LIMIT)
    assert r.not_before == NOW + timedelta(seconds=20)
    r = only(check_agent_rate("HUNTER", ago(3000, 2400, 1800, 1200, 600), lim, NOW), Code.AGENT_RATE_LIMIT)
    assert r.detail == "HUNTER reached 5 actions per hour"
    assert r.not_before == NOW + timedelta(seconds=600)
