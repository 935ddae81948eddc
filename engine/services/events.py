"""What inbound events do: replies, DND changes, bounces and complaints, unsubscribes, outbound confirmations,
website visitors. Each handler runs in one locked write transaction, records the event id (replays are
recognised), and is audited. The HTTP layer (engine/entrypoints/webhooks.py) only parses, authenticates and calls these.

A reply is classified (engine/rules/replies.py) and stored (``reply`` table); then, in the same transaction:
- a person's reply (interested, not now, not interested, unsubscribe, wrong person) cancels every queued step of
  the lead (deferred or pending approval: status ``cancelled``, reason SEQUENCE_STOPPED, a pending approval of it
  ``cancelled`` by ``system``) and stops its sequence; an unsubscribe is suppressed at once;
- out of office pauses the lead until the day after its return date (``lead.paused_until``; queued steps deferred
  to then, reason LEAD_PAUSED); the sequence goes on afterwards and it is not counted as a reply;
- an auto-reply changes nothing, except a bounce notification: suppressed as bounced, queue cancelled;
- only interest and a referral to someone else raise a hot lead (approval queue + alert).
Every other opt-out (one-click unsubscribe, DND, a bounce or complaint event) cancels the queue the same way.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone
from email.utils import parseaddr
from typing import Any, Callable

from sqlalchemy import ColumnElement, or_
from sqlmodel import Session, col, func, select

from engine.adapters import audit
from engine.rules import replies
from engine.rules.leadfacts import employee_count_or_none
from engine.core.clock import as_utc, iso
from engine.core.envcheck import env_flag
from engine.core.errors import ConfigError
from engine.rules.guardrails.domain_health import next_cooling
from engine.rules.guardrails.recipients import syntax_problem
from engine.core.identity import Rules, canonical_address, normalise_address
from engine.adapters.models import (Approval, DomainHealth, Lead, OutboxItem, Reply, Suppression, WebhookEvent,
                                    stored_id)
from engine.queries.outbox import WAITING
from engine.services.suppressions import add_suppression
from engine.core.reasons import Code, Reason

log = logging.getLogger("alpha.events")

# LCEmailStats events (Mailgun-style). Unknown values are recorded and change nothing.
BOUNCE_EVENTS = {"bounced", "bounce", "failed", "rejected", "dropped"}
COMPLAINT_EVENTS = {"complained", "complaint", "spam"}
UNSUBSCRIBE_EVENTS = {"unsubscribed", "unsubscribe"}
ENGAGEMENT_EVENTS = {"opened", "clicked"}
NEUTRAL_EVENTS = {"delivered", "accepted", "queued", "sent", "stored"}

HEALTH_WINDOW = timedelta(days=30)
MIN_SAMPLE = 20  # small samples are judged as if 20 sends had gone out


@dataclass
class Outcome:
    status: str            # processed | duplicate | ignored
    detail: str
    alert: dict | None = None


def event_id(source: str, payload: dict, raw: bytes) -> str:
    """A stable id for replay detection: the sender's id when it gives one, else a hash of the body."""
    wp = payload.get("webhookPayload")
    if not isinstance(wp, dict):
        wp = {}
    for cand in (payload.get("webhookId"), payload.get("webhook_id"),
                 wp.get("id") and f"{wp.get('id')}:{wp.get('event')}",
                 payload.get("messageId") and f"{payload.get('type')}:{payload.get('messageId')}"):
        if cand:
            return f"{source}:{str(cand)[:250]}"
    return f"{source}:sha256:{hashlib.sha256(raw).hexdigest()}"


def _claim(s: Session, eid: str, source: str, etype: str, now: datetime, payload: dict) -> bool:
    """Record the event id; False if we have seen it before (a replay)."""
    if s.get(WebhookEvent, eid) is not None:
        return False
    s.add(WebhookEvent(id=eid, source=source, event_type=etype[:64], received_at=now, payload=audit.redact(payload)))
    s.flush()
    return True


def _queued(s: Session, lead: Lead | None, emails: list[str | None], rules: Rules) -> list[OutboxItem]:
    """The lead's waiting outbox rows (deferred or pending approval, whatever their approval's state): by lead id,
    by canonical recipient, and by the address as written (rows stored before recipients had a canonical key)."""
    addresses = {normalise_address(e) for e in [*(emails or []), lead.email if lead is not None else None]
                 if isinstance(e, str)} - {""}
    keys = {canonical_address(e, rules)[:320] for e in addresses} - {""}
    conds: list[ColumnElement[bool]] = []
    if lead is not None and lead.id is not None:
        conds.append(col(OutboxItem.lead_id) == str(lead.id))
    if keys:
        conds.append(col(OutboxItem.to_key).in_(sorted(keys)))
    if addresses:
        conds.append(func.lower(OutboxItem.to_email).in_(sorted(a[:320] for a in addresses)))
    if not conds:
        return []
    return list(s.exec(select(OutboxItem).where(col(OutboxItem.status).in_(WAITING), or_(*conds))
                       .order_by(col(OutboxItem.id))).all())


