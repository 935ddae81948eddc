"""What a classified reply does, on SQLite and PostgreSQL: a person's reply cancels the lead's queued steps
(deferred or pending approval) in the same transaction and the worker then sends nothing; "please remove me" is
suppressed; out of office pauses the lead until its return date and is not a reply; a bounce notification
suppresses and is not a hot lead; only interest and referrals raise hot leads; the weekly report counts by class.
Every other opt-out path (one-click unsubscribe, DND, a bounce event) cancels the queue the same way."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from sqlmodel import select

from engine.adapters import audit
from engine.services.events import EventService
from engine.adapters.models import Approval, Lead, OutboxItem, Reply, SandboxMessage, Suppression, WebhookEvent
from engine.queries.report import weekly
from tests.conftest import LIVE, deep_merge
from tests.helpers import email
from tests.integration.test_approvals import add_users

# assisted: every send waits for a person; working hours from 11:00 New York, so at the fixed clock (10:00 New
# York) a send is deferred, and after 11:00 it is pending approval
ASSISTED_11 = deep_merge(LIVE, {"rollout_phase": {"current": "assisted"},
                                "working_hours": {"start": "11:00", "end": "18:00",
                                                  "days": ["mon", "tue", "wed", "thu", "fri"]}})
LEAD = "ana@target.io"


@pytest.fixture
def app(app_factory, monkeypatch):
    monkeypatch.delenv("ALPHA_USERS_FILE", raising=False)
    monkeypatch.delenv("ALPHA_REPLY_SECOND_OPINION", raising=False)
    app = app_factory(production=ASSISTED_11, warmup={"enabled": False})
    add_users(app.settings.config_dir)
    return app


def make_lead(app, addr=LEAD, cid="cid-ana", **kw) -> int:
    with app.store.write() as s:
        lead = Lead(email=addr, ghl_contact_id=cid, company="Target", status="cold", sequence="cold", **kw)
        s.add(lead)
        s.flush()
        return lead.id


def queue_two(app, to=LEAD, prefix="f") -> tuple[int, int]:
    """A follow-up deferred by working hours, then (an hour and a half later) one pending approval."""
    deferred = app.gateway.submit(email(f"{prefix}-step2", to=to))
    assert deferred.status == "deferred" and deferred.codes == ["OUTSIDE_WORKING_HOURS"]
    app.clock.advance(minutes=90)
    pending = app.gateway.submit(email(f"{prefix}-step3", to=to, subject="Following up on pipeline reviews"))
    assert pending.status == "pending_approval"
    return deferred.outbox_id, pending.outbox_id


def reply(app, body, *, cid="cid-ana", addr=LEAD, subject="Re: A question about your sales team", sender=None,
          wid=None, alerts=None):
    p = {"type": "InboundMessage", "webhookId": wid or f"in-{abs(hash((body, cid, subject, sender)))}",
         "contactId": cid, "email": addr, "direction": "inbound", "messageType": "Email", "body": body,
         "subject": subject}
    if sender:
        p["from"] = sender
    return EventService(app, alert=(alerts.append if alerts is not None else lambda a: None)).ghl(
        p, json.dumps(p).encode())


def rows(app, *ids):
    with app.store.read() as s:
        return [s.get(OutboxItem, i) for i in ids]


def lead_of(app, addr=LEAD) -> Lead:
    with app.store.read() as s:
        return s.exec(select(Lead).where(Lead.email == addr)).one()


def sandbox(app) -> list:
    with app.store.read() as s:
        return list(s.exec(select(SandboxMessage)).all())


def hot_leads(app) -> list[Approval]:
    with app.store.read() as s:
        return list(s.exec(select(Approval).where(Approval.kind == "hot_lead")).all())


# ------------------------------------------------------------------------------------------ cancelling the queue

def test_a_reply_cancels_the_deferred_and_the_pending_follow_up_and_the_worker_sends_nothing(app):
    lead_id = make_lead(app)
    deferred_id, pending_id = queue_two(app)
    [before] = [r for r in rows(app, pending_id)]
    out = reply(app, "No thanks, we're happy with what we have.")
    assert out.status == "processed" and "2 queued step(s) cancelled" in out.detail
    d, p = rows(app, deferred_id, pending_id)
    for row in (d, p):
        assert row.status == "cancelled" and row.lead_id == str(lead_id)
        [reason] = row.reasons
        assert reason["code"] == "SEQUENCE_STOPPED" and reason["detail"].startswith("lead replied (not_interested) at ")
    with app.store.read() as s:
        appr = s.get(Approval, before.approval_id)
        assert (appr.status, appr.decided_by) == ("cancelled", "system") and "not_interested" in appr.reason
        cancelled = [e for e in s.exec(select(audit.AuditEntry).where(audit.AuditEntry.event == "outbox.cancelled"))]
        assert sorted(e.outbox_id for e in cancelled) == sorted([deferred_id, pending_id])
        [r] = s.exec(select(Reply)).all()
        assert (r.lead_id, r.label, r.cancelled) == (lead_id, "not_interested", 2) and r.source.startswith("ghl:")
        assert audit.verify(s).ok
    lead = lead_of(app)
    assert (lead.status, lead.reply_class) == ("replied", "not_interested") and lead.sequence_stopped_at
    # the pending approval can no longer be approved, and the worker finds nothing to send, even hours later
    with pytest.raises(Exception, match="not pending"):
        app.approvals.approve(before.approval_id, "bob")
    app.clock.advance(hours=3)
    assert app.gateway.process_due() == []
    assert sandbox(app) == [] and [r.status for r in rows(app, deferred_id, pending_id)] == ["cancelled"] * 2
    assert not hot_leads(app)


def test_an_approved_but_not_yet_sent_follow_up_is_cancelled_too(app):
    make_lead(app)
    _, pending_id = queue_two(app)
    [row] = rows(app, pending_id)
    app.approvals.approve(row.approval_id, "bob")  # approved: the worker would send it at its next pass
    reply(app, "Not right now - try me again in Q2.")
    [row] = rows(app, pending_id)
    assert row.status == "cancelled"
    assert app.gateway.process_due() == [] and sandbox(app) == []


def test_the_cancellation_is_in_the_replys_transaction(app, monkeypatch):
    """A failure while the reply is handled leaves everything as it was: no half-cancelled queue."""
    make_lead(app)
    deferred_id, pending_id = queue_two(app)
    real = audit.append

    def boom(s, *, event, **kw):
        if event == "reply.classified":
            raise RuntimeError("database went away")
        return real(s, event=event, **kw)

    monkeypatch.setattr(audit, "append", boom)
    with pytest.raises(RuntimeError):
        reply(app, "No thanks.", wid="in-fail")
    monkeypatch.setattr(audit, "append", real)
    assert [r.status for r in rows(app, deferred_id, pending_id)] == ["deferred", "pending_approval"]
    with app.store.read() as s:
        assert s.exec(select(Reply)).all() == [] and s.get(WebhookEvent, "ghl:in-fail") is None
    assert lead_of(app).sequence_stopped_at is None
    reply(app, "No thanks.", wid="in-fail")  # the retried delivery is handled in full
    assert [r.status for r in rows(app, deferred_id, pending_id)] == ["cancelled", "cancelled"]


def test_a_queued_row_is_found_by_its_canonical_recipient(app):
    make_lead(app)
    app.clock.advance(minutes=90)
    other = app.gateway.submit(email("by-key", to="Ana+news@Target.io"))  # the same mailbox, another spelling
    assert other.status == "pending_approval"
    reply(app, "We're all set, thanks.")
    assert rows(app, other.outbox_id)[0].status == "cancelled"


def test_a_replayed_reply_is_handled_once(app):
    make_lead(app)
    alerts: list = []
    assert reply(app, "Sounds great, send a calendar link", wid="in-7", alerts=alerts).status == "processed"
    assert reply(app, "Sounds great, send a calendar link", wid="in-7", alerts=alerts).status == "duplicate"
    with app.store.read() as s:
        assert len(s.exec(select(Reply)).all()) == 1
    assert len(alerts) == 1 and len(hot_leads(app)) == 1


# ------------------------------------------------------------------------------------------ opt-outs

def test_please_remove_me_suppresses_cancels_and_is_not_a_hot_lead(app):
    make_lead(app)
    deferred_id, pending_id = queue_two(app)
    alerts: list = []
    out = reply(app, "Not interested, please remove me.\n\nOn Mon, Sam wrote:\n> Interested in a demo?", alerts=alerts)
    assert "suppressed (unsubscribed)" in out.detail
    with app.store.read() as s:
        sup = s.get(Suppression, LEAD)
        assert (sup.reason, sup.source, sup.address_key) == ("unsubscribed", "reply", LEAD)
    assert [r.status for r in rows(app, deferred_id, pending_id)] == ["cancelled", "cancelled"]
    lead = lead_of(app)
    assert (lead.status, lead.reply_class) == ("unsubscribed", "unsubscribe")
    assert alerts == [] and hot_leads(app) == []
    # and nothing new goes to any spelling of the address
    app.clock.advance(minutes=1)
    assert "SUPPRESSED_RECIPIENT" in app.gateway.submit(email("after", to="ANA@target.io")).codes


def test_one_click_unsubscribe_cancels_the_queue(app):
    make_lead(app)
    deferred_id, pending_id = queue_two(app)
    assert EventService(app).unsubscribe(LEAD) is True
    d, p = rows(app, deferred_id, pending_id)
    assert (d.status, p.status) == ("cancelled", "cancelled")
    assert d.reasons[0]["code"] == "SEQUENCE_STOPPED" and "unsubscribed (one-click)" in d.reasons[0]["detail"]
    with app.store.read() as s:
        assert s.get(Approval, p.approval_id).status == "cancelled"
        assert s.get(Suppression, LEAD).address_key == LEAD


@pytest.mark.parametrize("reason,status", [("manual", "cold"), ("unsubscribed", "unsubscribed"),
                                           ("bounced", "bounced"), ("complained", "complained")])
def test_a_person_suppressing_the_address_cancels_the_queue_and_stops_the_sequence(app, reason, status):
    """Seen: `alpha suppress` / the console only added the address to the list; the lead's queued steps and their
    pending approvals stayed waiting (refused only when the worker reached them). A person's no wins at once."""
    make_lead(app)
    deferred_id, pending_id = queue_two(app)
    assert app.suppress("Ana@Target.io", reason, "console:olga", detail="asked on the phone") is True
    d, p = rows(app, deferred_id, pending_id)
    assert (d.status, p.status) == ("cancelled", "cancelled")
    assert d.reasons[0]["code"] == "SEQUENCE_STOPPED" and "console:olga" in d.reasons[0]["detail"]
    with app.store.read() as s:
        appr = s.get(Approval, p.approval_id)
        assert (appr.status, appr.decided_by) == ("cancelled", "system")
    lead = lead_of(app)
    assert lead.sequence_stopped_at is not None and lead.status == status and reason in lead.stop_reason
    assert app.suppress(LEAD, reason, "console:olga") is False  # once


