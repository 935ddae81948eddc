"""engine/queries/deliverability.py: sends per day against the cap, rates, domain health and events, on both
backends."""
from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta, timezone

import pytest

from engine.queries import deliverability as dv
from engine.core.errors import InvalidRequest
from engine.adapters.models import OutboxItem, Suppression
from tests.conftest import WORK_TIME

DAY = timedelta(days=1)


def add_sends(app, at: datetime, n: int, *, status: str = "sent", sender: str = "sales@alphaswarm.example",
              channel: str = "email") -> None:
    """``n`` outbox rows reserved (and, when sent, sent) at ``at``, straight into the table."""
    with app.store.write_plain() as s:
        for i in range(n):
            key = f"arranged-{uuid.uuid4().hex}"
            s.add(OutboxItem(idempotency_key=key, payload_hash="0" * 64, agent="GHL_MASTER", action="send_email",
                             channel=channel, to_email=f"p{i}@client.io", to_domain="client.io", from_email=sender,
                             status=status, created_at=at, updated_at=at,
                             reserved_at=at if status in ("sending", "sent", "reconcile") else None,
                             sent_at=at if status == "sent" else None))


def add_suppressions(app, at: datetime, n: int, reason: str, domain: str | None = "alphaswarm.example") -> None:
    source = f"ghl:LCEmailStats:{domain}" if domain else "manual"
    with app.store.write_plain() as s:
        for _i in range(n):
            s.add(Suppression(email=f"{uuid.uuid4().hex[:12]}@client.io", reason=reason, source=source,
                              created_at=at))


@pytest.fixture
def app(app_factory):
    return app_factory()  # FixedClock at WORK_TIME (2026-11-24 15:00 UTC), limits_timezone UTC


# ------------------------------------------------------------------------------------------------ window

def test_window_defaults_to_the_last_30_days_in_the_limits_time_zone(app):
    w = dv.window(app)
    assert (w.start, w.end, len(w.days)) == (date(2026, 10, 26), date(2026, 11, 24), 30)
    assert w.since == datetime(2026, 10, 26, tzinfo=timezone.utc)
    assert w.until == datetime(2026, 11, 25, tzinfo=timezone.utc)


def test_window_bounds_follow_local_midnights_across_dst():
    w = dv.Window(date(2026, 11, 1), date(2026, 11, 2), "America/New_York")  # DST ends on Nov 1
    assert w.bounds == [datetime(2026, 11, 1, 4, tzinfo=timezone.utc), datetime(2026, 11, 2, 5, tzinfo=timezone.utc),
                        datetime(2026, 11, 3, 5, tzinfo=timezone.utc)]


def test_window_is_bounded(app):
    with pytest.raises(InvalidRequest, match="starts"):
        dv.window(app, start=date(2026, 11, 2), end=date(2026, 11, 1))
    with pytest.raises(InvalidRequest, match="at most 366 days"):
        dv.window(app, start=date(2024, 1, 1), end=date(2026, 1, 1))


# ------------------------------------------------------------------------------------------------ daily

def test_sends_per_day_count_what_the_cap_counts(app):
    today = WORK_TIME.replace(hour=9)
    add_sends(app, today, 4)
    add_sends(app, today, 1, status="reconcile")
    add_sends(app, today, 2, status="shadowed")                   # never counted
    add_sends(app, today, 3, status="denied")
    add_sends(app, today, 1, channel="crm")                       # not an e-mail
    add_sends(app, today - DAY, 7, sender="hello@alphaswarm.example")
    add_sends(app, today - 40 * DAY, 9)                           # outside the window
    add_sends(app, today + DAY, 5)                                # after the window
    add_suppressions(app, today - DAY, 2, "bounced")
    add_suppressions(app, today - DAY, 1, "complained")
    rows = dv.daily(app, dv.window(app))
    assert len(rows) == 30
    by_day = {r["day"]: r for r in rows}
    t, y = by_day["2026-11-24"], by_day["2026-11-23"]
    assert (t["sent"], t["reconcile"], t["counted"], t["bounced"]) == (4, 1, 5, 0)
    assert (y["sent"], y["counted"], y["bounced"], y["complained"]) == (7, 7, 2, 1)
    assert y["bounce_rate"] == pytest.approx(2 / 7)
    assert sum(r["counted"] for r in rows) == 12
    assert all(r["cap"] == 10 and r["binding"] == "WARMUP_CAP" and r["warmup_phase"] == 1 for r in rows)
    assert [r["over_cap"] for r in rows].count(True) == 0
    add_sends(app, today, 6)  # 11 counted against a cap of 10
    assert dv.daily(app, dv.window(app))[-1]["over_cap"] is True


def test_day_edges_are_exact(app):
    add_sends(app, datetime(2026, 11, 23, 23, 59, 59, tzinfo=timezone.utc), 1)
    add_sends(app, datetime(2026, 11, 24, 0, 0, 0, tzinfo=timezone.utc), 2)
    rows = dv.daily(app, dv.window(app, days=2))
    assert [(r["day"], r["counted"]) for r in rows] == [("2026-11-23", 1), ("2026-11-24", 2)]


