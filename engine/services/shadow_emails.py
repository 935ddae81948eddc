"""Shadow emails for people: the drafts a shadow run made, with the gateway's decision on each.

A shadow run (``pipeline.shadow_run``) drafts the first step of each lead's sequence and submits it to the
gateway in forced shadow; the gateway's row is keyed ``shadow-<run>-<lead>``. ``list_shadow_drafts`` joins each
draft to that row in SQL and filters (AI tier, gateway decision, reason code, review status) and paginates there
too, so a batch of 10,000 emails lists in milliseconds. ``draft_detail`` gives one email with its guardrail
findings located in the text (``segments``) so a console can mark them without trusting the text. ``edit_draft``
changes the subject and body of a draft, re-runs the content rules (and refuses while an unsupported claim the
drafting flagged is still in the text), approves it and records the edit and the editor in the audit trail.
``shadow_draft_rows`` gives the listing rows of exactly the drafts a bulk decision acts on, however many.

Every row and detail carries the draft's ``version`` (``draft_version``: its text, status, findings and last
recorded decision, fingerprinted by ``approvals.fingerprint``). ``decide_draft``, ``decide_drafts`` and
``edit_draft`` take the version the person saw as ``seen`` and refuse, naming who changed it, a draft someone else
edited or decided since: a stale page never acts on text nobody saw nor overwrites another reviewer's edit.
"""
from __future__ import annotations

import hashlib
import html
import json
import math
import re
from functools import lru_cache
from typing import Any, Iterable, Sequence

import sqlalchemy as sa
from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.sql.expression import Select

from engine.adapters.ports import Configured
from engine.adapters import audit
from engine.core.clock import iso
from engine.core.errors import InvalidRequest
from engine.adapters.models import AuditEntry, Draft, Lead, OutboxItem, ShadowRun
from engine.core.reasons import Code
from engine.core.statuses import DraftStatus

DRAFT_STATUSES = tuple(d.value for d in DraftStatus)  # plain strings: the shadow review page lists them
REVIEWED = (DraftStatus.APPROVED, DraftStatus.REJECTED, DraftStatus.QUEUED, DraftStatus.SENT)  # a person decided
EDITABLE = (DraftStatus.DRAFT, DraftStatus.APPROVED, DraftStatus.REJECTED)  # queued or sent drafts are history
DRAFT_EVENTS = ("draft.approved", "draft.rejected", "draft.edited")
# Findings a content check attaches to a draft (guardrails/content.py) plus the drafting's own claim check.
CONTENT_CODES = (Code.SPAM_CONTENT.value, Code.FORBIDDEN_CLAIM.value, Code.MISSING_UNSUBSCRIBE.value,
                 Code.MISSING_POSTAL_ADDRESS.value, Code.DECEPTIVE_SUBJECT.value, "unsupported_claim")
MAX_SUBJECT = 300
MAX_BODY = 20_000
PER_PAGE_MAX = 200


# ------------------------------------------------------------------------------------------- runs

def shadow_runs(app: Configured, limit: int = 20) -> list[dict]:
    """The newest shadow runs: id, started_at, finished_at, contacts and the run's summary (by_status,
    by_reason, ...; see ``pipeline.summarise``)."""
    with app.store.read() as s:
        rows = s.exec(select(ShadowRun).order_by(col(ShadowRun.id).desc()).limit(max(1, min(int(limit), 500)))).all()
    return [{"id": r.id, "started_at": iso(r.started_at), "finished_at": iso(r.finished_at),
             "contacts": r.contacts, "summary": r.summary or {}} for r in rows]


@lru_cache(maxsize=8)
def _first_steps(config_dir: str) -> tuple[tuple[str, int], ...]:
    from engine.rules.messaging import load_pack

    pack = load_pack(config_dir)
    return tuple((name, seq.steps[0].step) for name, seq in sorted(pack.sequences.items()) if seq.steps)