def _cancel_hot_leads(s: Session, lead: Lead | None, detail: str, now: datetime, actor: str) -> list[int]:
    """The person said no (opted out, bounced, not interested): a pending hot-lead escalation of the lead is
    ``cancelled`` by ``system`` in the caller's transaction, so nobody calls someone who just declined. Audited."""
    if lead is None or lead.id is None:
        return []
    pending = s.exec(select(Approval).where(Approval.kind == "hot_lead", Approval.lead_id == lead.id,
                                            Approval.status == "pending")).all()
    for appr in pending:
        appr.status, appr.decided_by, appr.decided_at, appr.reason = "cancelled", "system", now, detail[:500]
        s.add(appr)
        audit.append(s, event="approval.cancelled", actor=actor, now=now, ref=str(appr.id), status="cancelled",
                     data={"kind": "hot_lead", "lead_id": lead.id, "detail": detail[:500]})
    return [stored_id(a) for a in pending]


def _cancel_queue(s: Session, lead: Lead | None, emails: list[str | None], detail: str, now: datetime, actor: str,
                  rules: Rules, hot_leads: bool = True) -> int:
    """Cancel the lead's waiting rows (final status ``cancelled``, reason SEQUENCE_STOPPED) and any pending approval
    of them (``cancelled`` by ``system``), in the caller's transaction; audited. With ``hot_leads`` (every path but
    a reply showing interest) a pending hot-lead escalation of the lead is cancelled too. Returns how many queued
    rows were cancelled."""
    if hot_leads:
        _cancel_hot_leads(s, lead, detail, now, actor)
    rows = _queued(s, lead, emails, rules)
    if not rows:
        return 0
    reason = Reason(Code.SEQUENCE_STOPPED, detail[:500])
    ids = [r.id for r in rows]
    approvals = {a.id: a for a in s.exec(select(Approval).where(
        or_(col(Approval.outbox_id).in_(ids),
            col(Approval.id).in_([r.approval_id for r in rows if r.approval_id] or [-1])),
        Approval.status == "pending")).all()}
    for row in rows:
        before = row.status
        row.status, row.reasons, row.not_before, row.updated_at = "cancelled", [reason.to_dict()], None, now
        s.add(row)
        cancelled = [a for a in approvals.values() if a.outbox_id == row.id or a.id == row.approval_id]
        for appr in cancelled:
            appr.status, appr.decided_by, appr.decided_at, appr.reason = "cancelled", "system", now, detail[:500]
            s.add(appr)
        audit.append(s, event="outbox.cancelled", actor=actor, now=now, ref=row.idempotency_key, outbox_id=row.id,
                     status="cancelled", reasons=[Code.SEQUENCE_STOPPED.value],
                     data={"before": before, "detail": detail[:500], "lead_id": lead.id if lead else None,
                           "approvals_cancelled": [a.id for a in cancelled]})
    return len(rows)


def _pause_queue(s: Session, lead: Lead | None, emails: list[str | None], until: datetime, detail: str,
                 now: datetime, actor: str, rules: Rules) -> int:
    """Hold the lead's waiting rows until ``until``: status ``deferred``, not_before = max(its own, until), reason
    LEAD_PAUSED (a pending approval stays pending: the send is decided again after the pause). Returns how many."""
    rows = _queued(s, lead, emails, rules)
    for row in rows:
        before = {"status": row.status, "not_before": iso(row.not_before)}
        current = as_utc(row.not_before) if row.not_before is not None else None
        row.not_before = max(current, until) if current is not None else until
        row.status, row.updated_at = "deferred", now
        row.reasons = [Reason(Code.LEAD_PAUSED, detail[:500], row.not_before).to_dict()]
        s.add(row)
        audit.append(s, event="outbox.paused", actor=actor, now=now, ref=row.idempotency_key, outbox_id=row.id,
                     status="deferred", reasons=[Code.LEAD_PAUSED.value],
                     data={"before": before, "not_before": iso(row.not_before), "detail": detail[:500]})
    return len(rows)