def test_the_cap_line_follows_the_warm_up_history(app):
    clock = app.clock
    clock.now = WORK_TIME - 3 * DAY
    app.control.set_warmup_phase(2, "ready", "test", force=True)
    clock.now = WORK_TIME - DAY
    app.control.set_warmup_phase(3, "ready", "test", force=True)
    clock.now = WORK_TIME
    rows = dv.daily(app, dv.window(app, days=5))
    assert [r["warmup_phase"] for r in rows] == [1, 2, 2, 3, 3]
    assert [r["cap"] for r in rows] == [10, 25, 25, 50, 50]
    # a window that starts after the last change uses the phase that change set
    assert [r["warmup_phase"] for r in dv.daily(app, dv.window(app, start=date(2026, 11, 24)))] == [3]


def test_the_cap_is_daily_limit_without_warm_up(app_factory):
    app = app_factory(warmup={"enabled": False})
    rows = dv.daily(app, dv.window(app, days=3))
    assert [(r["cap"], r["binding"]) for r in rows] == [(150, "LIMIT_DAILY")] * 3


def test_sends_held_by_a_cooling_domain_are_counted_once_per_send(app):
    from engine.adapters import audit

    with app.store.write() as s:
        for key in ("a", "a", "b"):  # "a" was re-checked and deferred twice
            audit.append(s, event="gateway.decision", actor="GHL_MASTER", now=WORK_TIME, status="deferred",
                         ref=key, reasons=["DOMAIN_COOLING"])
        audit.append(s, event="gateway.decision", actor="GHL_MASTER", now=WORK_TIME, status="deferred", ref="c",
                     reasons=["LIMIT_HOURLY"])
    assert dv.daily(app, dv.window(app, days=1))[0]["held_cooling"] == 2


# ------------------------------------------------------------------------------------------------ rates

def test_rates_per_sending_domain_against_the_guardrail_thresholds(app):
    day = WORK_TIME - 2 * DAY
    add_sends(app, day, 20)                                        # sales@alphaswarm.example
    add_sends(app, day, 10, sender="news@mail.other.example")
    add_suppressions(app, day, 2, "bounced")                       # 10% on alphaswarm.example: over 5%
    add_suppressions(app, day, 1, "bounced", domain="mail.other.example")
    add_suppressions(app, day, 1, "complained", domain=None)       # not attributed: total only
    r = dv.rates(app, dv.window(app))
    assert (r["max_bounce_rate"], r["max_complaint_rate"]) == (0.05, 0.001)
    assert (r["total"]["sent"], r["total"]["bounced"], r["total"]["complained"]) == (30, 3, 1)
    doms = {d["domain"]: d for d in r["domains"]}
    assert set(doms) == {"alphaswarm.example", "mail.other.example"}
    a = doms["alphaswarm.example"]
    assert (a["sent"], a["bounced"], a["bounce_rate"], a["bounce_over"], a["complaint_over"]) == (20, 2, 0.1, True,
                                                                                                  False)
    o = doms["mail.other.example"]
    assert (o["bounce_rate"], o["bounce_over"]) == (0.1, True)
    assert r["total"]["complaint_over"] is True


def test_rates_without_sends_are_none_not_zero(app):
    r = dv.rates(app, dv.window(app))
    assert r["domains"] == [] and r["total"]["bounce_rate"] is None and r["total"]["bounce_over"] is False


# ------------------------------------------------------------------------------------------------ domains

def test_domain_health_lists_configured_and_scored_domains(app):
    app.set_domain_health("mail.other.example", 40, "bounce storm", "test")
    rows = {d["domain"]: d for d in dv.domain_health(app)}
    assert set(rows) == {"alphaswarm.example", "mail.other.example"}
    assert rows["alphaswarm.example"]["score"] == 100.0 and rows["alphaswarm.example"]["cooling"] is False
    o = rows["mail.other.example"]
    assert (o["score"], o["cooling"], o["configured"], o["reason"]) == (40, True, False, "bounce storm")


def test_events_name_cooling_and_pauses_newest_first(app):
    clock = app.clock
    clock.now = WORK_TIME - 2 * DAY
    app.set_domain_health("alphaswarm.example", 45, "bounces", "test")
    clock.now = WORK_TIME - DAY
    app.control.set_kill(True, "bounce spike", "console:ops")
    app.set_domain_health("alphaswarm.example", 65, "recovered", "test")
    clock.now = WORK_TIME
    app.control.set_kill(False, "clear", "console:ops")
    ev = dv.events(app, dv.window(app))
    assert [e["what"] for e in ev] == ["kill switch off", "cooling ended", "kill switch ON: all sending paused",
                                       "cooling started"]
    assert ev[-1]["ref"] == "alphaswarm.example" and ev[-1]["score"] == 45
    assert dv.events(app, dv.window(app, start=date(2026, 11, 24))) == ev[:1]


def test_report_puts_it_together(app):
    r = dv.report(app, days=7)
    assert r["window"] == {"start": "2026-11-18", "end": "2026-11-24", "tz": "UTC", "days": 7}
    assert len(r["daily"]) == 7 and r["rates"]["total"]["sent"] == 0 and r["events"] == []
    assert [p["daily_cap"] for p in r["warmup_plan"]] == [10, 25, 50, 100, 150]
    assert r["warmup"]["phase"] == 1 and r["daily_limit"] == 150