def _run_key(run_id: int):
    """``'shadow-<run>-' || draft.lead_id``: the idempotency key of the gateway row of a draft in that run."""
    return sa.literal(f"shadow-{int(run_id)}-", sa.String).concat(sa.cast(Draft.lead_id, sa.String))


def _joined(app: Configured, run_id: int):
    """How a run's drafts join their gateway rows: by the run's key, first touches only (the step a shadow run
    drafts; later steps come from daily runs)."""
    first = _first_steps(str(app.settings.config_dir))
    step_ok = sa.or_(*[sa.and_(col(Draft.sequence) == seq, col(Draft.step) == step) for seq, step in first]) \
        if first else sa.false()
    return sa.and_(col(OutboxItem.idempotency_key) == _run_key(run_id), step_ok)


def _json_has_code(column, code: str):
    """True when a JSON list of {"code": ...} objects (stored as text) holds ``code``."""
    esc = code.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return sa.cast(column, sa.Text).like(f'%"{esc}"%', escape="\\")


def _filters(tiers: Iterable[int] = (), decisions: Iterable[str] = (), reason: str | None = None,
             statuses: Iterable[str] = ()) -> list:
    where: list[sa.ColumnElement[bool]] = []
    tiers, decisions, statuses = list(tiers or ()), list(decisions or ()), list(statuses or ())
    if tiers:
        where.append(col(OutboxItem.tier).in_([int(t) for t in tiers]))
    if decisions:
        where.append(col(OutboxItem.status).in_(decisions))
    if statuses:
        where.append(col(Draft.status).in_(statuses))
    if reason:
        where.append(sa.or_(_json_has_code(OutboxItem.reasons, reason), _json_has_code(Draft.flags, reason)))
    return where


def _codes(items) -> list[str]:
    return [str(x.get("code")) for x in (items or []) if isinstance(x, dict) and x.get("code")]


def list_shadow_drafts(app: Configured, run_id: int, *, tiers: Iterable[int] = (), decisions: Iterable[str] = (),
                       reason: str | None = None, statuses: Iterable[str] = (), page: int = 1,
                       per_page: int = 25) -> dict:
    """One page of a shadow run's emails, filtered and paginated in SQL, in the order the run made them.

    Returns {"run_id", "total" (matching the filters), "page", "pages", "per_page", "rows"}; each row has
    draft_id, lead_id, to, company, tier, decision, reasons, findings, status, subject, decided_by, note.
    """
    per_page = max(1, min(int(per_page), PER_PAGE_MAX))
    on = _joined(app, run_id)
    where = _filters(tiers, decisions, reason, statuses)
    with app.store.read() as s:
        total = s.exec(select(func.count()).select_from(Draft).join(OutboxItem, on).where(*where)).one()
        pages = max(1, math.ceil(total / per_page))
        page = max(1, min(int(page), pages))
        rows = _listing(s, _listing_query(on).where(*where).order_by(col(OutboxItem.id), col(Draft.id))
                        .offset((page - 1) * per_page).limit(per_page))
    return {"run_id": run_id, "total": total, "page": page, "pages": pages, "per_page": per_page, "rows": rows}


def _listing_query(on) -> Select:
    # sqlmodel's select() is typed for at most 4 columns; Select is what it builds for more
    columns = [col(c) for c in (Draft.id, Draft.lead_id, Draft.status, Draft.subject, Draft.flags,
                                OutboxItem.to_email, OutboxItem.tier, OutboxItem.status, OutboxItem.reasons,
                                Lead.company, Draft.text, Draft.html)]
    return Select(*columns).join(OutboxItem, on).join(Lead, col(Lead.id) == Draft.lead_id)


