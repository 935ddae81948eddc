"""The daily run under a cap: the best leads go first (tier 1, 2, 3, then the step due longest, then lead id),
and a lead without a time zone is judged in its country's."""
from __future__ import annotations

from datetime import timedelta

from sqlmodel import select

from engine.adapters.models import Lead, OutboxItem, SandboxMessage
from engine.services.pipeline import Pipeline, daily_run, lead_action
from tests.conftest import LIVE, WORK_TIME, deep_merge

# Live and autonomous (no approval step), real working hours (08-18 Mon-Fri, default America/New_York), no
# minimum delay between sends, and the warm-up plan's phase 1: 10 emails a day.
PRODUCTION = deep_merge(LIVE, {
    "rollout_phase": {"current": "autonomous"}, "approval": {"high_risk_tiers": []},
    "working_hours": {"start": "08:00", "end": "18:00", "days": ["mon", "tue", "wed", "thu", "fri"],
                      "default_timezone": "America/New_York"},
    "email_limits": {"hourly_limit": 100, "per_domain_hourly_limit": 100}})

BASE = dict(company_domain=None, employee_count=120, industry="B2B SaaS", country="US",
            timezone="America/New_York", source="test")
TITLES = {1: "VP Sales", 2: "Sales Manager", 3: "Sales Representative"}  # 100, 76 and 67 points


def lead(app, i: int, icp_tier: int, age_days: float, **kw) -> Lead:
    """Lead ``i``, a tier ``icp_tier`` fit for the ICP, created ``age_days`` ago."""
    return Lead(**{**BASE, "email": f"p{i}@co{i}.example", "first_name": f"P{i}", "company": f"Co{i}",
                   "company_domain": f"co{i}.example", "title": TITLES[icp_tier],
                   "created_at": app.clock() - timedelta(days=age_days), **kw})


def add(app, leads: list[Lead]) -> dict[str, Lead]:
    with app.store.write_plain() as s:
        for x in leads:
            s.add(x)
    tier_of = {title: tier for tier, title in TITLES.items()}
    assert all(app.score(x).tier == tier_of[x.title] for x in leads)  # the ICP gives the tier the test means
    return {x.email: x for x in leads}


def sent(app) -> list[str]:
    with app.store.read() as s:
        return [r.to_email for r in s.exec(select(OutboxItem).where(OutboxItem.status == "sent")
                                           .order_by(OutboxItem.id)).all()]


def test_under_a_warmup_cap_the_best_leads_go_first(app_factory):
    app = app_factory(production=PRODUCTION)
    # 30 leads, tier 3 first by id (and the oldest), then tier 2 (created in an order unlike their ids), then tier 1
    t3 = [lead(app, i, 3, 30 + i) for i in range(10)]
    t2_age = [3, 9, 1, 12, 5, 7, 2, 11, 4, 8, 6, 10, 13, 0.5]
    t2 = [lead(app, 10 + i, 2, age) for i, age in enumerate(t2_age)]
    t1 = [lead(app, 24 + i, 1, 0.1 * i) for i in range(6)]
    add(app, t3 + t2 + t1)

    summary = daily_run(app)

    assert summary["leads"] == 30 and summary["by_status"].get("sent") == 10, summary
    out = sent(app)
    oldest_t2 = [x.email for _, x in sorted(zip(t2_age, t2), key=lambda p: -p[0])][:4]
    # tier 1 (the oldest first), then the four tier-2 leads due longest, oldest first; no tier 3
    assert out == [x.email for x in reversed(t1)] + oldest_t2
    with app.store.read() as s:
        assert len(s.exec(select(SandboxMessage)).all()) == 10
        over = s.exec(select(OutboxItem).where(OutboxItem.status == "deferred")).all()
    assert len(over) == 20 and all(r.reasons[0]["code"] == "WARMUP_CAP" for r in over)


def test_a_follow_up_due_longer_goes_before_a_newer_first_touch_of_the_same_tier(app_factory):
    app = app_factory(production=PRODUCTION)
    app.clock.advance(days=-7)  # Tuesday a week earlier, 10:00 in New York
    early = [lead(app, i, 2, 1) for i in range(2)]
    add(app, early)
    assert daily_run(app)["by_status"] == {"sent": 2}
    app.clock.advance(days=7)  # their step 2 (3 days after step 1) has been due for 4 days
    fresh = [lead(app, 2 + i, 2, 2) for i in range(9)] + [lead(app, 11 + i, 1, 0) for i in range(3)]
    add(app, fresh)
    assert app.clock() == WORK_TIME

    daily_run(app)

    out = sent(app)[2:]
    assert len(out) == 10
    # tier 1, then the follow-ups due 4 days ago, then the first touches of leads created 2 days ago (by id)
    assert out == [x.email for x in fresh[9:]] + [x.email for x in early] + [x.email for x in fresh[:5]]
    with app.store.read() as s:
        keys = [r.idempotency_key for r in s.exec(select(OutboxItem).where(OutboxItem.status == "sent")
                                                   .order_by(OutboxItem.id)).all()]
    assert keys[5:7] == [f"seq-{x.id}-cold-2" for x in early]