def pause_until(return_date) -> datetime:
    """An out-of-office lead is held until the start (UTC) of the day after its return date: a day's margin for an
    "until" date and for time zones."""
    return datetime.combine(return_date + timedelta(days=1), time(0, 0), tzinfo=timezone.utc)


def _stop_lead(lead: Lead | None, status: str, reason: str, now: datetime) -> None:
    if lead is None:
        return
    lead.status = status
    if lead.sequence_stopped_at is None:
        lead.sequence_stopped_at, lead.stop_reason = now, reason
    lead.updated_at = now


def _lead_by(s: Session, email: str | None = None, contact_id: str | None = None) -> Lead | None:
    if contact_id:
        lead = s.exec(select(Lead).where(Lead.ghl_contact_id == contact_id)).first()
        if lead:
            return lead
    if email:
        lead = s.exec(select(Lead).where(Lead.email == normalise_address(email)[:320])).first()
        key = canonical_address(email)[:320]
        if lead is None and key:  # another spelling of the same mailbox (engine/core/identity)
            lead = s.exec(select(Lead).where(Lead.email_key == key).order_by(col(Lead.id)).limit(1)).first()
        return lead
    return None


def domain_score(sends: int, bounces: int, complaints: int, max_bounce: float, max_complaint: float) -> float:
    """100 when clean; each rate at its configured maximum costs 50 points."""
    n = max(sends, MIN_SAMPLE)
    score = 100 - 50 * (bounces / n) / max(max_bounce, 1e-9) - 50 * (complaints / n) / max(max_complaint, 1e-9)
    return round(max(0.0, min(100.0, score)), 1)


