"""The gateway decides on facts it derives from what it stores, never on what the caller asserts (SQLite and
PostgreSQL): first touch from the outbox, tier and time zone from the stored lead (a claim may only narrow),
recipient identity from one canonical address for suppression, exclusion, first touch and per-domain limits."""
from __future__ import annotations

import unicodedata
from datetime import datetime, timezone

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from sqlmodel import select

from engine.core.clock import FixedClock
from engine.core.identity import canonical_address
from engine.adapters.models import AuditEntry, Lead, OutboxItem
from tests.conftest import LIVE, WORK_TIME, deep_merge
from tests.helpers import email

AUTONOMOUS = deep_merge(LIVE, {"rollout_phase": {"current": "autonomous"}})
NO_WARMUP = {"enabled": False}
# real working hours (08:00-18:00, Mon-Fri in the recipient's zone)
HOURS = deep_merge(AUTONOMOUS, {"working_hours": {"start": "08:00", "end": "18:00",
                                                  "days": ["mon", "tue", "wed", "thu", "fri"],
                                                  "default_timezone": "America/New_York"}})
EVIDENCE = [{"source": "lead record", "retrieved_at": "2026-11-24T14:00:00Z"}]


@pytest.fixture
def live(app_factory):
    return app_factory(production=AUTONOMOUS, warmup=NO_WARMUP)


def add_lead(app, address: str, **fields) -> int:
    with app.store.write_plain() as s:
        lead = Lead(email=address, created_at=app.clock(), **fields)
        s.add(lead)
        s.flush()
        return lead.id


def claims(app, key: str) -> list[dict]:
    import json

    with app.store.read() as s:
        row = s.exec(select(AuditEntry).where(AuditEntry.ref == key, AuditEntry.event == "gateway.decision")
                     .order_by(AuditEntry.seq.desc())).first()
    return json.loads(row.data).get("claims_ignored", [])


# ------------------------------------------------------------------------------------------- first touch

def test_first_touch_false_does_not_turn_the_deceptive_subject_rule_off(live):
    """Seen: `first_touch: false` turned the rule off for an address never mailed before."""
    r = live.gateway.submit(email("ft1", to="new@prospect.io", subject="Re: our call", first_touch=False))
    assert r.status == "denied" and "DECEPTIVE_SUBJECT" in r.codes
    assert any(c["claim"] == "first_touch" for c in claims(live, "ft1"))


def test_a_real_follow_up_may_say_re_whatever_spelling_was_mailed_first(live):
    assert live.gateway.submit(email("ft2", to="Pat.Lee@Prospect.io")).status == "sent"
    # the same person, spelled differently: the outbox history says this is not a first touch
    r = live.gateway.submit(email("ft3", to="pat.lee+sales@prospect.io", subject="Re: A question"))
    assert r.status == "sent", r.reasons


# ------------------------------------------------------------------------------------------- tier

def test_the_stored_tier_decides_approval_not_the_callers(live):
    """Seen: the caller's `tier` decided whether a human must approve."""
    add_lead(live, "ceo@bigfish.io", tier=1, company="Big Fish")
    r = live.gateway.submit(email("t1", to="ceo@bigfish.io", tier=3, evidence=EVIDENCE))
    assert r.status == "pending_approval" and r.codes == ["APPROVAL_REQUIRED"]
    assert any(c["claim"] == "tier" and c["derived"] == 1 for c in claims(live, "t1"))
    with live.store.read() as s:
        assert s.get(OutboxItem, r.outbox_id).tier == 1


def test_a_claimed_riskier_tier_still_narrows(live):
    add_lead(live, "vp@smallfish.io", tier=3)
    r = live.gateway.submit(email("t2", to="vp@smallfish.io", tier=1, evidence=EVIDENCE))
    assert r.status == "pending_approval"


def test_a_claimed_lead_id_of_another_lead_is_ignored(live):
    add_lead(live, "ceo@bigfish.io", tier=1)
    other = add_lead(live, "intern@elsewhere.io", tier=3)
    r = live.gateway.submit(email("t3", to="ceo@bigfish.io", lead_id=other, evidence=EVIDENCE))
    assert r.status == "pending_approval"
    assert any(c["claim"] == "lead_id" for c in claims(live, "t3"))


# ------------------------------------------------------------------------------------------- time zone