def _listing(s, query) -> list[dict]:
    rows: Sequence[Any] = s.exec(query).all()
    decided = _last_decisions(s, [r[0] for r in rows])
    out = []
    for (draft_id, lead_id, status, subject, flags, to, tier, decision, reasons, company, text, body_html) in rows:
        d = decided.get(draft_id, {})
        out.append({"draft_id": draft_id, "lead_id": lead_id, "to": to, "company": company, "tier": tier,
                    "decision": decision, "reasons": _codes(reasons), "findings": _codes(flags), "status": status,
                    "subject": subject, "decided_by": d.get("actor"), "note": d.get("reason"),
                    "version": draft_version(status, subject, text, body_html, flags, d.get("seq"))})
    return out


def shadow_draft_rows(app: Configured, run_id: int, draft_ids: Iterable[int]) -> list[dict]:
    """The listing rows (as ``list_shadow_drafts`` gives them: status, who decided last and the version included)
    of exactly these drafts of the run, in the order given, however many: what a bulk confirmation lists (and
    the versions it decides on). Ids that are not the run's are left out."""
    ids = list(dict.fromkeys(int(i) for i in draft_ids))
    on = _joined(app, run_id)
    found: dict[int, dict] = {}
    with app.store.read() as s:
        for n in range(0, len(ids), 500):
            for r in _listing(s, _listing_query(on).where(col(Draft.id).in_(ids[n:n + 500]))):
                found[r["draft_id"]] = r
    return [found[i] for i in ids if i in found]


def _last_decisions(s, draft_ids: list[int]) -> dict[int, dict]:
    """The newest approve/reject/edit audit row of each draft (who and why)."""
    if not draft_ids:
        return {}
    rows = s.exec(select(AuditEntry).where(col(AuditEntry.ref).in_([str(i) for i in draft_ids]),
                                           col(AuditEntry.event).in_(DRAFT_EVENTS))
                  .order_by(col(AuditEntry.seq))).all()
    out: dict[int, dict] = {}
    for r in rows:
        data = _loads(r.data)
        out[int(r.ref)] = {"event": r.event, "actor": r.actor, "at": r.at, "reason": data.get("reason") or None,
                           "seq": r.seq}
    return out


def draft_version(status: str | None, subject: str | None, text: str | None, html: str | None, flags,
                  last_seq: int | None) -> str:
    """What a reviewer decides on, fingerprinted (``approvals.fingerprint``, the one definition): the draft's
    subject and body as stored, its review status, its findings, and its newest approve/reject/edit audit row (so
    a decision by someone else changes it even when it lands on the same status)."""
    from engine.services.approvals import fingerprint

    return fingerprint({"status": str(status) if status is not None else None, "subject": subject, "text": text,
                        "html": html, "flags": flags, "last": last_seq})


def _last_change(s, draft_id: int) -> AuditEntry | None:
    return s.exec(select(AuditEntry).where(AuditEntry.ref == str(draft_id), col(AuditEntry.event).in_(DRAFT_EVENTS))
                  .order_by(col(AuditEntry.seq).desc()).limit(1)).first()


def _same_as_seen(s, d: Draft, seen: str | None, verb: str) -> None:
    """Refuse (naming who changed it) a decision on draft ``d`` (read in the write transaction ``s``) made from a
    page that showed another version of it. ``seen`` None: no check (the CLI, which shows nothing first)."""
    if seen is None:
        return
    last = _last_change(s, d.id) if d.id is not None else None
    if seen == draft_version(d.status, d.subject, d.text, d.html, d.flags, last.seq if last else None):
        return
    what = f"now {d.status}" + (f"; {last.event.removeprefix('draft.')} by {last.actor} at {last.at}" if last else "")
    raise InvalidRequest(f"draft {d.id} changed since you saw it ({what}): read it again, then {verb} it")