class EventService:
    def __init__(self, app, alert: Callable[[dict], None] | None = None):
        self.app = app
        self.alert = alert or (lambda a: log.info("alert (no alerter configured): %s", a))

    # ------------------------------------------------------------------------------------------ GHL

    def _rules(self) -> Rules:
        return Rules.from_settings(self.app.settings)

    def ghl(self, payload: dict, raw: bytes) -> Outcome:
        etype = str(payload.get("type") or "")
        now = self.app.clock()
        eid = event_id("ghl", payload, raw)
        # a reply is read before the transaction (pure work, and the optional LLM call): the gate lock is held only
        # for what the reply changes
        read = self._read_reply(payload, eid, now) if etype == "InboundMessage" else None
        handlers = {"InboundMessage": lambda s, p, t: self._inbound(s, p, t, read, eid),
                    "ContactDndUpdate": self._dnd, "LCEmailStats": self._email_stats, "OutboundMessage": self._outbound}
        with self.app.store.write() as s:
            if not _claim(s, eid, "ghl", etype or "unknown", now, payload):
                return Outcome("duplicate", f"event {eid} was already processed")
            handler = handlers.get(etype)
            if handler is None:
                out = Outcome("ignored", f"event type {etype!r} is not handled")
            else:
                out = handler(s, payload, now)
            row = s.get(WebhookEvent, eid)
            row.outcome = f"{out.status}: {out.detail}"[:200]
            s.add(row)
            audit.append(s, event="webhook.ghl", actor="ghl", now=now, ref=eid, status=out.status,
                         data={"type": etype, "detail": out.detail})
        if out.alert:
            self._safe_alert(out.alert)
        return out

    def _read_reply(self, p: dict, eid: str, now: datetime) -> tuple[replies.Classification, str | None] | None:
        """The reply's class (rules), with the LLM's second opinion when ALPHA_REPLY_SECOND_OPINION is on and an
        LLM is configured (it may only make the outcome safer: engine/rules/replies.merge)."""
        if str(_str(p.get("direction")) or "inbound").lower() != "inbound":
            return None
        body, subject = _str(p.get("body")) or "", _str(p.get("subject"), 2000)
        c = replies.classify(body, subject, _sender(p), now)
        opinion = None
        if second_opinion_enabled() and not c.bounce and c.label != "unsubscribe":
            with self.app.store.read() as s:
                replay = s.get(WebhookEvent, eid) is not None
            if not replay:  # a replay asks nobody
                opinion = replies.second_opinion(self.app.llm, body, subject)
        return replies.merge(c, opinion), opinion

    def _inbound(self, s: Session, p: dict, now: datetime, read=None, eid: str = "") -> Outcome:
        if str(_str(p.get("direction")) or "inbound").lower() != "inbound":
            return Outcome("ignored", "not an inbound message")
        body, subject, sender = _str(p.get("body")) or "", _str(p.get("subject"), 2000), _sender(p)
        c, opinion = read or (replies.classify(body, subject, sender, now), None)
        rules = self._rules()
        lead = _lead_by(s, email=_str(p.get("email")), contact_id=_str(p.get("contactId")))
        # whose mailbox this is about: the lead's; else the contact's address; else (a person's reply) the sender's
        contact = _str(p.get("email"), 320)
        person = lead.email if lead is not None else (contact or (None if c.bounce else parseaddr(sender or "")[1]))
        person = normalise_address(person)[:320] or None
        reply = Reply(lead_id=lead.id if lead is not None else None, email=person, received_at=now, label=c.label,
                      confidence=c.confidence, referral=(c.referral or None) and c.referral[:320],
                      return_date=datetime.combine(c.return_date, time(0, 0), tzinfo=timezone.utc)
                      if c.return_date else None,
                      subject=subject, excerpt=(c.text or body)[:2000] or None, source=eid[:300] or None,
                      second_opinion=opinion)
        when = iso(now)
        what = f"{c.label}{' (bounce)' if c.bounce else ''}, confidence {c.confidence:.2f}"
        who = f"lead {lead.id}" if lead is not None else f"unknown contact {_str(p.get('contactId'), 100)!r}"
        alert = None
        done: list[str] = []
        if c.label in replies.HUMAN:
            detail = f"lead replied ({c.label}) at {when}"
            reply.cancelled = _cancel_queue(s, lead, [person], detail, now, "webhook:ghl", rules, hot_leads=not c.hot)
            done.append(f"{reply.cancelled} queued step(s) cancelled")
            if c.label == "unsubscribe":
                added = person and add_suppression(s, person, "unsubscribed", "reply",
                                                   f"reply: {'; '.join(c.evidence)}", now, "webhook:ghl", rules)
                done.append(f"{person} suppressed (unsubscribed)" if added else
                            f"{person or 'no address'} not newly suppressed")
                _stop_lead(lead, "unsubscribed", "unsubscribed", now)
            elif c.hot:
                _stop_lead(lead, "hot", "replied", now)
            else:
                _stop_lead(lead, "replied", "replied", now)
            if lead is not None:
                lead.last_reply_at = lead.last_engaged_at = now
        elif c.label == "out_of_office":
            back = c.return_date or now.date() + replies.DEFAULT_PAUSE  # the rules always give one
            until = pause_until(back)
            detail = (f"lead out of office until {back.isoformat()}"
                      f"{'' if c.return_date_given else ' (no date given: default pause)'}; reply at {when}")
            reply.cancelled = _pause_queue(s, lead, [person], until, detail, now, "webhook:ghl", rules)
            if lead is not None:
                lead.paused_until, lead.updated_at = until, now
            done.append(f"paused until {iso(until)}; {reply.cancelled} queued step(s) held")
        elif c.bounce:
            detail = f"bounce notification received at {when}"
            reply.cancelled = _cancel_queue(s, lead, [person], detail, now, "webhook:ghl", rules)
            added = person and add_suppression(s, person, "bounced", "reply:bounce", f"reply: {'; '.join(c.evidence)}",
                                               now, "webhook:ghl", rules)
            _stop_lead(lead, "bounced", "bounced", now)
            done.append(f"{person} suppressed (bounced)" if added else f"{person or 'no address'} not newly suppressed")
            done.append(f"{reply.cancelled} queued step(s) cancelled")
        else:
            done.append("automatic reply: recorded, nothing changed")
        if lead is not None:
            lead.reply_class, lead.updated_at = c.label, now
            s.add(lead)
        s.add(reply)
        if lead is not None and c.hot:
            title = f"Reply from {lead.email} ({c.label}" + (f": referral {c.referral}" if c.referral else "") + ")"
            why = (c.text or body)[:300] or "(no body)"
            done.append(self._hot_lead(s, lead, title, why, "webhook:ghl", now))
            alert = {"kind": "hot_lead", "title": title, "text": why,
                     "fields": {"lead": lead.email, "company": lead.company, "class": c.label,
                                "confidence": c.confidence, "referral": c.referral,
                                "channel": _str(p.get("messageType"), 50)}}
        s.flush()
        audit.append(s, event="reply.classified", actor="webhook:ghl", now=now, ref=eid[:200] or None,
                     status=c.label, data={"reply_id": reply.id, "lead_id": lead.id if lead is not None else None,
                                           "confidence": c.confidence, "bounce": c.bounce,
                                           "evidence": list(c.evidence)[:5], "second_opinion": opinion,
                                           "return_date": c.return_date.isoformat() if c.return_date else None,
                                           "referral": c.referral, "queue": reply.cancelled})
        return Outcome("processed", f"{who} replied ({what}): " + "; ".join(done), alert=alert)

    def _dnd(self, s: Session, p: dict, now: datetime) -> Outcome:
        email = normalise_address(_str(p.get("email")))
        email_dnd = _dict(_dict(p.get("dndSettings")).get("Email")).get("status") == "active"
        if not (p.get("dnd") is True or email_dnd):
            return Outcome("processed", f"DND lifted or not for email on {email or 'unknown'}: suppression kept")
        if not email:
            return Outcome("ignored", "DND update without an email address")
        rules = self._rules()
        added = add_suppression(s, email, "dnd", "ghl:ContactDndUpdate", "contact set email DND in GHL", now, "ghl",
                                rules)
        lead = _lead_by(s, email=email, contact_id=_str(p.get("id")))
        _cancel_queue(s, lead, [email], f"lead opted out (dnd) at {iso(now)}", now, "ghl", rules)
        _stop_lead(lead, "unsubscribed", "dnd", now)
        if lead:
            s.add(lead)
        if added:
            return Outcome("processed", f"{email} suppressed (dnd)")
        if syntax_problem(email):  # nothing to suppress; the contact's sequence (found by its id) still stops
            return Outcome("processed", f"DND for {email[:100]!r}, which is not an email address: nothing suppressed")
        return Outcome("processed", f"{email} already suppressed")

    def _email_stats(self, s: Session, p: dict, now: datetime) -> Outcome:
        wp = _dict(p.get("webhookPayload"))
        event = (_str(wp.get("event")) or "").lower()
        recipient = normalise_address(_str(wp.get("recipient")))
        headers = _dict(_dict(wp.get("message")).get("headers"))
        sender = parseaddr(_str(headers.get("from")) or "")[1].lower()
        code = _dict(wp.get("delivery-status")).get("code")
        code = code if isinstance(code, int) and not isinstance(code, bool) else None
        severity = (_str(wp.get("severity")) or "").lower()
        if event in BOUNCE_EVENTS:
            if severity == "temporary" or (code is not None and code < 500 and severity != "permanent"):
                return Outcome("processed", f"temporary failure for {recipient[:320]}: no suppression")
            kind = "bounced"
        elif event in COMPLAINT_EVENTS:
            kind = "complained"
        elif event in UNSUBSCRIBE_EVENTS:
            kind = "unsubscribed"
        elif event in ENGAGEMENT_EVENTS:
            lead = _lead_by(s, email=recipient)
            if lead:
                lead.last_engaged_at, lead.updated_at = now, now
                if lead.status in ("new", "cold"):
                    lead.status = "warm"
                s.add(lead)
            return Outcome("processed", f"{event} by {recipient[:320] or 'unknown'}")
        elif event in NEUTRAL_EVENTS:
            return Outcome("processed", f"{event} for {recipient[:320] or 'unknown'}")
        else:
            return Outcome("ignored", f"unknown email event {event[:100]!r}: recorded, nothing changed")
        # a sending domain names our own health record: only a real address's domain, short enough for the
        # suppression's source column ("ghl:LCEmailStats:<domain>", 200 characters)
        sending_domain = sender.rsplit("@", 1)[1] if "@" in sender and not syntax_problem(sender) else ""
        if len(sending_domain) > 180:
            sending_domain = ""
        rules = self._rules()
        added = add_suppression(s, recipient, kind, f"ghl:LCEmailStats:{sending_domain}",
                                f"{event} {code or ''}".strip(), now, "ghl", rules)
        lead = _lead_by(s, email=recipient)
        _cancel_queue(s, lead, [recipient], f"lead {'bounced' if kind == 'bounced' else f'opted out ({kind})'} at "
                      f"{iso(now)}", now, "ghl", rules)
        _stop_lead(lead, "bounced" if kind == "bounced" else "unsubscribed", kind, now)
        if lead:
            s.add(lead)
        if added:
            detail = f"{recipient} suppressed ({kind})"
        elif syntax_problem(recipient):
            detail = f"{kind} for {recipient[:100]!r}, which is not an email address: nothing suppressed"
        else:
            detail = f"{recipient} already suppressed ({kind})"
        if kind in ("bounced", "complained") and sending_domain:
            s.flush()
            detail += "; " + self._update_domain_health(s, sending_domain, now)
        return Outcome("processed", detail)

    def _update_domain_health(self, s: Session, domain: str, now: datetime) -> str:
        cfg = self.app.settings.production.domain_health
        since = now - HEALTH_WINDOW
        sends = s.exec(select(func.count()).select_from(OutboxItem).where(
            col(OutboxItem.status) == "sent", col(OutboxItem.channel) == "email", col(OutboxItem.sent_at) >= since,
            col(OutboxItem.from_email).like(f"%@{domain}"))).one()
        rows = s.exec(select(Suppression.reason, func.count()).where(
            col(Suppression.created_at) >= since, col(Suppression.source) == f"ghl:LCEmailStats:{domain}",
            col(Suppression.reason).in_(("bounced", "complained"))).group_by(Suppression.reason)).all()
        counts = dict(rows)
        score = domain_score(int(sends), counts.get("bounced", 0), counts.get("complained", 0),
                             cfg.max_bounce_rate, cfg.max_complaint_rate)
        row = s.get(DomainHealth, domain) or DomainHealth(domain=domain)
        before = {"score": row.score, "cooling": row.cooling}
        row.score, row.updated_at = score, now
        row.cooling = next_cooling(score, row.cooling, cfg)
        row.reason = (f"{counts.get('bounced', 0)} bounces, {counts.get('complained', 0)} complaints "
                      f"over {sends} sends in 30 days")
        s.add(row)
        audit.append(s, event="domain.health", actor="ghl", now=now, ref=domain,
                     status="cooling" if row.cooling else "healthy",
                     data={"reason": row.reason, "before": before, "after": {"score": score, "cooling": row.cooling}})
        return f"{domain} health {score:g}{' (COOLING)' if row.cooling else ''}"

    def _outbound(self, s: Session, p: dict, now: datetime) -> Outcome:
        mid = _str(p.get("messageId"), 200)
        if not mid:
            return Outcome("ignored", "outbound message without messageId")
        row = s.exec(select(OutboxItem).where(OutboxItem.provider_message_id == str(mid))).first()
        if row is None:
            return Outcome("processed", f"outbound message {mid} not sent by us (or not yet known)")
        if row.status in ("reconcile", "sending"):
            before = row.status
            row.status, row.sent_at, row.updated_at = "sent", row.sent_at or now, now
            s.add(row)
            audit.append(s, event="outbox.reconciled", actor="ghl", now=now, ref=row.idempotency_key,
                         outbox_id=row.id, status="sent",
                         data={"reason": "GHL OutboundMessage webhook confirms the message", "before": before})
            return Outcome("processed", f"outbox {row.id} confirmed sent by GHL")
        return Outcome("processed", f"outbox {row.id} already {row.status}")

    # ------------------------------------------------------------------------------------------ unsubscribe

    def unsubscribe(self, email: str, source: str = "one-click") -> bool:
        """A recipient's own opt-out: suppressed, the lead's queued steps cancelled, its sequence stopped."""
        now = self.app.clock()
        rules = self._rules()
        with self.app.store.write() as s:
            added = add_suppression(s, email, "unsubscribed", source, "RFC 8058 one-click unsubscribe", now,
                                    "recipient", rules)
            lead = _lead_by(s, email=email)
            _cancel_queue(s, lead, [email], f"lead unsubscribed ({source}) at {iso(now)}", now, "recipient", rules)
            _stop_lead(lead, "unsubscribed", "unsubscribed", now)
            if lead:
                s.add(lead)
        return added

    def suppress_by_person(self, email: str, reason: str, actor: str, source: str = "manual",
                           detail: str = "") -> tuple[bool, int]:
        """A person's suppression (console, CLI): like every other opt-out path, in one transaction the address is
        suppressed, the lead's queued steps and their pending approvals are cancelled, a pending hot-lead
        escalation is cancelled and the sequence stops (status by reason; a "manual" suppression keeps the lead's
        status and only stops its sequence). ``email``: the stored form (suppressions.checked_request).
        Returns (newly suppressed, queued steps cancelled)."""
        now = self.app.clock()
        rules = self._rules()
        status = {"unsubscribed": "unsubscribed", "dnd": "unsubscribed", "bounced": "bounced",
                  "complained": "complained"}.get(reason)
        with self.app.store.write() as s:
            added = add_suppression(s, email, reason, source, detail, now, actor, rules)
            lead = _lead_by(s, email=email)
            cancelled = _cancel_queue(s, lead, [email], f"address suppressed ({reason}) by {actor} at {iso(now)}",
                                      now, actor, rules)
            if lead is not None:
                _stop_lead(lead, status or lead.status, f"suppressed ({reason})", now)
                s.add(lead)
        return added, cancelled

    # ------------------------------------------------------------------------------------------ RB2B

    def rb2b(self, payload: dict, raw: bytes) -> Outcome:
        visitor = normalise_rb2b(payload)
        now = self.app.clock()
        eid = event_id("rb2b", payload, raw)
        with self.app.store.write() as s:
            if not _claim(s, eid, "rb2b", "visitor", now, payload):
                return Outcome("duplicate", f"event {eid} was already processed")
            email = visitor.get("email")
            if not email or syntax_problem(email):
                out = Outcome("processed", "visitor without a usable business email: recorded only")
            else:
                lead = _lead_by(s, email=email)  # its email, else another spelling of the same mailbox
                created = lead is None
                if lead is None:
                    lead = Lead(email=email, created_at=now, source="rb2b", status="warm")
                for field in ("first_name", "last_name", "title", "company", "company_domain", "employee_count",
                              "industry", "linkedin_url", "country"):
                    if visitor.get(field) is not None and getattr(lead, field) in (None, ""):
                        setattr(lead, field, visitor[field])
                if lead.status in ("new", "cold"):
                    lead.status = "warm"
                lead.last_engaged_at, lead.updated_at = now, now
                lead.data = {**(lead.data or {}), "last_visit": {k: visitor.get(k) for k in ("page", "seen_at",
                                                                                             "referrer")}}
                lead.last_visit_at = now
                lead.website_visits = (lead.website_visits or 0) + 1
                fit = self.app.rescore(lead)
                s.add(lead)
                s.flush()
                what = f"lead {lead.id} {'created' if created else 'matched'} from a visit"
                alert = None
                if not fit.disqualified and fit.tier in (1, 2):
                    what += f"; ICP match (tier {fit.tier}, score {fit.score}): hot-lead alert; " + self._hot_lead(
                        s, lead, f"ICP-fit visitor (tier {fit.tier}, score {fit.score})",
                        f"visited {visitor.get('page') or 'the site'}. {fit.explain()}", "webhook:rb2b", now)
                    alert = {"kind": "hot_lead", "title": f"ICP-fit visitor: {lead.email} ({lead.company or '?'})",
                             "text": f"Visited {visitor.get('page') or 'the site'}. {fit.explain()}",
                             "fields": {"tier": fit.tier, "score": fit.score, "title": lead.title}}
                out = Outcome("processed", what, alert=alert)
            audit.append(s, event="webhook.rb2b", actor="rb2b", now=now, ref=eid, status=out.status,
                         data={"detail": out.detail})
        if out.alert:
            self._safe_alert(out.alert)
        return out

    def _hot_lead(self, s: Session, lead: Lead, title: str, why: str, source: str, now: datetime) -> str:
        """Put a hot-lead escalation in the approval queue (roster SLA); a broken roster is reported, not raised:
        the event is still recorded and the Slack alert still goes out."""
        try:
            s.flush()
            appr = self.app.approvals.raise_hot_lead(s, lead, title, why, source, now)
        except ConfigError as e:
            log.error("hot lead %s not queued: %s", lead.id, e)
            return f"NOT queued (approver roster invalid: {e.problems[0] if e.problems else e})"
        return f"queued as approval {appr.id}" if appr else "added to its pending hot-lead escalation"

    def _safe_alert(self, alert: dict) -> None:
        try:
            self.alert(alert)
        except Exception:  # an alert failure never blocks the pipeline
            log.exception("alert failed")


