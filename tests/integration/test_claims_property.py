"""A caller's claims can only narrow the gateway's decision (hypothesis, SQLite): for two leads with the same
stored facts, the action with any claims (tier, time zone, first touch, lead id, company) is never decided more
permissively than the action without them."""
from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from engine.core.clock import FixedClock
from engine.adapters.models import Lead
from tests.conftest import LIVE, deep_merge
from tests.helpers import email

PROD = deep_merge(LIVE, {
    "rollout_phase": {"current": "autonomous"},
    "working_hours": {"start": "08:00", "end": "18:00", "days": ["mon", "tue", "wed", "thu", "fri"],
                      "default_timezone": "America/New_York"},
    "email_limits": {"monthly_limit": 10 ** 6, "daily_limit": 10 ** 5, "hourly_limit": 10 ** 5,
                     "per_domain_hourly_limit": 10 ** 5, "min_delay_seconds": 0},
})
# how permissive a result is: a claim may only move it to the right
RANK = {"sent": 0, "pending_approval": 1, "deferred": 2, "shadowed": 3, "denied": 4}
ZONES = ["America/New_York", "America/Los_Angeles", "Europe/Berlin", "Asia/Tokyo", "Australia/Sydney", None]
COUNTRIES = ["Japan", "Germany", "United States", "Brazil", "India", None]
_N = itertools.count()
EVIDENCE = [{"source": "lead record", "retrieved_at": "2026-11-20T00:00:00Z"}]


@pytest.fixture
def gate(app_factory):
    clock = FixedClock(datetime(2026, 11, 24, 15, 0, tzinfo=timezone.utc))
    app = app_factory(production=PROD, warmup={"enabled": False}, clock=clock)
    return app, clock


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tier=st.sampled_from([1, 2, 3, None]), zone=st.sampled_from(ZONES), country=st.sampled_from(COUNTRIES),
       hour=st.integers(0, 23 * 4), subject=st.sampled_from(["A question", "Re: A question", "Fwd: pipeline"]),
       claim_tier=st.sampled_from([1, 2, 3, None]), claim_zone=st.sampled_from(ZONES),
       claim_first=st.sampled_from([True, False, None]), claim_company=st.sampled_from([None, "Acme", ""]),
       claim_other_lead=st.booleans())
def test_property_claims_never_widen_a_decision(gate, tier, zone, country, hour, subject, claim_tier, claim_zone,
                                                claim_first, claim_company, claim_other_lead):
    app, clock = gate
    n = next(_N)
    clock.now = datetime(2026, 11, 23, 0, 0, tzinfo=timezone.utc) + timedelta(minutes=15 * hour)
    ids = []
    with app.store.write_plain() as s:
        for who in ("plain", "claims", "other"):
            lead = Lead(email=f"{who}{n}@lead{n}.io", tier=tier if who != "other" else 3, timezone=zone,
                        country=country, company="Prospect Co", created_at=clock.now)
            s.add(lead)
            s.flush()
            ids.append(lead.id)
    plain = app.gateway.submit(email(f"plain-{n}", to=f"plain{n}@lead{n}.io", subject=subject, evidence=EVIDENCE))
    claims = {"tier": claim_tier, "timezone": claim_zone, "first_touch": claim_first,
              "company": claim_company or None, "lead_id": ids[2] if claim_other_lead else None}
    claimed = app.gateway.submit(email(f"claims-{n}", to=f"claims{n}@lead{n}.io", subject=subject, evidence=EVIDENCE,
                                       **{k: v for k, v in claims.items() if v is not None}))
    assert RANK[claimed.status] >= RANK[plain.status], (claims, plain.to_dict(True), claimed.to_dict(True))