def _loads(text: str | None) -> dict:
    try:
        data = json.loads(text or "{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def batch_progress(app: Configured, run_id: int) -> dict:
    """How far the review of a run's emails is: total, reviewed, and counts by status, decision and tier."""
    on = _joined(app, run_id)

    def count_by(s, col) -> dict:
        return dict(s.exec(select(col, func.count()).select_from(Draft).join(OutboxItem, on).group_by(col)).all())

    with app.store.read() as s:
        by_status, by_decision, by_tier = (count_by(s, Draft.status), count_by(s, OutboxItem.status),
                                           count_by(s, OutboxItem.tier))
    total = sum(by_status.values())
    reviewed = sum(n for st, n in by_status.items() if st in REVIEWED)
    return {"run_id": run_id, "total": total, "reviewed": reviewed, "pending": total - reviewed,
            "by_status": by_status, "by_decision": by_decision,
            "by_tier": {t: n for t, n in sorted(by_tier.items(), key=lambda kv: (kv[0] is None, kv[0] or 0))}}


def reason_codes(app: Configured, run_id: int) -> list[str]:
    """Reason codes worth filtering a run by: the gateway codes its summary counted, then the content findings."""
    with app.store.read() as s:
        run = s.get(ShadowRun, run_id)
    known = {c.value for c in Code}
    seen = [c for c in ((run.summary or {}).get("by_reason") or {}) if c in known] if run else []
    return seen + [c for c in CONTENT_CODES if c not in seen]


# ------------------------------------------------------------------------------------------- one draft

def _body_text(d: Draft) -> str:
    from engine.rules.messaging import html_to_plain

    return d.text if d.text else html_to_plain(d.html or "")


def finding_terms(flags: Iterable[dict] | None) -> list[str]:
    """Words a draft's findings name: the unsupported claim terms the drafting check recorded."""
    terms: list[str] = []
    for f in flags or []:
        if isinstance(f, dict):
            for t in f.get("terms") or []:
                if isinstance(t, str) and t.strip() and t not in terms:
                    terms.append(t.strip())
    return terms


def segments(text: str, rules=None, terms: Iterable[str] = ()) -> list[tuple[str, str | None]]:
    """``text`` cut into (piece, code) pairs: code is the finding a piece matched (spam term, forbidden claim,
    unsupported claim term) or None. The pieces joined give ``text`` back exactly."""
    spans: list[tuple[int, int, str]] = []
    if rules is not None:
        for pattern, code in ((rules.spam, Code.SPAM_CONTENT.value), (rules.claims, Code.FORBIDDEN_CLAIM.value)):
            if pattern is not None:
                spans += [(m.start(), m.end(), code) for m in pattern.finditer(text) if m.end() > m.start()]
    for t in terms:
        pat = re.compile(r"(?<!\w)" + r"\s+".join(re.escape(w) for w in t.split()) + r"(?!\w)", re.I)
        spans += [(m.start(), m.end(), "unsupported_claim") for m in pat.finditer(text) if m.end() > m.start()]
    spans.sort(key=lambda x: (x[0], -(x[1] - x[0])))
    out: list[tuple[str, str | None]] = []
    pos = 0
    for start, end, code in spans:
        if start < pos:  # overlaps a longer match already marked
            continue
        if start > pos:
            out.append((text[pos:start], None))
        out.append((text[start:end], code))
        pos = end
    if pos < len(text) or not out:
        out.append((text[pos:], None))
    return out


def draft_detail(app: Configured, draft_id: int, run_id: int | None = None) -> dict:
    """One draft as a reviewer needs it: lead, subject and body text (with findings located), the gateway's
    decision and reasons in the run (default: the newest shadow run that decided on it), and its history."""
    from engine.rules.guardrails.content import ContentRules

    with app.store.read() as s:
        d = s.get(Draft, draft_id)
        if d is None:
            raise InvalidRequest(f"draft {draft_id} does not exist")
        lead = s.get(Lead, d.lead_id)
        q = select(OutboxItem).where(OutboxItem.lead_id == str(d.lead_id))
        if run_id is not None:
            q = q.where(OutboxItem.idempotency_key == f"shadow-{int(run_id)}-{d.lead_id}")
        else:
            q = q.where(col(OutboxItem.idempotency_key).like("shadow-%")).order_by(col(OutboxItem.id).desc())
        row = s.exec(q).first()
        history = s.exec(select(AuditEntry).where(AuditEntry.ref == str(draft_id),
                                                  col(AuditEntry.event).in_(DRAFT_EVENTS))
                         .order_by(col(AuditEntry.seq))).all()
    rules = ContentRules.from_settings(app.settings)
    body = _body_text(d)
    terms = finding_terms(d.flags)
    prov = d.provenance or {}
    return {
        "version": draft_version(d.status, d.subject, d.text, d.html, d.flags, history[-1].seq if history else None),
        "draft_id": d.id, "lead_id": d.lead_id, "status": d.status, "sequence": d.sequence, "step": d.step,
        "template": f"{d.template_id} v{d.template_version}", "provider": d.provider,
        "created_at": iso(d.created_at), "edited": prov.get("edited"),
        "lead": {"name": " ".join(x for x in (lead.first_name, lead.last_name) if x) if lead else "",
                 "email": lead.email if lead else None, "company": lead.company if lead else None,
                 "title": lead.title if lead else None},
        "to": row.to_email if row else (lead.email if lead else None),
        "tier": row.tier if row else None,
        "decision": row.status if row else None,
        "reasons": [{"code": r.get("code"), "detail": r.get("detail", "")} for r in (row.reasons or [])
                    if isinstance(r, dict)] if row else [],
        "findings": [{"code": f.get("code"), "detail": f.get("detail") or f.get("sentence") or "",
                      "terms": ", ".join(f.get("terms") or [])} for f in (d.flags or []) if isinstance(f, dict)],
        "subject": d.subject, "text": body, "html": d.html,
        "subject_segments": segments(d.subject or "", rules, terms),
        "body_segments": segments(body, rules, terms),
        "history": [{"at": h.at, "event": h.event.removeprefix("draft."), "actor": h.actor,
                     "reason": _loads(h.data).get("reason") or ""} for h in history],
    }


# ------------------------------------------------------------------------------------------- edit

_URL = re.compile(r"https?://[^\s<>\"'()]+[^\s<>\"'().,;:!?]")


def text_to_html(text: str) -> str:
    """A plain-text body as simple HTML: escaped, paragraphs on blank lines, line breaks kept, http(s) links
    made clickable (so the unsubscribe link stays a visible link)."""
    def para(p: str) -> str:
        out, pos = [], 0
        for m in _URL.finditer(p):
            out.append(html.escape(p[pos:m.start()]))
            url = html.escape(m.group(0), quote=True)
            out.append(f'<a href="{url}">{url}</a>')
            pos = m.end()
        out.append(html.escape(p[pos:]))
        return "<p>" + "".join(out).replace("\n", "<br>\n") + "</p>"

    paras = [p.strip("\n") for p in re.split(r"\n\s*\n", text.replace("\r\n", "\n").replace("\r", "\n"))]
    return "\n".join(para(p) for p in paras if p.strip()) + "\n"


def _digest(text: str | None) -> str:
    return hashlib.sha256((text or "").encode()).hexdigest()[:16]


def edit_record(app: Configured, draft: Draft, lead: Lead | None, subject: str, html: str | None,
                text: str | None) -> dict:
    """A draft as the email action the gateway would check (to the lead, from the first sending mailbox)."""
    sender = app.settings.production.sender
    rec = {"agent": "GHL_MASTER", "action": "send_email", "idempotency_key": f"draft-edit-{draft.id}",
           "to": lead.email if lead else "", "from": sender.from_addresses[0], "subject": subject}
    if html:
        rec["html"] = html
    if text:
        rec["text"] = text
    return rec


def edit_draft(app: Configured, draft_id: int, subject: str, text: str, actor: str, reason: str = "",
               approve: bool = True, seen: str | None = None):
    """Replace a draft's subject and body (plain text; the HTML is rebuilt from it), re-run the gate's message
    rules on the result (``approvals.recheck_message``, the check the gateway runs) and, when they find nothing,
    save it and by default approve it, in one transaction. While any finding remains the edit is refused
    (``EditRefused`` naming each finding and the matched text) and nothing is saved or approved. The audit trail
    records ``draft.edited`` (editor, reason, subject before/after, body digests) and ``draft.approved``.
    Refused for queued or sent drafts, and with ``seen`` (the ``version`` the edit started from) for a draft
    someone else edited or decided since. Returns the draft."""
    from engine.services.approvals import EditRefused, recheck_message

    subject = " ".join((subject or "").split())
    text = (text or "").replace("\r\n", "\n").replace("\r", "\n").strip("\n")
    if not subject:
        raise InvalidRequest("the subject is empty")
    if len(subject) > MAX_SUBJECT:
        raise InvalidRequest(f"the subject is longer than {MAX_SUBJECT} characters")
    if not text.strip():
        raise InvalidRequest("the body is empty")
    if len(text) > MAX_BODY:
        raise InvalidRequest(f"the body is longer than {MAX_BODY} characters")
    text += "\n"
    body_html = text_to_html(text)
    now = app.clock()
    with app.store.write() as s:
        d = s.get(Draft, draft_id)
        if d is None:
            raise InvalidRequest(f"draft {draft_id} does not exist")
        if d.status not in EDITABLE:
            raise InvalidRequest(f"draft {draft_id} is {d.status}: it can no longer be edited")
        _same_as_seen(s, d, seen, "edit")
        prov = dict(d.provenance or {})
        first_touch = ((prov.get("template") or {}).get("kind") or "first_touch") == "first_touch"
        lead = s.get(Lead, d.lead_id)
        # the gate's own check, for this lead (the unsubscribe link must carry the lead's own signed token);
        # a follow-up step may say "Re:" (the gateway drops that rule once the lead had a send)
        findings = [r.to_dict() for r in recheck_message(app, edit_record(app, d, lead, subject, body_html, text),
                                                         first_touch=True if first_touch else False, s=s)]
        # an unsupported-claim flag (the LLM stated what the lead's facts do not support) stays while its sentence
        # is still in the text: a finding the page shows, so the edit is refused until the sentence is changed
        kept = [f for f in (d.flags or []) if isinstance(f, dict) and f.get("code") == "unsupported_claim"
                and f.get("sentence") and f["sentence"] in text]
        findings += [{"code": "unsupported_claim",
                      "detail": f"{f.get('detail') or 'the LLM sentence is not supported by the lead facts'}: "
                                f"\"{f['sentence']}\" (change or remove the sentence)"} for f in kept]
        if findings:
            raise EditRefused(f"edit of draft {draft_id}", findings)
        before = {"status": d.status, "subject": d.subject, "body_sha": _digest(d.text or d.html)}
        d.subject, d.text, d.html = subject, text, body_html
        d.flags = []  # nothing the gate or the drafting check would flag is left
        prov["edited"] = {"by": actor, "at": iso(now), "reason": reason or None}
        d.provenance = prov
        after_status = "approved" if approve else d.status
        d.status = after_status
        s.add(d)
        audit.append(s, event="draft.edited", actor=actor, now=now, ref=str(draft_id), status=after_status,
                     data={"reason": reason, "lead_id": d.lead_id, "template": d.template_id, "before": before,
                           "after": {"subject": subject, "body_sha": _digest(text)},
                           "findings": _codes(d.flags)})
        if approve:
            audit.append(s, event="draft.approved", actor=actor, now=now, ref=str(draft_id), status="approved",
                         data={"before": before["status"], "reason": reason or "edited and approved",
                               "lead_id": d.lead_id, "template": d.template_id, "edited": True})
        return d


# ------------------------------------------------------------------------------------------- many at once

def decide_draft(app: Configured, draft_id: int, status: str, actor: str, reason: str = "",
                 seen: str | None = None) -> Draft:
    """Approve or reject one draft from a review page, in one transaction with its audit row (the record
    ``pipeline.set_draft_status`` writes): refused for a draft already in that status, queued or sent, and with
    ``seen`` (the ``version`` the person read) for a draft someone else edited or decided since."""
    if status not in ("approved", "rejected"):
        raise InvalidRequest("status must be approved or rejected")
    if status == "rejected" and not (reason or "").strip():
        raise InvalidRequest("a reason is required to reject a draft")
    now = app.clock()
    with app.store.write() as s:
        d = s.get(Draft, draft_id)
        if d is None:
            raise InvalidRequest(f"draft {draft_id} does not exist")
        if d.status not in EDITABLE:
            raise InvalidRequest(f"draft {draft_id} is {d.status}: nothing left to decide")
        _same_as_seen(s, d, seen, "approve" if status == "approved" else "reject")
        if d.status == status:
            raise InvalidRequest(f"draft {draft_id} is already {d.status}")
        before = d.status
        d.status = status
        s.add(d)
        audit.append(s, event=f"draft.{status}", actor=actor, now=now, ref=str(draft_id), status=status,
                     data={"before": before, "reason": reason.strip(), "lead_id": d.lead_id,
                           "template": d.template_id})
        return d


def decide_drafts(app: Configured, draft_ids: Iterable[int], status: str, actor: str, reason: str = "",
                  seen: dict | None = None) -> list[dict]:
    """Approve or reject several drafts, each on its own (``decide_draft``, its own transaction and audit row): a
    draft already in that status, queued or sent is left alone and reported, and so is one whose version is no
    longer the one ``seen`` (draft id -> ``version``, what the confirmation listed) names. Rejecting needs a
    reason. Returns one outcome per id, in order: {"id", "ok", "status", "error"}."""
    seen = {int(k): v for k, v in (seen or {}).items()}
    if status not in ("approved", "rejected"):
        raise InvalidRequest("status must be approved or rejected")
    if status == "rejected" and not (reason or "").strip():
        raise InvalidRequest("a reason is required to reject drafts")
    ids = list(dict.fromkeys(int(i) for i in draft_ids))
    with app.store.read() as s:
        current = dict(s.exec(select(Draft.id, Draft.status).where(col(Draft.id).in_(ids))).all()) if ids else {}
    out = []
    for i in ids:
        was = current.get(i)
        if was is None:
            out.append({"id": i, "ok": False, "status": None, "error": f"draft {i} does not exist"})
        elif was == status:
            out.append({"id": i, "ok": False, "status": was, "error": f"draft {i} is already {was}"})
        elif was not in EDITABLE:
            out.append({"id": i, "ok": False, "status": was, "error": f"draft {i} is {was}: nothing left to decide"})
        else:
            try:
                d = decide_draft(app, i, status, actor, reason.strip(), seen=seen.get(i))
                out.append({"id": i, "ok": True, "status": d.status, "error": None})
            except InvalidRequest as e:
                out.append({"id": i, "ok": False, "status": was, "error": str(e)})
    return out


def shadow_draft_ids(app: Configured, run_id: int, *, tiers: Iterable[int] = (), decisions: Iterable[str] = (),
                     reason: str | None = None, statuses: Iterable[str] = ()) -> list[int]:
    """Every draft id of a run that the filters match (all pages, listing order): "select all matching"."""
    on = _joined(app, run_id)
    where = _filters(tiers, decisions, reason, statuses)
    with app.store.read() as s:
        ids = s.exec(select(col(Draft.id)).join(OutboxItem, on).where(*where)
                     .order_by(col(OutboxItem.id), col(Draft.id))).all()
    return [i for i in ids if i is not None]  # a primary key: never None