RB2B_FIELDS = {
    "business email": "email", "email": "email", "first name": "first_name", "last name": "last_name",
    "title": "title", "company name": "company", "website": "website", "industry": "industry",
    "employee count": "employee_count", "linkedin url": "linkedin_url", "city": "city", "state": "state",
    "country": "country", "captured url": "page", "seen at": "seen_at", "referrer": "referrer",
}


# The lead columns an RB2B visitor fills, with their sizes (engine/adapters/models.py Lead): longer text is cut to fit.
RB2B_TEXT = {"first_name": 200, "last_name": 200, "title": 300, "company": 300, "industry": 200, "country": 100,
             "linkedin_url": 500}


def normalise_rb2b(payload: dict) -> dict:
    """The visitor's fields from an RB2B payload. Text fields take strings (and numbers); a value of another type
    (an object, a list) is left out, not stringified; text is cut to its column's size."""
    out: dict[str, Any] = {}
    for k, v in payload.items():
        key = RB2B_FIELDS.get(str(k).strip().lower())
        if key and v not in (None, ""):
            out[key] = v
    if "email" in out:
        email = _str(out["email"])
        out["email"] = normalise_address(email) or None
    out["employee_count"] = employee_count_or_none(out.get("employee_count"))  # as the importer reads it
    site = _str(out.get("website")) or ""
    if site:
        host = site.split("//")[-1].split("/")[0].lower().removeprefix("www.")
        if host and len(host) <= 253 and "." in host:
            out["company_domain"] = host
    for k, limit in RB2B_TEXT.items():
        if k in out:
            out[k] = (_str(out[k]) or "").strip()[:limit] or None
    return out


