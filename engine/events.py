"""What inbound events do: replies, DND changes, bounces and complaints, unsubscribes, outbound confirmations,
website visitors. Each handler runs in one locked write transaction, records the event id (replays are
recognised), and is audited. The HTTP layer (engine/webhooks.py) only parses, authenticates and calls these.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parseaddr
from typing import Any, Callable

from sqlmodel import Session, func, select

from . import audit
from .errors import ConfigError
from .guardrails.domain_health import next_cooling
from .guardrails.recipients import syntax_problem
from .models import DomainHealth, Lead, OutboxItem, Suppression, WebhookEvent

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
    wp = payload.get("webhookPayload") if isinstance(payload.get("webhookPayload"), dict) else {}
    for cand in (payload.get("webhookId"), payload.get("webhook_id"), wp.get("id") and f"{wp.get('id')}:{wp.get('event')}",
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


def _suppress(s: Session, email: str, reason: str, source: str, detail: str, now: datetime, actor: str) -> bool:
    email = email.strip().lower()
    if not email or syntax_problem(email):
        return False
    if s.get(Suppression, email) is not None:
        return False
    s.add(Suppression(email=email, reason=reason, source=source, detail=detail[:500], created_at=now))
    audit.append(s, event="suppression.add", actor=actor, now=now, ref=email, status=reason,
                 data={"source": source, "detail": detail[:500]})
    return True


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
        return s.exec(select(Lead).where(Lead.email == email.strip().lower())).first()
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

    def ghl(self, payload: dict, raw: bytes) -> Outcome:
        etype = str(payload.get("type") or "")
        handlers = {"InboundMessage": self._inbound, "ContactDndUpdate": self._dnd,
                    "LCEmailStats": self._email_stats, "OutboundMessage": self._outbound}
        now = self.app.clock()
        eid = event_id("ghl", payload, raw)
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

    def _inbound(self, s: Session, p: dict, now: datetime) -> Outcome:
        if str(p.get("direction", "inbound")).lower() != "inbound":
            return Outcome("ignored", "not an inbound message")
        lead = _lead_by(s, email=p.get("email"), contact_id=p.get("contactId"))
        if lead is None:
            return Outcome("processed", f"reply from unknown contact {p.get('contactId')!r} recorded")
        _stop_lead(lead, "hot", "replied", now)
        lead.last_engaged_at = now
        s.add(lead)
        body = str(p.get("body") or "")[:300]
        queued = self._hot_lead(s, lead, f"Reply from {lead.email}", body or "(no body)", "webhook:ghl", now)
        return Outcome("processed", f"lead {lead.id} replied: sequence stopped, marked hot; {queued}",
                       alert={"kind": "hot_lead", "title": f"Reply from {lead.email}",
                              "text": body or "(no body)", "fields": {"lead": lead.email, "company": lead.company,
                                                                      "channel": p.get("messageType")}})

    def _dnd(self, s: Session, p: dict, now: datetime) -> Outcome:
        email = str(p.get("email") or "").strip().lower()
        settings = p.get("dndSettings") if isinstance(p.get("dndSettings"), dict) else {}
        email_dnd = (settings.get("Email") or {}).get("status") == "active" if isinstance(
            settings.get("Email"), dict) else False
        if not (p.get("dnd") is True or email_dnd):
            return Outcome("processed", f"DND lifted or not for email on {email or 'unknown'}: suppression kept")
        if not email:
            return Outcome("ignored", "DND update without an email address")
        added = _suppress(s, email, "dnd", "ghl:ContactDndUpdate", "contact set email DND in GHL", now, "ghl")
        lead = _lead_by(s, email=email, contact_id=p.get("id"))
        _stop_lead(lead, "unsubscribed", "dnd", now)
        if lead:
            s.add(lead)
        return Outcome("processed", f"{email} suppressed (dnd)" if added else f"{email} already suppressed")

    def _email_stats(self, s: Session, p: dict, now: datetime) -> Outcome:
        wp = p.get("webhookPayload") if isinstance(p.get("webhookPayload"), dict) else {}
        event = str(wp.get("event") or "").lower()
        recipient = str(wp.get("recipient") or "").strip().lower()
        headers = (wp.get("message") or {}).get("headers") if isinstance(wp.get("message"), dict) else {}
        sender = parseaddr(str((headers or {}).get("from") or ""))[1].lower()
        status = wp.get("delivery-status") if isinstance(wp.get("delivery-status"), dict) else {}
        code = status.get("code") if isinstance(status.get("code"), int) else None
        severity = str(wp.get("severity") or "").lower()
        if event in BOUNCE_EVENTS:
            if severity == "temporary" or (code is not None and code < 500 and severity != "permanent"):
                return Outcome("processed", f"temporary failure for {recipient}: no suppression")
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
            return Outcome("processed", f"{event} by {recipient or 'unknown'}")
        elif event in NEUTRAL_EVENTS:
            return Outcome("processed", f"{event} for {recipient or 'unknown'}")
        else:
            return Outcome("ignored", f"unknown email event {event!r}: recorded, nothing changed")
        sending_domain = sender.rsplit("@", 1)[1] if "@" in sender else ""
        added = _suppress(s, recipient, kind, f"ghl:LCEmailStats:{sending_domain}", f"{event} {code or ''}".strip(),
                          now, "ghl")
        lead = _lead_by(s, email=recipient)
        _stop_lead(lead, "bounced" if kind == "bounced" else "unsubscribed", kind, now)
        if lead:
            s.add(lead)
        detail = f"{recipient} suppressed ({kind})" if added else f"{recipient} already suppressed ({kind})"
        if kind in ("bounced", "complained") and sending_domain:
            s.flush()
            detail += "; " + self._update_domain_health(s, sending_domain, now)
        return Outcome("processed", detail)

    def _update_domain_health(self, s: Session, domain: str, now: datetime) -> str:
        cfg = self.app.settings.production.domain_health
        since = now - HEALTH_WINDOW
        sends = s.exec(select(func.count()).select_from(OutboxItem).where(
            OutboxItem.status == "sent", OutboxItem.channel == "email", OutboxItem.sent_at >= since,
            OutboxItem.from_email.like(f"%@{domain}"))).one()
        rows = s.exec(select(Suppression.reason, func.count()).where(
            Suppression.created_at >= since, Suppression.source == f"ghl:LCEmailStats:{domain}",
            Suppression.reason.in_(("bounced", "complained"))).group_by(Suppression.reason)).all()
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
        mid = p.get("messageId")
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
        now = self.app.clock()
        with self.app.store.write() as s:
            added = _suppress(s, email, "unsubscribed", source, "RFC 8058 one-click unsubscribe", now, "recipient")
            lead = _lead_by(s, email=email)
            _stop_lead(lead, "unsubscribed", "unsubscribed", now)
            if lead:
                s.add(lead)
        return added

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
                lead = s.exec(select(Lead).where(Lead.email == email)).first()
                created = lead is None
                if created:
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


def _employees(v: Any) -> int | None:
    """RB2B sends an int or a string such as "51-200", "1,000+" or "500"; read like an imported CSV cell."""
    from .leads_io import parse_employee_count

    if v is None or isinstance(v, bool):
        return None
    try:
        return parse_employee_count(str(v))
    except ValueError:
        return None


def normalise_rb2b(payload: dict) -> dict:
    out: dict[str, Any] = {}
    for k, v in payload.items():
        key = RB2B_FIELDS.get(str(k).strip().lower())
        if key and v not in (None, ""):
            out[key] = v
    if "email" in out:
        out["email"] = str(out["email"]).strip().lower()
    out["employee_count"] = _employees(payload.get("Employee Count", payload.get("employee count")))
    site = str(out.get("website") or "")
    if site:
        host = site.split("//")[-1].split("/")[0].lower().removeprefix("www.")
        out["company_domain"] = host or None
    for k in ("first_name", "last_name", "title", "company", "industry", "linkedin_url", "country"):
        if k in out:
            out[k] = str(out[k])[:300]
    return out


def parse_json_body(raw: bytes) -> dict:
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"body is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise ValueError(f"body must be a JSON object, found {type(data).__name__}")
    return data