@pytest.mark.parametrize("event", [
    {"type": "ContactDndUpdate", "webhookId": "d-1", "id": "cid-ana", "email": LEAD, "dnd": True},
    {"type": "LCEmailStats", "webhookPayload": {"event": "failed", "id": "b-1", "severity": "permanent",
                                                "recipient": LEAD}},
    {"type": "LCEmailStats", "webhookPayload": {"event": "complained", "id": "c-1", "recipient": LEAD}},
])
def test_dnd_bounce_and_complaint_events_cancel_the_queue(app, event):
    make_lead(app)
    deferred_id, pending_id = queue_two(app)
    assert EventService(app).ghl(event, json.dumps(event).encode()).status == "processed"
    assert [r.status for r in rows(app, deferred_id, pending_id)] == ["cancelled", "cancelled"]


# ------------------------------------------------------------------------------------------ out of office

def test_out_of_office_pauses_until_the_return_date_and_is_not_a_reply(app):
    make_lead(app)
    deferred_id, pending_id = queue_two(app)
    alerts: list = []
    out = reply(app, "Thank you for your email. I am out of the office until 14 December with limited access to "
                     "email. For urgent matters please contact ryan@target.io.",
                subject="Automatic reply: A question about your sales team", alerts=alerts)
    until = datetime(2026, 12, 15, tzinfo=timezone.utc)  # the day after the return date (a day's margin)
    assert "paused until 2026-12-15" in out.detail
    lead = lead_of(app)
    assert lead.paused_until == until and lead.reply_class == "out_of_office"
    assert lead.sequence_stopped_at is None and lead.status == "cold"  # the sequence goes on after the pause
    for row in rows(app, deferred_id, pending_id):
        assert row.status == "deferred" and row.not_before == until
        assert [r["code"] for r in row.reasons] == ["LEAD_PAUSED"]
    assert alerts == [] and hot_leads(app) == []
    with app.store.read() as s:
        [r] = s.exec(select(Reply)).all()
        assert r.label == "out_of_office" and r.return_date == datetime(2026, 12, 14, tzinfo=timezone.utc)
    # the worker holds them until then
    app.clock.advance(days=3)
    assert app.gateway.process_due() == [] and sandbox(app) == []
    # and the weekly report does not count it as a reply
    r = weekly(app, app.clock() - timedelta(days=7), app.clock())
    assert r["outbound"]["replies"] == 0 and r["replies"]["out_of_office"] == 1