MAX_DEPTH = 32  # nesting of a webhook body; real events use a handful of levels


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON value")


def _finite(text: str) -> float:
    v = float(text)
    if not math.isfinite(v):
        raise ValueError(f"the number {text[:40]} is too large")
    return v


def _clean_json(data: Any) -> Any:
    """The body as storable values: a NUL character or a lone surrogate (from a \\u escape) in any key or string
    becomes U+FFFD, so PostgreSQL and the UTF-8 encoder accept it. Raises ValueError past MAX_DEPTH."""

    def text(t: str) -> str:
        if "\x00" in t:
            t = t.replace("\x00", "\ufffd")
        try:
            t.encode("utf-8")
        except UnicodeEncodeError:
            t = t.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
        return t

    def walk(v: Any, depth: int) -> Any:
        if isinstance(v, str):
            return text(v)
        if isinstance(v, (dict, list)) and depth >= MAX_DEPTH:
            raise ValueError(f"body is nested more than {MAX_DEPTH} levels deep")
        if isinstance(v, dict):
            return {text(k): walk(x, depth + 1) for k, x in v.items()}
        if isinstance(v, list):
            return [walk(x, depth + 1) for x in v]
        return v

    return walk(data, 0)


def parse_json_body(raw: bytes) -> dict:
    """A webhook body as a JSON object of storable values. Raises ValueError saying what is wrong: not UTF-8 JSON,
    NaN/Infinity or out-of-range numbers (not JSON), nested deeper than MAX_DEPTH, not an object."""
    try:
        data = json.loads(raw, parse_constant=_no_constant, parse_float=_finite)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"body is not valid JSON: {e}") from None
    except RecursionError:
        raise ValueError(f"body is not valid JSON: nested more than {MAX_DEPTH} levels deep") from None
    except ValueError as e:  # NaN, Infinity, 1e400, an integer of more than 4300 digits
        raise ValueError(f"body is not valid JSON: {str(e).split(';')[0]}") from None
    if not isinstance(data, dict):
        raise ValueError(f"body must be a JSON object, found {type(data).__name__}")
    return _clean_json(data)