def test_the_fresh_score_ranks_and_is_stored_before_the_gateway_decides(app_factory):
    app = app_factory(production=PRODUCTION)
    # stored under an older ICP: the tier-3 leads (first by id) look like tier 1, the tier-1 leads like tier 3
    weak = [lead(app, i, 3, 5, tier=1, score=95, route="cold") for i in range(6)]
    best = [lead(app, 6 + i, 1, 1, tier=3, score=40) for i in range(10)]
    add(app, weak + best)
    assert daily_run(app)["by_status"] == {"sent": 10, "deferred": 6}
    assert sorted(sent(app)) == sorted(x.email for x in best)
    with app.store.read() as s:
        stored = {x.email: (x.tier, x.route) for x in s.exec(select(Lead)).all()}
        tiers = {r.to_email: r.tier for r in s.exec(select(OutboxItem)).all()}
    assert stored == {**{x.email: (3, "cold") for x in weak}, **{x.email: (1, "cold") for x in best}}
    assert tiers == {**{x.email: 3 for x in weak}, **{x.email: 1 for x in best}}


def test_progress_is_read_for_all_leads_at_once(app_factory):
    from engine.services.pipeline import _progress_all

    app = app_factory(production=PRODUCTION)
    t = app.clock()

    def row(key, status, sent_at=None, lead_id=None):
        return OutboxItem(idempotency_key=key, payload_hash="0" * 64, agent="GHL_MASTER", action="send_email",
                          channel="email", status=status, sent_at=sent_at, created_at=t,
                          lead_id=lead_id or key.split("-")[1])

    with app.store.write_plain() as s:
        for r in (row("seq-1-cold-1", "sent", t - timedelta(days=5)),
                  row("seq-1-cold-2", "sent", t - timedelta(days=2)), row("seq-1-cold-3", "deferred"),
                  row("seq-2-ghost-1", "denied"), row("shadow-9-2", "shadowed", lead_id="2"),
                  row("internal-3-qa", "sent", t, lead_id="3"), row("seq-3-warm-2", "sent", t - timedelta(days=1)),
                  row("seq-3-warm-1", "sent", t - timedelta(days=3)),
                  row("seq-4-cold-1", "sent", t - timedelta(hours=1)),
                  row("seq-4-warm-1", "sent", t - timedelta(hours=1))):
            s.add(r)
    got = _progress_all(app)
    assert set(got) == {"1", "3", "4"}
    assert got["1"][:2] == ("cold", 2) and got["1"][2] == t - timedelta(days=2)
    assert got["3"][:2] == ("warm", 2) and got["3"][2] == t - timedelta(days=1)
    assert got["4"][:2] == ("warm", 1)  # the same send time: the newer row


def test_lead_action_carries_the_country_zone_when_the_lead_has_none(app_factory):
    app = app_factory(production=PRODUCTION)
    pipe = Pipeline(app, shadow=False)
    japan = lead(app, 1, 1, 1, country="Japan", timezone=None)
    add(app, [japan])
    fit = app.rescore(japan)

    def action(x):
        from engine.services.drafting import draft_for

        d = draft_for(x, ("cold", 1), pipe.pack, app.settings, app.secret, now=app.clock())
        return lead_action(app, x, fit, d, app.clock())

    assert action(japan)["timezone"] == "Asia/Tokyo"
    japan.country = "JPN"
    assert action(japan)["timezone"] == "Asia/Tokyo"
    japan.timezone = "Europe/Paris"  # a stored zone wins over the country
    assert action(japan)["timezone"] == "Europe/Paris"
    japan.timezone, japan.country = "  ", "Atlantis"  # nothing known: no zone, the gateway's default applies
    assert "timezone" not in action(japan)


def test_a_lead_in_japan_without_a_zone_is_decided_in_tokyo_working_hours(app_factory):
    app = app_factory(production=PRODUCTION)
    ny = lead(app, 1, 1, 1)
    tokyo = lead(app, 2, 1, 1, country="Japan", timezone=None)
    add(app, [ny, tokyo])
    # Tuesday 10:00 in New York is Wednesday 00:00 in Tokyo
    assert daily_run(app)["by_status"] == {"sent": 1, "deferred": 1}
    assert sent(app) == [ny.email]
    with app.store.read() as s:
        row = s.exec(select(OutboxItem).where(OutboxItem.to_email == tokyo.email)).one()
    assert row.status == "deferred" and row.reasons[0]["code"] == "OUTSIDE_WORKING_HOURS"
    assert "Asia/Tokyo" in row.reasons[0]["detail"]