def test_out_of_office_without_a_date_pauses_a_week(app):
    make_lead(app)
    reply(app, "I'm currently out of the office.", subject="Out of Office")
    assert lead_of(app).paused_until == datetime(2026, 12, 2, tzinfo=timezone.utc)  # 24 Nov + 7 days + 1


# ------------------------------------------------------------------------------------------ bounces, auto-replies

def test_a_bounce_notification_suppresses_cancels_and_is_not_a_hot_lead(app):
    make_lead(app)
    deferred_id, pending_id = queue_two(app)
    alerts: list = []
    reply(app, "Your message to ana@target.io couldn't be delivered.\n550 5.1.1 RESOLVER.ADR.RecipientNotFound",
          subject="Undeliverable: A question about your sales team",
          sender="Mail Delivery System <MAILER-DAEMON@mx.target.io>", alerts=alerts)
    with app.store.read() as s:
        sup = s.get(Suppression, LEAD)
        assert (sup.reason, sup.source) == ("bounced", "reply:bounce")
        assert s.get(Suppression, "mailer-daemon@mx.target.io") is None
    assert [r.status for r in rows(app, deferred_id, pending_id)] == ["cancelled", "cancelled"]
    assert alerts == [] and hot_leads(app) == []
    assert lead_of(app).status == "bounced"


