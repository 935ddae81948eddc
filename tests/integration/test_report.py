"""`alpha report weekly`: the week's KPIs counted from the database, as Markdown, CSV and JSON."""
from __future__ import annotations

import csv
import json
from datetime import timedelta

import pytest

from engine.core.errors import InvalidRequest
from engine.adapters.models import Approval, Lead, Reply, ReviewItem, WebhookEvent
from engine.queries.report import week_window, weekly
from tests.conftest import LIVE, WORK_TIME, deep_merge
from tests.helpers import alpha, alpha_env, email
from tests.integration.test_approvals import add_users

AUTONOMOUS = deep_merge(LIVE, {"rollout_phase": {"current": "autonomous"}})


@pytest.fixture
def week(app_factory):
    """A week with known events: 3 sent, 2 denied for spam, 2 replies (one interested, taken as a hot lead; one not
    interested) beside an out-of-office notice and an auto-reply (not replies), 1 bounce, 1 complaint, 2 approvals
    decided after 30 and 90 minutes, 4 blind labels (3 agree), and noise outside."""
    app = app_factory(production=AUTONOMOUS, warmup={"enabled": False})
    add_users(app.settings.config_dir)
    for i in range(3):
        assert app.gateway.submit(email(f"s{i}", to=f"p{i}@acme{i}.io")).status == "sent"
        app.clock.advance(minutes=10)
    for i in range(2):
        r = app.gateway.submit(email(f"x{i}", to=f"x{i}@spam{i}.io", body="Act now, free money!"))
        assert r.status == "denied"
    app.suppress("bounce@acme0.io", "bounced", "ghl")
    app.suppress("angry@acme1.io", "complained", "ghl")
    now = app.clock()
    with app.store.write() as s:
        lead = Lead(email="reply@acme2.io", company="Acme")
        s.add(lead)
        s.flush()
        for n in (1, 2):
            s.add(WebhookEvent(id=f"ghl:in-{n}", source="ghl", event_type="InboundMessage", received_at=now,
                               outcome="processed: replied"))
        s.add(WebhookEvent(id="ghl:old", source="ghl", event_type="InboundMessage",
                           received_at=now - timedelta(days=30), outcome="processed"))
        for label, at in (("interested", now), ("not_interested", now), ("out_of_office", now),
                          ("auto_reply", now), ("interested", now - timedelta(days=30))):
            s.add(Reply(lead_id=lead.id, email=lead.email, received_at=at, label=label, confidence=0.9))
        taken = app.approvals.raise_hot_lead(s, lead, "Reply", "yes please", "webhook:ghl", now)
        for minutes, status in ((30, "approved"), (90, "rejected")):
            s.add(Approval(kind="send", status=status, requested_by="GHL_MASTER", action_type="tier2_email",
                           requested_at=now - timedelta(minutes=minutes), decided_at=now, decided_by="bob"))
        for n, (ai, human) in enumerate((("1", "1"), ("2", "2"), ("3", "3"), ("1", "3"))):
            other = Lead(email=f"l{n}@acme.io")
            s.add(other)
            s.flush()
            s.add(ReviewItem(set_id=1, position=n, lead_id=other.id, ai_label=ai, human_label=human,
                             labeled_at=now, labeled_by="eve"))
    app.approvals.approve(taken.id, "bob")
    return app


def test_weekly_counts_match_the_arranged_week(week):
    app = week
    end = app.clock() + timedelta(minutes=1)
    r = weekly(app, end - timedelta(days=7), end)
    assert r["outbound"] == {"sent": 3, "replies": 2, "positive_replies": 1, "bounces": 1, "complaints": 1,
                             "unsubscribes": 0, "reply_rate": 0.6667, "bounce_rate": 0.3333,
                             "complaint_rate": 0.3333}
    a = r["approvals"]
    assert (a["approved"], a["rejected"], a["expired"]) == (1, 1, 0)
    assert a["latency_minutes_median"] == 60.0 and a["latency_minutes_p90"] == 84.0
    assert r["hot_leads"] == {"raised": 1, "taken": 1, "dismissed": 0, "expired": 0, "sla_breaches": 0}
    rp = r["replies"]
    assert rp["by_class"]["interested"] == 1 and rp["by_class"]["not_interested"] == 1
    assert (rp["human"], rp["out_of_office"], rp["auto_replies"]) == (2, 1, 1)
    [t] = r["agreement_trend"]
    assert t["labels"] == 4 and t["agreement"] == 0.75
    assert r["denials_by_reason"] == {"SPAM_CONTENT": 2}


def test_a_window_without_activity_reports_zeros(week):
    app = week
    later = app.clock() + timedelta(days=60)
    r = weekly(app, later - timedelta(days=7), later)
    assert r["outbound"]["sent"] == 0 and r["outbound"]["reply_rate"] is None
    assert r["approvals"]["latency_minutes_median"] is None and r["agreement_trend"] == []


def test_iso_week_windows_and_bad_weeks():
    start, end, label = week_window("2026-W48", WORK_TIME)
    assert start.isoformat() == "2026-11-23T00:00:00+00:00" and end - start == timedelta(days=7)
    assert label == "ISO week 2026-W48"
    with pytest.raises(InvalidRequest, match="2026-W47"):
        week_window("last week", WORK_TIME)


def test_cli_writes_markdown_and_csv(week, db_url, tmp_path):
    env = alpha_env(db_url, week.settings.config_dir, tmp_path)
    # the CLI's clock is the real one: ask for the ISO week of the arranged (fixed-clock) events
    y, w, _ = week.clock().isocalendar()
    wk = f"{y}-W{w:02d}"
    p = alpha(env, "report", "weekly", "--week", wk, "--out", str(tmp_path / "r"), check=True)
    assert "wrote" in p.stdout
    md = (tmp_path / "r" / f"weekly-{wk}.md").read_text()
    assert f"# Weekly review: ISO week {wk}" in md and "| sent | 3 |" in md and "| SPAM_CONTENT | 2 |" in md
    rows = list(csv.DictReader(open(tmp_path / "r" / f"weekly-{wk}.csv", encoding="utf-8")))
    assert {"section": "outbound", "metric": "sent", "value": "3"} in rows
    data = json.loads(alpha(env, "report", "weekly", "--week", wk, "--json", check=True).stdout)
    assert data["outbound"]["positive_replies"] == 1
    bad = alpha(env, "report", "weekly", "--week", "soon")
    assert bad.returncode != 0 and "ISO week" in bad.stderr and "Traceback" not in bad.stderr