def _str(value: Any, limit: int | None = None) -> str | None:
    """A payload value used as text: strings and numbers as given (cut at ``limit``), anything else (objects,
    lists, booleans, null) as absent."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        value = str(value)
    if not isinstance(value, str):
        return None
    return value[:limit] if limit else value


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _sender(p: dict) -> str | None:
    """The reply's sender address: GHL's ``from`` ("Name <addr>"), else the contact's email."""
    raw = _str(p.get("from"), 1000)
    if raw:
        name, addr = parseaddr(raw)
        return (addr or raw)[:320] if not name else f"{name[:200]} <{addr[:320]}>"
    return _str(p.get("email"), 320)


def second_opinion_enabled() -> bool:
    """ALPHA_REPLY_SECOND_OPINION=1 asks the LLM chain for a second opinion on each reply (off by default: the
    webhook answers without waiting for a provider)."""
    return env_flag("ALPHA_REPLY_SECOND_OPINION")


def lead_replies(app, lead_id: int | None = None, limit: int = 50) -> list[dict]:
    """The newest classified replies (of one lead, or all), as plain rows for the console."""
    with app.store.read() as s:
        q = select(Reply, Lead.email).outerjoin(Lead, col(Lead.id) == Reply.lead_id)
        if lead_id is not None:
            q = q.where(Reply.lead_id == int(lead_id))
        rows = s.exec(q.order_by(col(Reply.received_at).desc(), col(Reply.id).desc())
                      .limit(max(1, min(int(limit), 500)))).all()
    return [{"id": r.id, "received_at": r.received_at, "lead_id": r.lead_id, "lead": email or r.email,
             "class": r.label, "confidence": r.confidence,
             "return_date": r.return_date.date().isoformat() if r.return_date else None, "referral": r.referral,
             "second_opinion": r.second_opinion, "queue_changed": r.cancelled, "subject": r.subject,
             "excerpt": (r.excerpt or "")[:300]} for r, email in rows]