def test_an_auto_reply_changes_nothing_but_the_record(app):
    make_lead(app)
    deferred_id, pending_id = queue_two(app)
    alerts: list = []
    reply(app, "We have received your request. Your ticket number is #4821. This is an automated message.",
          subject="[Ticket #4821] Re: A question about your sales team", alerts=alerts)
    lead = lead_of(app)
    assert (lead.status, lead.sequence_stopped_at, lead.paused_until) == ("cold", None, None)
    assert lead.reply_class == "auto_reply"
    assert [r.status for r in rows(app, deferred_id, pending_id)] == ["deferred", "pending_approval"]
    assert alerts == [] and hot_leads(app) == []


# ------------------------------------------------------------------------------------------ hot leads

def test_only_interest_and_referrals_raise_hot_leads(app):
    replies_by_lead = {
        "int@a.io": ("Sounds interesting - can you send pricing and a calendar link?", "interested"),
        "ref@b.io": ("I'm not the right person, please contact Megan Ruiz at megan@b.io.", "wrong_person"),
        "wrong@c.io": ("Not my area, sorry.", "wrong_person"),
        "later@d.io": ("Not right now, circle back in Q3.", "not_now"),
        "no@e.io": ("No thanks.", "not_interested"),
        "ooo@f.io": ("I am on annual leave until 2 December.", "out_of_office"),
        "ack@g.io": ("Thank you for contacting us. This is an automated response.", "auto_reply"),
    }
    alerts: list = []
    for i, (addr, (body, _)) in enumerate(replies_by_lead.items()):
        make_lead(app, addr, f"cid-{i}")
        reply(app, body, cid=f"cid-{i}", addr=addr, alerts=alerts)
    with app.store.read() as s:
        got = {ld.email: ld.reply_class for ld in s.exec(select(Lead)).all()}
        raised = {s.get(Lead, a.lead_id).email: a.summary for a in s.exec(select(Approval)
                                                                          .where(Approval.kind == "hot_lead"))}
    assert got == {a: want for a, (_, want) in replies_by_lead.items()}
    assert sorted(raised) == ["int@a.io", "ref@b.io"]
    assert "(interested)" in raised["int@a.io"] and "referral megan@b.io" in raised["ref@b.io"]
    assert sorted(a["fields"]["class"] for a in alerts) == ["interested", "wrong_person"]
    assert {lead_of(app, a).status for a in ("wrong@c.io", "later@d.io", "no@e.io")} == {"replied"}
    assert {lead_of(app, a).status for a in ("int@a.io", "ref@b.io")} == {"hot"}


# ------------------------------------------------------------------------------------------ a "no" after a hot lead

INTERESTED = "Sounds interesting - can you send pricing and a calendar link?"


def _hot_lead_status(app) -> list[str]:
    return [a.status for a in hot_leads(app)]


