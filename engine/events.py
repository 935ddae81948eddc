"""What inbound events do: replies, DND changes, bounces and complaints, unsubscribes, outbound confirmations,
website visitors. Each handler runs in one locked write transaction, records the event id (replays are
recognised), and is audited. The HTTP layer (engine/webhooks.py) only parses, authenticates and calls these.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
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
        if str(_str(p.get("direction")) or "inbound").lower() != "inbound":
            return Outcome("ignored", "not an inbound message")
        lead = _lead_by(s, email=_str(p.get("email")), contact_id=_str(p.get("contactId")))
        if lead is None:
            return Outcome("processed", f"reply from unknown contact {_str(p.get('contactId'), 100)!r} recorded")
        _stop_lead(lead, "hot", "replied", now)
        lead.last_engaged_at = now
        s.add(lead)
        body = _str(p.get("body"), 300) or ""
        queued = self._hot_lead(s, lead, f"Reply from {lead.email}", body or "(no body)", "webhook:ghl", now)
        return Outcome("processed", f"lead {lead.id} replied: sequence stopped, marked hot; {queued}",
                       alert={"kind": "hot_lead", "title": f"Reply from {lead.email}",
                              "text": body or "(no body)", "fields": {"lead": lead.email, "company": lead.company,
                                                                      "channel": _str(p.get("messageType"), 50)}})

    def _dnd(self, s: Session, p: dict, now: datetime) -> Outcome:
        email = (_str(p.get("email")) or "").strip().lower()
        email_dnd = _dict(_dict(p.get("dndSettings")).get("Email")).get("status") == "active"
        if not (p.get("dnd") is True or email_dnd):
            return Outcome("processed", f"DND lifted or not for email on {email or 'unknown'}: suppression kept")
        if not email:
            return Outcome("ignored", "DND update without an email address")
        added = _suppress(s, email, "dnd", "ghl:ContactDndUpdate", "contact set email DND in GHL", now, "ghl")
        lead = _lead_by(s, email=email, contact_id=_str(p.get("id")))
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
        recipient = (_str(wp.get("recipient")) or "").strip().lower()
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
        added = _suppress(s, recipient, kind, f"ghl:LCEmailStats:{sending_domain}", f"{event} {code or ''}".strip(),
                          now, "ghl")
        lead = _lead_by(s, email=recipient)
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


# The lead columns an RB2B visitor fills, with their sizes (engine/models.py Lead): longer text is cut to fit.
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
        out["email"] = email.strip().lower() if email else None
    out["employee_count"] = _employees(out.get("employee_count"))
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
