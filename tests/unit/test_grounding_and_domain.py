"""Grounding (engine/rules/guardrails/grounding.py), high-risk policy and sending-domain health."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from engine.core.actions import parse_action
from engine.core.clock import iso
from engine.core.config import DomainHealthConfig
from engine.rules.guardrails import is_high_risk
from engine.rules.guardrails.domain_health import DomainState, check_domain_health, next_cooling
from engine.rules.guardrails.grounding import check_grounding
from engine.core.reasons import Code, Kind

UTC = timezone.utc
NOW = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
MAX_AGE = 720.0  # hours, as shipped


def ev(source="https://northwind.example/careers", age=timedelta(days=1), **extra):
    return {"source": source, "retrieved_at": iso(NOW - age), **extra}


def ungrounded(reasons):
    assert [r.code for r in reasons] == [Code.UNGROUNDED], reasons
    assert reasons[0].kind is Kind.PERMANENT
    return reasons[0].detail


# ------------------------------------------------------------------------------------------ grounding

def test_high_risk_without_evidence():
    assert ungrounded(check_grounding((), True, MAX_AGE, NOW)) == (
        "high-risk action without evidence (give evidence: [{source, retrieved_at}])")


@pytest.mark.parametrize("source", ["", "   ", None])
def test_evidence_without_source(source):
    d = ungrounded(check_grounding(({"source": source, "retrieved_at": iso(NOW)},), True, MAX_AGE, NOW))
    assert d == "evidence[0] has no source"


def test_evidence_missing_source_key():
    d = ungrounded(check_grounding(({"retrieved_at": iso(NOW)},), True, MAX_AGE, NOW))
    assert d == "evidence[0] has no source"


@pytest.mark.parametrize("retrieved_at", ["yesterday", "", "2026-13-01T00:00:00Z"])
def test_evidence_with_bad_time(retrieved_at):
    d = ungrounded(check_grounding(({"source": "crm", "retrieved_at": retrieved_at},), True, MAX_AGE, NOW))
    assert d == "evidence[0].retrieved_at is not an ISO-8601 time"


def test_stale_evidence():
    d = ungrounded(check_grounding((ev(source="linkedin", age=timedelta(days=31)),), True, MAX_AGE, NOW))
    assert d == "evidence[0] from linkedin is 31 days old (max 720 hours)"


def test_evidence_exactly_at_max_age_is_fresh_and_one_microsecond_older_is_stale():
    assert check_grounding((ev(age=timedelta(hours=MAX_AGE)),), True, MAX_AGE, NOW) == []
    ungrounded(check_grounding((ev(age=timedelta(hours=MAX_AGE, microseconds=1)),), True, MAX_AGE, NOW))


def test_future_dated_evidence():
    d = ungrounded(check_grounding((ev(age=-timedelta(hours=2)),), True, MAX_AGE, NOW))
    assert d == "evidence[0].retrieved_at is in the future"


def test_small_clock_skew_tolerated():
    assert check_grounding((ev(age=-timedelta(minutes=4)),), True, MAX_AGE, NOW) == []
    ungrounded(check_grounding((ev(age=-timedelta(minutes=6)),), True, MAX_AGE, NOW))


def test_every_problem_is_named():
    items = (ev(source="a", age=timedelta(days=40)), ev(source=""), ev(source="c", age=-timedelta(days=1)))
    d = ungrounded(check_grounding(items, True, MAX_AGE, NOW))
    assert d == ("evidence[0] from a is 40 days old (max 720 hours); evidence[1] has no source; "
                 "evidence[2].retrieved_at is in the future")


def test_one_fresh_item_among_stale_ones_passes():
    items = (ev(source="old1", age=timedelta(days=60)), ev(source=""), ev(source="fresh", age=timedelta(hours=3)),
             ev(source="old2", age=timedelta(days=90)))
    assert check_grounding(items, True, MAX_AGE, NOW) == []


def test_timezone_offset_in_retrieved_at():
    # 10:00-05:00 is 15:00 UTC: fresh, not in the future
    assert check_grounding(({"source": "crm", "retrieved_at": "2026-11-24T10:00:00-05:00"},), True, MAX_AGE,
                           NOW) == []


@pytest.mark.parametrize("evidence", [(), (ev(source=""),), (ev(age=timedelta(days=365)),)])
def test_non_high_risk_needs_no_evidence(evidence):
    assert check_grounding(evidence, False, MAX_AGE, NOW) == []


def test_custom_max_age():
    assert check_grounding((ev(age=timedelta(hours=23)),), True, 24, NOW) == []
    d = ungrounded(check_grounding((ev(source="s", age=timedelta(hours=49)),), True, 24, NOW))
    assert d == "evidence[0] from s is 2 days old (max 24 hours)"


# ------------------------------------------------------------------------------------------ high risk

def action(**kw):
    base = {"agent": "GHL_MASTER", "action": "send_email", "idempotency_key": "k1", "to": "dana@northwind.example",
            "from": "sales@alphaswarm.example", "subject": "Hello", "text": "hi"}
    base.update(kw)
    return parse_action({k: v for k, v in base.items() if v is not None})


def test_tier_one_is_high_risk(settings):
    assert is_high_risk(action(tier=1), settings)


@pytest.mark.parametrize("tier", [None, 2, 3])
def test_other_tiers_are_not_high_risk(settings, tier):
    assert not is_high_risk(action(tier=tier), settings)


def test_send_campaign_email_is_high_risk(settings):
    assert is_high_risk(action(action="send_campaign_email"), settings)


def test_crm_delete_contact_is_high_risk(settings):
    a = action(action="crm_delete_contact", subject=None, text=None, **{"from": None})
    assert is_high_risk(a, settings)


@pytest.mark.parametrize("name", ["crm_upsert_contact", "crm_read_contact"])
def test_ordinary_crm_actions_are_not_high_risk(settings, name):
    assert not is_high_risk(action(action=name, subject=None, text=None, **{"from": None}), settings)


def test_policy_from_config(settings_factory):
    s = settings_factory(production={"approval": {"high_risk_tiers": [2], "high_risk_actions": ["crm_upsert_contact"]}})
    assert is_high_risk(action(tier=2), s)
    assert not is_high_risk(action(tier=1), s)
    assert is_high_risk(action(action="crm_upsert_contact", subject=None, text=None, **{"from": None}), s)
    # the action map's own high_risk flag holds whatever the policy says
    assert is_high_risk(action(action="send_campaign_email"), s)


# ------------------------------------------------------------------------------------------ domain health

@pytest.fixture
def dh(settings) -> DomainHealthConfig:
    cfg = settings.production.domain_health
    assert (cfg.cooling_threshold, cfg.recovery_threshold, cfg.recheck_seconds) == (50, 60, 3600)
    return cfg


@pytest.mark.parametrize("score, was, expected", [
    (49.9, False, True),   # drops below 50: cools
    (50.0, False, False),  # exactly at the threshold: not below
    (80.0, False, False),
    (0.0, False, True),
    (49.0, True, True),
    (55.0, True, True),    # above cooling but below recovery: stays cooling
    (59.99, True, True),
    (60.0, True, False),   # recovery reached: resumes
    (75.0, True, False),
])
def test_next_cooling_hysteresis(dh, score, was, expected):
    assert next_cooling(score, was, dh) is expected


def test_hysteresis_sequence(dh):
    cooling = False
    trace = []
    for score in (70, 55, 49, 52, 58, 59.5, 60, 55, 51, 48):
        cooling = next_cooling(score, cooling, dh)
        trace.append(cooling)
    assert trace == [False, False, True, True, True, True, False, False, False, True]


def test_cooling_domain_defers_with_recheck(dh):
    reasons = check_domain_health(DomainState("alphaswarm.example", 42.5, True), dh, NOW)
    assert [r.code for r in reasons] == [Code.DOMAIN_COOLING]
    r = reasons[0]
    assert r.kind is Kind.TEMPORARY
    assert r.not_before == NOW + timedelta(seconds=3600)
    assert r.detail == "sending domain alphaswarm.example health 42.5 (cools below 50, resumes at 60)"


def test_healthy_or_unknown_domain_passes(dh):
    assert check_domain_health(None, dh, NOW) == []
    assert check_domain_health(DomainState("alphaswarm.example", 42.5, False), dh, NOW) == []
    assert check_domain_health(DomainState("alphaswarm.example", 90, False), dh, NOW) == []


def test_recheck_seconds_from_config(settings_factory):
    cfg = settings_factory(production={"domain_health": {"recheck_seconds": 120}}).production.domain_health
    r = check_domain_health(DomainState("alphaswarm.example", 10, True), cfg, NOW)[0]
    assert r.not_before == NOW + timedelta(seconds=120)