@pytest.mark.parametrize("no", ["reply_unsubscribe", "reply_not_interested", "one_click", "dnd", "bounce_event",
                                "complaint_event", "bounce_notification", "manual"])
def test_a_later_no_cancels_the_pending_hot_lead(app, no):
    """Seen before: a hot-lead escalation stayed pending after the same person unsubscribed; an approver would
    then call someone who had just said no. Every opt-out path and a 'not interested' reply cancel it at once."""
    make_lead(app)
    reply(app, INTERESTED, wid="in-interest")
    assert _hot_lead_status(app) == ["pending"]
    app.clock.advance(minutes=5)
    if no == "reply_unsubscribe":
        reply(app, "Please remove me from your list.", wid="in-no")
    elif no == "reply_not_interested":
        reply(app, "Actually, no thanks. We went with another vendor.", wid="in-no")
    elif no == "one_click":
        assert EventService(app).unsubscribe(LEAD) is True
    elif no == "manual":  # a person suppresses the address from the console or the CLI
        assert app.suppress(LEAD, "manual", "console:olga", detail="asked on the phone") is True
    elif no == "bounce_notification":
        reply(app, "Delivery Status Notification (Failure)\n\nThe email account that you tried to reach does not "
                   "exist. 550 5.1.1 User unknown", subject="Undeliverable: Re: pricing",
              sender="mailer-daemon@target.io", wid="in-no")
    else:
        event = {
            "dnd": {"type": "ContactDndUpdate", "webhookId": "d-9", "id": "cid-ana", "email": LEAD, "dnd": True},
            "bounce_event": {"type": "LCEmailStats", "webhookPayload": {"event": "failed", "id": "b-9",
                                                                        "severity": "permanent", "recipient": LEAD}},
            "complaint_event": {"type": "LCEmailStats", "webhookPayload": {"event": "complained", "id": "c-9",
                                                                           "recipient": LEAD}},
        }[no]
        assert EventService(app).ghl(event, json.dumps(event).encode()).status == "processed"
    assert _hot_lead_status(app) == ["cancelled"]
    with app.store.read() as s:
        appr = s.exec(select(Approval).where(Approval.kind == "hot_lead")).one()
        assert appr.decided_by == "system" and appr.reason
        assert s.exec(select(audit.AuditEntry).where(audit.AuditEntry.event == "approval.cancelled",
                                                     audit.AuditEntry.ref == str(appr.id))).first() is not None


def test_a_second_interested_reply_keeps_the_hot_lead(app):
    make_lead(app)
    reply(app, INTERESTED, wid="in-interest")
    app.clock.advance(minutes=5)
    reply(app, "Also, could you include a case study? Thanks!", wid="in-interest-2")
    assert _hot_lead_status(app) == ["pending"]


# ------------------------------------------------------------------------------------------ the weekly report

def test_the_weekly_report_counts_replies_by_class(app):
    bodies = ["Interested, send details", "Sounds good, call me Tuesday", "Wrong person - talk to Jo (jo@x.io)",
              "Not now, maybe next year", "No thanks", "Please unsubscribe me",
              "Out of office until 2 December", "We have received your message. This is an automatic reply."]
    for i, body in enumerate(bodies):
        make_lead(app, f"p{i}@acme{i}.io", f"c{i}")
        reply(app, body, cid=f"c{i}", addr=f"p{i}@acme{i}.io")
    reply(app, "Address not found. 550 5.1.1 user unknown", cid="c-b", addr="gone@acme.io",
          subject="Delivery Status Notification (Failure)", sender="mailer-daemon@googlemail.com")
    r = weekly(app, app.clock() - timedelta(days=7), app.clock() + timedelta(seconds=1))
    rp = r["replies"]
    assert rp["by_class"] == {"interested": 2, "not_now": 1, "not_interested": 1, "unsubscribe": 1,
                              "out_of_office": 1, "wrong_person": 1, "auto_reply": 2}
    assert (rp["human"], rp["referrals"], rp["out_of_office"], rp["auto_replies"], rp["bounce_notifications"]) == \
        (6, 1, 1, 2, 1)
    assert r["outbound"]["replies"] == 6 and r["outbound"]["positive_replies"] == 3
    assert r["outbound"]["unsubscribes"] == 1 and r["outbound"]["bounces"] == 1
    from engine.queries.report import to_markdown

    md = to_markdown(r)
    assert "## Replies by class" in md and "| out of office | 1 |" in md and "| **human replies** | **6** |" in md