def test_the_leads_zone_decides_working_hours_not_the_callers(app_factory):
    """Seen: a New York lead mailed at 03:00 local because the action said Asia/Tokyo."""
    at_3am_ny = datetime(2026, 11, 24, 8, 0, tzinfo=timezone.utc)  # 03:00 New York, 17:00 Tokyo (Tuesday)
    app = app_factory(production=HOURS, warmup=NO_WARMUP, clock=FixedClock(at_3am_ny))
    add_lead(app, "buyer@nyc.io", timezone="America/New_York")
    r = app.gateway.submit(email("tz1", to="buyer@nyc.io", timezone="Asia/Tokyo"))
    assert r.status == "deferred" and "OUTSIDE_WORKING_HOURS" in r.codes
    assert "America/New_York" in " ".join(x.detail for x in r.reasons)
    assert any(c["claim"] == "timezone" for c in claims(app, "tz1"))


def test_a_claimed_zone_can_only_narrow(app_factory):
    """10:00 in New York is open; the caller's Tokyo (00:00) must also be open, so it waits."""
    app = app_factory(production=HOURS, warmup=NO_WARMUP)  # WORK_TIME: 10:00 New York
    add_lead(app, "buyer@nyc.io", timezone="America/New_York")
    assert app.gateway.submit(email("tz2", to="buyer@nyc.io", timezone="Asia/Tokyo")).status == "deferred"
    assert app.gateway.submit(email("tz3", to="buyer@nyc.io")).status == "sent"


def test_the_country_gives_the_zone_when_none_is_stored(app_factory):
    """Seen: leads without a time zone got the default zone although their country was known."""
    at_3am_ny = datetime(2026, 11, 24, 1, 0, tzinfo=timezone.utc)  # Tue 10:00 Tokyo, Mon 20:00 New York
    app = app_factory(production=HOURS, warmup=NO_WARMUP, clock=FixedClock(at_3am_ny))
    add_lead(app, "kacho@tokyo.jp", country="Japan")
    r = app.gateway.submit(email("tz4", to="kacho@tokyo.jp"))
    assert r.status == "sent", r.reasons
    add_lead(app, "buyer@boston.io", country="United States")
    assert app.gateway.submit(email("tz5", to="buyer@boston.io")).status == "deferred"


# ------------------------------------------------------------------------------------------- identity

SPELLINGS = [
    ("joe.bloggs@gmail.com", "JoeBloggs+promo@googlemail.com"),     # provider dots, plus-tag, alias, case
    ("anna@bücher.de", "anna@xn--bcher-kva.de"),                   # Unicode domain vs punycode
    ("anna@xn--bcher-kva.de", "Anna@BÜCHER.de"),
    (unicodedata.normalize("NFC", "zoë@cafe.io"), unicodedata.normalize("NFD", "zoë@cafe.io")),  # NFC vs NFD
    ("sam@corp.io", "sam+news@corp.io"),                            # plus-tags on any domain
]


@pytest.mark.parametrize("suppressed,sent_to", SPELLINGS)
def test_suppression_holds_for_every_spelling_of_the_address(live, suppressed, sent_to):
    """Seen: suppression was an exact string match."""
    live.suppress(suppressed, "unsubscribed", "test")
    r = live.gateway.submit(email("s1", to=sent_to))
    assert r.status == "denied" and "SUPPRESSED_RECIPIENT" in r.codes, r.reasons


def test_exclusion_matches_unicode_and_punycode_domains(app_factory, tmp_path):
    app = app_factory(production=AUTONOMOUS, warmup=NO_WARMUP)
    ex = app.settings.config_dir / "exclusions" / "customers.txt"
    ex.write_text(ex.read_text() + "\nbücher.de\n")
    from engine.core.config import load_settings

    app.settings = app.gateway.settings = load_settings(app.settings.config_dir)
    r = app.gateway.submit(email("e1", to="buyer@xn--bcher-kva.de"))
    assert r.status == "denied" and "EXCLUDED_RECIPIENT" in r.codes


def test_the_stored_company_is_checked_against_exclusions_whatever_the_caller_says(app_factory):
    app = app_factory(production=AUTONOMOUS, warmup=NO_WARMUP)
    ex = app.settings.config_dir / "exclusions" / "customers.txt"
    ex.write_text(ex.read_text() + "\nGlobex Corporation\n")
    from engine.core.config import load_settings

    app.settings = app.gateway.settings = load_settings(app.settings.config_dir)
    add_lead(app, "cfo@newdomain.io", company="Globex Corporation")
    r = app.gateway.submit(email("e2", to="cfo@newdomain.io", company="Someone Else Ltd"))
    assert r.status == "denied" and "EXCLUDED_RECIPIENT" in r.codes


def test_per_domain_limit_counts_every_spelling_of_the_domain(app_factory):
    app = app_factory(production=deep_merge(AUTONOMOUS, {"email_limits": {"per_domain_hourly_limit": 1}}),
                      warmup=NO_WARMUP)
    assert app.gateway.submit(email("d1", to="a@bücher.de")).status == "sent"
    r = app.gateway.submit(email("d2", to="b@XN--BCHER-KVA.DE"))
    assert r.status == "deferred" and "LIMIT_DOMAIN_HOURLY" in r.codes


# ------------------------------------------------------------------------------------------- lead state

def test_a_lead_that_replied_gets_nothing_more(live):
    lid = add_lead(live, "done@prospect.io", status="replied", sequence_stopped_at=WORK_TIME, stop_reason="replied")
    r = live.gateway.submit(email("q1", to="Done+x@Prospect.io", lead_id=lid))
    assert r.status == "denied" and "SEQUENCE_STOPPED" in r.codes


def test_an_out_of_office_lead_is_held_until_the_return_date(live):
    back = datetime(2026, 12, 1, 13, 0, tzinfo=timezone.utc)
    add_lead(live, "away@prospect.io", paused_until=back)
    r = live.gateway.submit(email("q2", to="away@prospect.io"))
    assert r.status == "deferred" and "LEAD_PAUSED" in r.codes and r.not_before == back


def test_a_queued_step_is_rechecked_against_the_lead_at_execution(app_factory):
    """Deferred by working hours, then the lead replies: the worker must not send it."""
    early = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)  # 07:00 New York
    clock = FixedClock(early)
    app = app_factory(production=HOURS, warmup=NO_WARMUP, clock=clock)
    lid = add_lead(app, "later@prospect.io", timezone="America/New_York")
    r = app.gateway.submit(email("q3", to="later@prospect.io"))
    assert r.status == "deferred"
    with app.store.write_plain() as s:
        lead = s.get(Lead, lid)
        lead.status, lead.sequence_stopped_at = "replied", early
        s.add(lead)
    clock.advance(seconds=3 * 3600)  # 10:00 New York
    out = app.gateway.process_due()
    assert [x.status for x in out] == ["denied"] and out[0].codes == ["SEQUENCE_STOPPED"]


# ------------------------------------------------------------------------------------------- property

def _variants(base_local: str, domain: str):
    """Ways an attacker might spell one suppressed mailbox."""
    def casing(s: str):
        return st.lists(st.booleans(), min_size=len(s), max_size=len(s)).map(
            lambda flips: "".join(c.upper() if f else c for c, f in zip(s, flips)))

    tag = st.one_of(st.just(""), st.text("abcxyz0123", min_size=1, max_size=6).map(lambda t: "+" + t))
    return st.tuples(casing(base_local), tag, casing(domain), st.sampled_from(["NFC", "NFD", "NFKC"]),
                     st.booleans()).map(
        lambda p: unicodedata.normalize(p[3], f"{p[0]}{p[1]}@{p[2]}{'.' if p[4] else ''}"))


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_property_no_spelling_of_a_suppressed_address_is_sent(live, data):
    base = data.draw(st.sampled_from([("renée", "exämple.io"), ("kim", "corp.io"), ("ann.lee", "gmail.com")]))
    live.suppress(f"{base[0]}@{base[1]}", "unsubscribed", "test")
    variant = data.draw(_variants(*base))
    if base[1] == "gmail.com":
        variant = variant.replace(".", "", 1) if data.draw(st.booleans()) and "." in variant.split("@")[0] else variant
    assert canonical_address(variant) == canonical_address(f"{base[0]}@{base[1]}")
    key = f"p-{abs(hash(variant))}-{data.draw(st.integers(0, 10**9))}"
    r = live.gateway.submit(email(key, to=variant))
    assert r.status != "sent", (variant, r.status, r.codes)
