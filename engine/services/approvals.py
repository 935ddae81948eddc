"""The approval queue: who approves what (config/approvers.json), SLAs and expiry, four-eyes, execution.

The gateway creates a request whenever approval is required. A person approves, rejects (with a reason) or
edits; nobody approves an item they requested or edited. An SLA breach escalates to the backup and the item
stays pending; past its expiry it becomes ``expired`` (never approved, never counted as a human rejection). SLA and
expiry minutes count only the roster's coverage hours (``add_covered_minutes``): a request made on Friday evening
starts counting when coverage opens on Monday.
Approved items execute through ``Gateway.resume``, which re-runs every check at that moment: a send that is no
longer safe is deferred or denied, not forced through.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Literal, Protocol, Sequence, get_args
from zoneinfo import ZoneInfo

from pydantic import Field, field_validator
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlmodel import col, select

from engine.adapters import audit
from engine.core.actions import Action
from engine.core.config import DAYS, WorkingHours, _check_tz, _Strict, _validate
from engine.core.errors import AlphaError, ConfigError, InvalidRequest
from engine.adapters.models import Approval, Lead, OutboxItem
from engine.core.reasons import Code, Reason
from engine.adapters.ports import Configured

if TYPE_CHECKING:
    from engine.services.gateway import Gateway

log = logging.getLogger("alpha.worker")

ActionType = Literal["tier1_email", "tier2_email", "tier3_email", "bulk_campaign", "hot_lead", "crm_write"]
ACTION_TYPES: tuple[ActionType, ...] = get_args(ActionType)


class Approving(Configured, Protocol):
    """What the approval queue uses of the engine (engine.app.App): settings, store and clock, the gateway that
    executes approved items, and alerts for SLA breaches."""

    @property
    def gateway(self) -> Gateway: ...

    def alert_dict(self, alert: dict) -> None: ...


class Coverage(WorkingHours):
    timezone: str
    default_timezone: str = "UTC"

    _tz2 = field_validator("timezone")(_check_tz)


class RosterEntry(_Strict):
    group: Literal["ae", "approver", "ops", "admin"]
    primary: str = Field(min_length=1)
    backup: str = Field(min_length=1)
    sla_minutes: int = Field(ge=1)
    expire_minutes: int = Field(ge=1)
    coverage: Coverage
    escalation_contacts: list[str] = []


class Roster(_Strict):
    action_types: dict[ActionType, RosterEntry]

    def entry(self, kind: str) -> RosterEntry | None:
        """The entry of an action type as stored (plain text), None when the roster has none."""
        return next((e for k, e in self.action_types.items() if k == kind), None)


# ------------------------------------------------------------------------------------------ coverage hours

def _wall_to_utc(day: date, minute_of_day: int, tz: ZoneInfo) -> datetime:
    """The instant at which the wall clock in ``tz`` shows ``minute_of_day`` (0..1440) on ``day``: for a time that
    occurs twice (DST ends) the first occurrence; for a time that does not exist (DST starts) the first instant after
    it, i.e. the transition. Non-decreasing in the wall time, so windows built from it never run backwards."""
    if minute_of_day >= 1440:  # "24:00": midnight that starts the next day
        day, minute_of_day = day + timedelta(days=1), minute_of_day - 1440
    local = datetime(day.year, day.month, day.day, minute_of_day // 60, minute_of_day % 60, tzinfo=tz)
    first = local.astimezone(timezone.utc)
    if first.astimezone(tz).replace(tzinfo=None) == local.replace(tzinfo=None):
        return first  # it exists (fold=0 is the first of two occurrences)
    # in a gap: fold=0 reads it with the offset before the change and lands after the transition; the transition
    # lies between the reading with the offset after the change (fold=1) and that one
    a, b = int(local.replace(fold=1).timestamp()), int(first.timestamp())
    lo, hi = min(a, b), max(a, b)
    after = first.astimezone(tz).utcoffset()
    while hi - lo > 1:  # zone transitions fall on whole seconds
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, tz).utcoffset() == after:
            hi = mid
        else:
            lo = mid
    return datetime.fromtimestamp(hi, timezone.utc)


def coverage_windows(start: datetime, coverage) -> Iterator[tuple[datetime, datetime]]:
    """The coverage windows (open, close) as UTC instants, in order, from the one that contains ``start`` (or the
    next one) on. ``coverage`` has days, start, end ("24:00" ends at midnight) and timezone."""
    if not coverage.days:
        raise ValueError("coverage.days is empty: no time is ever covered")
    tz = ZoneInfo(coverage.timezone)
    open_min, close_min = WorkingHours.minutes(coverage.start), WorkingHours.minutes(coverage.end)
    days = set(coverage.days)
    day = start.astimezone(tz).date()
    while True:
        if DAYS[day.weekday()] in days:
            opens, closes = _wall_to_utc(day, open_min, tz), _wall_to_utc(day, close_min, tz)
            if closes > opens and closes > start:
                yield opens, closes
        day += timedelta(days=1)


def _utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)


def add_covered_minutes(start: datetime, minutes: float, coverage) -> datetime:
    """The instant at which ``minutes`` of coverage hours have passed since ``start``: only time inside the
    roster's coverage windows counts, so a request made outside coverage starts counting at the next opening
    (Friday 19:00 New York + 60 minutes of a Mon-Fri 08:00-18:00 coverage -> Monday 09:00). Minutes are elapsed
    minutes (a window on a DST day is as long as it really is). A naive ``start`` is UTC; the result is UTC, naive
    if ``start`` was."""
    naive = start.tzinfo is None
    t = _utc(start)
    left = timedelta(minutes=minutes)
    if left <= timedelta(0):
        return start
    for opens, closes in coverage_windows(t, coverage):
        frm = max(opens, t)
        if left <= closes - frm:
            out = frm + left
            return out.replace(tzinfo=None) if naive else out
        left -= closes - frm
    raise AssertionError("unreachable")  # coverage_windows never ends


def covered_minutes(start: datetime, end: datetime, coverage) -> float:
    """How many minutes between ``start`` and ``end`` lie inside the coverage windows (the inverse of
    add_covered_minutes)."""
    a, b = _utc(start), _utc(end)
    total = timedelta(0)
    if b <= a:
        return 0.0
    for opens, closes in coverage_windows(a, coverage):
        if opens >= b:
            break
        total += min(closes, b) - max(opens, a)
    return total / timedelta(minutes=1)


def load_roster(config_dir: str | Path) -> Roster:
    problems: list[str] = []
    path = Path(config_dir) / "approvers.json"
    roster = _validate(Roster, path, problems)
    if roster is not None:
        missing = [t for t in ACTION_TYPES if t not in roster.action_types]
        if missing:
            problems.append(f"{path}: key 'action_types' lacks {', '.join(missing)} (every action type needs a "
                            "primary and a backup approver)")
        for name, e in roster.action_types.items():
            if e.primary == e.backup:
                problems.append(f"{path}: key 'action_types.{name}.backup' = \"{e.backup}\": the backup must be "
                                "another person than the primary")
            if not e.coverage.days:
                problems.append(f"{path}: key 'action_types.{name}.coverage.days' is empty: SLAs and expiry count "
                                "only minutes inside coverage hours, so at least one day is needed")
            if e.expire_minutes <= e.sla_minutes:
                problems.append(f"{path}: key 'action_types.{name}.expire_minutes' = {e.expire_minutes}: must be "
                                f"longer than sla_minutes ({e.sla_minutes})")
    if problems:
        raise ConfigError(problems)
    return roster


ACTOR_PREFIXES = ("console:", "cli:")


def identity(actor: str) -> str:
    """The person behind an actor string: ``console:jane`` and ``cli:jane`` are both ``jane`` (four-eyes and the
    roster compare people, not the tool they used)."""
    a = (actor or "").strip()
    for p in ACTOR_PREFIXES:
        if a.lower().startswith(p):
            a = a[len(p):]
    return a.strip().lower()


class EditRefused(InvalidRequest):
    """An edit the gate would refuse: nothing was saved. ``findings`` holds each reason as a dict (code, detail:
    the matched text)."""

    def __init__(self, what: str, findings: list[dict]):
        self.findings = findings
        named = "; ".join(f"{f['code']} ({f['detail']})" if f.get("detail") else f["code"] for f in findings)
        super().__init__(f"{what} refused: the content rules still find {named}. Nothing was saved: change the "
                         "text and save again.")


def recheck_message(app, record: dict, first_touch: bool | None = None, s=None) -> list[Reason]:
    """The gate's message rules on an email action ``record`` as it stands now (after an edit): the very check
    ``Gateway._precheck`` runs before each decision and again when an approved item executes
    (``guardrails.static_reasons`` with the gateway's unsubscribe secret: recipient syntax and exclusions, spam
    terms, forbidden claims, this recipient's own unsubscribe link, the postal address, a deceptive subject).
    As in the gateway's decision the deceptive-subject rule holds for a first touch only: ``first_touch`` says
    so, else an earlier send to the recipient in the outbox (read in ``s``, or a new read) makes it a follow-up."""
    from engine.rules import guardrails
    from engine.core.actions import InvalidAction, parse_action
    from engine.core.identity import canonical_address
    from engine.queries.outbox import has_prior_send

    try:
        action = parse_action(record)
    except InvalidAction as e:
        raise InvalidRequest("the edited message is not a valid email: " + "; ".join(e.problems)) from None
    secret = getattr(app.gateway, "secret", None)
    reasons = guardrails.static_reasons(action, app.settings, first_touch=True, secret=secret)
    if first_touch is None:
        key = canonical_address(action.to) if action.to else ""
        if key:
            if s is not None:
                prior = has_prior_send(s, key)
            else:
                with app.store.read() as rs:
                    prior = has_prior_send(rs, key)
        else:
            prior = False
        first_touch = not prior or action.first_touch is True
    if not first_touch:
        reasons = [r for r in reasons if r.code != Code.DECEPTIVE_SUBJECT]
    return list(dict.fromkeys(reasons))


def standing_reasons(s, settings, record: dict, lead_id: int | None = None,
                     now: datetime | None = None) -> list[Reason]:
    """The permanent reasons the gate finds in what is stored about the recipient of an email ``record`` (read in
    ``s``), beside its message: the suppression list (any spelling of the address) and the recipient's stored lead
    (stopped: a reply, an opt-out, a bounce; its company or domain on an exclusion list), as ``Gateway._standing``
    and ``decision.lead_reasons`` read them. An out-of-office pause only holds a send: it is not among these. A
    person's "no" recorded after the request was raised shows here at once, and an approval is refused while any
    remains."""
    from engine.core.actions import InvalidAction, parse_action
    from engine.core.identity import canonical_address
    from engine.core.reasons import Kind
    from engine.adapters.models import Suppression
    from engine.rules import guardrails
    from engine.rules.decision import LeadState, lead_reasons

    try:
        action = parse_action(record)
    except InvalidAction:
        return []  # the message check names it
    key = canonical_address(action.to) if action.to else ""
    if not key:
        return []
    sup = s.exec(select(Suppression).where(Suppression.address_key == key).limit(1)).first()
    out = guardrails.check_suppression(guardrails.Suppressed(sup.email, sup.reason, sup.source or "")
                                       if sup is not None else None)
    lead = s.get(Lead, lead_id) if lead_id is not None else None
    if lead is None or lead.email_key != key:  # the gateway's rule: the claimed lead only when it is this recipient's
        lead = s.exec(select(Lead).where(Lead.email_key == key).order_by(col(Lead.id)).limit(1)).first()
    if lead is not None and lead.id is not None:
        state = LeadState(id=lead.id, status=lead.status, stop_reason=lead.stop_reason,
                          sequence_stopped_at=lead.sequence_stopped_at, paused_until=lead.paused_until,
                          company=lead.company, company_domain=lead.company_domain, tier=lead.tier,
                          timezone=lead.timezone, country=lead.country)
        out += [r for r in lead_reasons(state, action, settings, now or datetime.now(timezone.utc))
                if r.kind is Kind.PERMANENT]
    return list(dict.fromkeys(out))


def fingerprint(data: dict) -> str:
    """A short fingerprint of what a person decides on (the one definition: approvals here, shadow drafts in
    ``shadow_emails.draft_version``): a page shows it with the item and sends it back as ``seen``; the decision is
    refused when what is stored no longer gives the same fingerprint."""
    import hashlib
    import json

    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def message_version(appr: Approval, row: OutboxItem | None) -> str:
    """The fingerprint of an approval: the message as stored (an edit changes it) or a hot lead's summary (a new
    event adds to it). A decision made with ``seen`` is refused when it no longer matches."""
    return fingerprint({"record": (row.record if row is not None else None), "summary": appr.summary,
                        "edited_at": _iso(appr.edited_at), "edited_by": appr.edited_by})


def may_decide(entry: RosterEntry, username: str, roles: list[str]) -> bool:
    """Pure roster rule: the entry's group, an admin, or the named primary/backup (escalations go to the
    backup, who must be able to act even when outside the group)."""
    return bool(username) and (entry.group in roles or "admin" in roles
                               or username in (entry.primary.lower(), entry.backup.lower()))


def action_type(action: Action, high_risk: bool) -> ActionType:
    if action.action == "send_campaign_email":
        return "bulk_campaign"
    if action.action.startswith("crm_"):
        return "crm_write"
    if action.tier == 1:
        return "tier1_email"
    return "tier2_email" if action.tier == 2 else "tier3_email"


@dataclass
class ApprovalService:
    app: Approving

    @property
    def roster(self) -> Roster:
        if getattr(self, "_roster", None) is None:
            self._roster = load_roster(self.app.settings.config_dir)
        return self._roster

    # called by the gateway, inside its transaction, for every new request
    def new_fields(self, action: Action, high_risk: bool, now: datetime) -> dict:
        kind = action_type(action, high_risk)
        e = self.roster.action_types[kind]
        return {"action_type": kind, **self.deadlines(e, now)}

    @staticmethod
    def deadlines(e: RosterEntry, now: datetime) -> dict:
        """SLA and expiry of a request made at ``now``: counted in the roster's coverage hours only."""
        return {"sla_due_at": add_covered_minutes(now, e.sla_minutes, e.coverage),
                "expires_at": add_covered_minutes(now, e.expire_minutes, e.coverage)}

    def pending(self, limit: int = 200) -> list[tuple[Approval, OutboxItem]]:
        """Pending approvals of outbound actions (with their outbox rows), most urgent first."""
        with self.app.store.read() as s:
            rows = s.exec(select(Approval, OutboxItem).join(OutboxItem, col(OutboxItem.id) == Approval.outbox_id)
                          .where(Approval.status == "pending").order_by(col(Approval.sla_due_at), col(Approval.id))
                          .limit(limit)).all()
        return list(rows)

    # ------------------------------------------------------------------------------ hot leads

    def raise_hot_lead(self, s, lead: Lead, title: str, why: str, source: str, now: datetime) -> Approval | None:
        """Inside the caller's transaction: a hot-lead escalation in the queue with the roster's SLA (5 minutes
        by default), unless one is already pending for this lead (then its summary gains the new event)."""
        e = self.roster.action_types["hot_lead"]
        line = f"{title}: {why}".strip()[:2000]
        existing = s.exec(select(Approval).where(Approval.kind == "hot_lead", Approval.lead_id == lead.id,
                                                 Approval.status == "pending")).first()
        if existing is not None:
            existing.summary = f"{existing.summary}\n{line}"[-8000:]
            s.add(existing)
            audit.append(s, event="approval.hot_lead_again", actor=source, now=now, ref=str(existing.id),
                         status="pending", data={"lead_id": lead.id, "title": title})
            return None
        appr = Approval(kind="hot_lead", lead_id=lead.id, summary=line, status="pending", risk="high",
                        requested_by=source, requested_at=now, action_type="hot_lead", **self.deadlines(e, now))
        s.add(appr)
        s.flush()
        audit.append(s, event="approval.hot_lead", actor=source, now=now, ref=str(appr.id), status="pending",
                     data={"lead_id": lead.id, "title": title, "primary": e.primary, "sla_minutes": e.sla_minutes})
        return appr

    def _where(self, now: datetime, status: str, kind: str | None, action_type: str | None, breached_only: bool,
               search: str | None = None, tier: int | None = None, due_within_minutes: float | None = None,
               older_than_minutes: float | None = None, only_ids=None) -> tuple[list, bool]:
        """The SQL conditions of a queue filter, and whether they need the lead joined."""
        import sqlalchemy as sa

        where = [col(Approval.status) == status]
        if only_ids is not None:
            where.append(col(Approval.id).in_(sorted({int(i) for i in only_ids})))
        if kind:
            where.append(col(Approval.kind) == kind)
        if action_type:
            where.append(col(Approval.action_type) == action_type)
        if breached_only:
            where.append(col(Approval.sla_due_at) <= now)
        if due_within_minutes is not None:
            where.append(col(Approval.sla_due_at) <= now + timedelta(minutes=float(due_within_minutes)))
        if older_than_minutes is not None:
            where.append(col(Approval.requested_at) <= now - timedelta(minutes=float(older_than_minutes)))
        need_lead = False
        if tier is not None:
            where.append(sa.or_(col(OutboxItem.tier) == int(tier),
                                sa.and_(col(OutboxItem.id).is_(None), col(Lead.tier) == int(tier))))
            need_lead = True
        text = " ".join((search or "").split()).lower()
        if text:
            esc = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            where.append(sa.or_(*[sa.func.lower(c).like(f"%{esc}%", escape="\\") for c in (
                OutboxItem.to_email, OutboxItem.subject, Lead.company, Lead.email, Lead.company_domain)]))
            need_lead = True
        return where, need_lead

    @staticmethod
    def _lead_on():
        """An approval's lead: a hot lead's own, or the lead id its outbox row carries (as text)."""
        import sqlalchemy as sa

        return sa.or_(col(Lead.id) == Approval.lead_id,
                      sa.and_(col(Approval.lead_id).is_(None), sa.cast(Lead.id, sa.String) == OutboxItem.lead_id))

    def queue(self, status: str = "pending", kind: str | None = None, action_type: str | None = None,
              breached_only: bool = False, limit: int = 100, offset: int = 0, search: str | None = None,
              tier: int | None = None, due_within_minutes: float | None = None,
              older_than_minutes: float | None = None, only_ids=None) -> dict:
        """The queue as plain rows for the console and `alpha approvals list`: sends and hot leads, most urgent
        first, with SLA minutes left, breach and escalation, where a message goes and the lead. Filtered and
        paginated in SQL: ``search`` (text in the recipient, subject, company, lead email or domain), ``tier``,
        ``due_within_minutes`` (SLA due that soon, breaches included), ``older_than_minutes`` (waiting that
        long); ``only_ids``: these items only. ``ids`` lists every id the filters match (all pages, in queue
        order), for "select all"."""
        now = self.app.clock()
        where, need_lead = self._where(now, status, kind, action_type, breached_only, search, tier,
                                       due_within_minutes, older_than_minutes, only_ids)
        q = select(Approval.id).outerjoin(OutboxItem, col(OutboxItem.id) == Approval.outbox_id)
        if need_lead:
            q = q.outerjoin(Lead, self._lead_on())
        with self.app.store.read() as s:
            ids = list(s.exec(q.where(*where).order_by(col(Approval.sla_due_at), col(Approval.id))).all())
            page = ids[max(0, offset):max(0, offset) + max(0, limit)]
            rows = s.exec(select(Approval, OutboxItem).outerjoin(OutboxItem, col(OutboxItem.id) == Approval.outbox_id)
                          .where(col(Approval.id).in_(page))
                          .order_by(col(Approval.sla_due_at), col(Approval.id))).all() \
                if page else []
            lead_ids = {_lead_id(a, o) for a, o in rows} - {None}
            leads = {ld.id: ld for ld in s.exec(select(Lead).where(col(Lead.id).in_(sorted(lead_ids)))).all()} \
                if lead_ids else {}
            out = []
            for a, o in rows:
                r = queue_row(a, o, leads.get(_lead_id(a, o)), now)
                r["findings"] = self._findings(o, s, now) if a.status == "pending" else []
                r["version"] = message_version(a, o)
                out.append(r)
        return {"total": len(ids), "now": now, "ids": ids, "rows": out}

    def _findings(self, o: OutboxItem | None, s, now: datetime | None = None) -> list[dict]:
        """What the gate will find that refuses a send when it executes, read now: the content rules on its
        message as it stands, and the recipient's standing (suppressed; the lead stopped or excluded)."""
        if o is None or o.channel != "email" or not o.record:
            return []
        facts = (o.decision or {}).get("facts") or {}
        first = facts.get("first_touch") if isinstance(facts.get("first_touch"), bool) else None
        try:
            found = recheck_message(self.app, dict(o.record), first_touch=first, s=s)
        except InvalidRequest as e:
            return [{"code": "INVALID_ACTION", "detail": str(e)}]
        found += standing_reasons(s, self.app.settings, dict(o.record), _int(o.lead_id), now)
        return [r.to_dict() for r in dict.fromkeys(found)]

    def detail(self, approval_id: int, touches: int = 10) -> dict:
        """One item as a reviewer needs it: the queue row, the gate's reasons when it decided (every rule it ran,
        ``gate_reasons``), the content rules on the message as it stands now (``findings``: empty when the gate
        would let it through), the lead's facts and its previous touches (newest first)."""
        now = self.app.clock()
        with self.app.store.read() as s:
            appr, row = self._get(s, approval_id)
            lead = s.get(Lead, _lead_id(appr, row)) if _lead_id(appr, row) is not None else None
            prev: Sequence[OutboxItem] = []
            if lead is not None:
                prev = s.exec(select(OutboxItem).where(OutboxItem.lead_id == str(lead.id),
                                                       OutboxItem.channel == "email")
                              .where(OutboxItem.id != (row.id if row is not None else -1))
                              .order_by(col(OutboxItem.id).desc()).limit(touches)).all()
            findings = self._findings(row, s, now)
            version = message_version(appr, row)
        item = queue_row(appr, row, lead, now)
        decision = (row.decision or {}) if row is not None else {}
        item.update({
            "gate_reasons": [r for r in (decision.get("all_reasons") or row.reasons or []) if isinstance(r, dict)]
            if row is not None else [],
            "gate_evaluated_at": decision.get("evaluated_at"), "high_risk": decision.get("high_risk"),
            "findings": findings, "version": version,
            "lead": None if lead is None else {
                "id": lead.id, "email": lead.email, "name": " ".join(x for x in (lead.first_name, lead.last_name) if x),
                "title": lead.title, "company": lead.company, "company_domain": lead.company_domain,
                "tier": lead.tier, "score": lead.score, "country": lead.country, "timezone": lead.timezone,
                "status": lead.status, "sequence": lead.sequence, "sequence_step": lead.sequence_step,
                "reply_class": lead.reply_class, "industry": lead.industry, "employees": lead.employee_count,
                "last_reply_at": _iso(lead.last_reply_at), "icp": ((lead.icp or {}).get("explanation")
                                                                   if isinstance(lead.icp, dict) else None)},
            "touches": [{"id": o.id, "at": _iso(o.sent_at if getattr(o, "sent_at", None) else o.created_at),
                         "status": o.status, "subject": o.subject} for o in prev],
        })
        return item

    def approve_many(self, approval_ids, actor: str, seen: dict | None = None) -> list[dict]:
        """Approve each item on its own (its own transaction, four-eyes and the roster checked per item exactly
        as ``approve``): one refusal does not stop the others. ``seen``: approval id -> the ``version`` the
        confirmation listed (an item changed since is refused). Returns one outcome per id, in order:
        {"id", "ok", "status", "error"}."""
        seen = {int(k): v for k, v in (seen or {}).items()}
        return self._many(approval_ids, lambda i: self.approve(i, actor, seen=seen.get(i)))

    def reject_many(self, approval_ids, actor: str, reason: str) -> list[dict]:
        """Reject each item on its own with the same reason (required), as ``reject`` does one."""
        if not (reason or "").strip():
            raise InvalidRequest("a reason is required to reject (--reason)")
        return self._many(approval_ids, lambda i: self.reject(i, actor, reason))

    @staticmethod
    def _many(approval_ids, one) -> list[dict]:
        out = []
        for i in dict.fromkeys(int(x) for x in approval_ids):
            try:
                a = one(i)
                out.append({"id": i, "ok": True, "status": a.status, "error": None})
            except InvalidRequest as e:
                out.append({"id": i, "ok": False, "status": None, "error": str(e)})
        return out

    def _get(self, s, approval_id: int) -> tuple[Approval, OutboxItem | None]:
        appr = s.get(Approval, approval_id)
        if appr is None:
            raise InvalidRequest(f"approval {approval_id} does not exist")
        row = s.get(OutboxItem, appr.outbox_id) if appr.outbox_id is not None else None
        return appr, row

    def _four_eyes(self, appr: Approval, actor: str) -> None:
        who = identity(actor)
        if appr.requested_by and who == identity(appr.requested_by):
            raise InvalidRequest(f"four-eyes: {actor} requested approval {appr.id} and cannot approve it")
        if appr.edited_by and who == identity(appr.edited_by):
            raise InvalidRequest(f"four-eyes: {actor} edited approval {appr.id} and cannot approve it")

    def users_path(self) -> Path:
        from engine.adapters.users import users_file

        return users_file(config_dir=self.app.settings.config_dir)  # the console's file, in this engine's config

    def _check_roster(self, appr: Approval, actor: str, verb: str) -> None:
        """Fail closed: only a console user in the roster's group for this action type (or an admin, or the
        named primary/backup) decides. Roles are read from the users file at this moment."""
        from engine.adapters.users import roles_of

        who = identity(actor)
        if not who:
            raise InvalidRequest("an actor is required (--actor or $ALPHA_ACTOR)")
        kind = appr.action_type or "tier3_email"
        entry = self.roster.entry(kind)
        if entry is None:
            raise InvalidRequest(f"approval {appr.id}: action type {kind!r} is not in the roster "
                                 f"(config/approvers.json); nobody may {verb} it")
        path = self.users_path()
        try:
            roles = roles_of(who, path)
        except AlphaError as e:
            raise InvalidRequest(f"cannot check who may {verb} approval {appr.id}: {e}") from None
        if not may_decide(entry, who, roles):
            have = ", ".join(roles) if roles else f"no role (not a user in {path})"
            raise InvalidRequest(
                f"{who} may not {verb} approval {appr.id}: {kind} needs the group '{entry.group}' (or admin, or "
                f"the named {entry.primary}/{entry.backup}) per config/approvers.json; {who} has {have}. "
                f"Add them with `alpha users add {who} ... --role {entry.group}`.")

    @staticmethod
    def _same_as_seen(appr: Approval, row: OutboxItem | None, seen: str | None, verb: str) -> None:
        if seen is not None and seen != message_version(appr, row):
            who = f" by {appr.edited_by}" if appr.edited_by else ""
            raise InvalidRequest(f"approval {appr.id} changed since you saw it (edited{who} "
                                 f"{_iso(appr.edited_at) or 'meanwhile'}): read it again, then {verb} it")

    def approve(self, approval_id: int, actor: str, seen: str | None = None) -> Approval:
        """Approve a pending item. Four-eyes and the roster are checked; a send the gate would refuse as it stands
        (its message's findings, the recipient suppressed, the lead stopped: ``findings`` in the queue) is
        refused at once, naming each reason: edit it or reject it. With ``seen`` (the ``version`` the person
        read) an item edited since is refused too."""
        now = self.app.clock()
        with self.app.store.write() as s:
            appr, row = self._get(s, approval_id)
            if appr.status != "pending":
                raise InvalidRequest(f"approval {approval_id} is {appr.status}, not pending")
            self._four_eyes(appr, actor)
            self._check_roster(appr, actor, "approve")
            self._same_as_seen(appr, row, seen, "approve")
            if appr.kind != "hot_lead":
                blocking = self._findings(row, s, now)
                if blocking:
                    named = "; ".join(f"{f['code']} ({f['detail']})" if f.get("detail") else str(f["code"])
                                      for f in blocking)
                    raise InvalidRequest(f"approval {approval_id} not approved: the gate would refuse this send "
                                         f"as it stands: {named}. Edit the message or reject it.")
            appr.status, appr.decided_by, appr.decided_at = "approved", actor, now
            s.add(appr)
            if appr.kind == "hot_lead":
                audit.append(s, event="approval.hot_lead_taken", actor=actor, now=now, ref=str(appr.id),
                             status="approved", data={"lead_id": appr.lead_id})
            else:
                if row is None:  # a send's approval holds its outbox row's id (a foreign key): never happens
                    raise InvalidRequest(f"approval {approval_id} is a send without its outbox row")
                audit.append(s, event="approval.approved", actor=actor, now=now, ref=str(appr.id),
                             outbox_id=row.id, status="approved",
                             data={"action_type": appr.action_type, "to": row.to_email})
            return appr

    def reject(self, approval_id: int, actor: str, reason: str) -> Approval:
        if not (reason or "").strip():
            raise InvalidRequest("a reason is required to reject (--reason)")
        now = self.app.clock()
        with self.app.store.write() as s:
            appr, row = self._get(s, approval_id)
            if appr.status != "pending":
                raise InvalidRequest(f"approval {approval_id} is {appr.status}, not pending")
            self._check_roster(appr, actor, "reject")
            appr.status, appr.decided_by, appr.decided_at, appr.reason = "rejected", actor, now, reason
            s.add(appr)
            if row is None:  # a hot lead dismissed
                audit.append(s, event="approval.hot_lead_dismissed", actor=actor, now=now, ref=str(appr.id),
                             status="rejected", data={"lead_id": appr.lead_id, "reason": reason})
                return appr
            r = Reason(Code.APPROVAL_REJECTED, f"rejected by {actor}: {reason}")
            row.status, row.reasons, row.updated_at = "denied", [r.to_dict()], now
            s.add(row)
            audit.append(s, event="approval.rejected", actor=actor, now=now, ref=str(appr.id), outbox_id=row.id,
                         status="rejected", reasons=[r.code.value], data={"reason": reason})
            return appr

    def edit(self, approval_id: int, actor: str, subject: str | None = None, html: str | None = None,
             text: str | None = None, seen: str | None = None) -> Approval:
        """Change the message before approval; the editor may not approve it (four-eyes). With ``seen`` (the
        ``version`` the edit started from) an edit of a message someone else changed since is refused."""
        now = self.app.clock()
        with self.app.store.write() as s:
            appr, row = self._get(s, approval_id)
            if appr.status != "pending":
                raise InvalidRequest(f"approval {approval_id} is {appr.status}, not pending")
            if row is None:
                raise InvalidRequest(f"approval {approval_id} is a hot-lead escalation: there is no message to edit")
            self._check_roster(appr, actor, "edit")
            self._same_as_seen(appr, row, seen, "edit")
            before = {"subject": row.subject}
            record = dict(row.record or {})
            for k, v in (("subject", subject), ("html", html), ("text", text)):
                if v is not None:
                    record[k] = v
            # the gate checks the stored row again when it executes: an edit it would refuse is refused now
            findings = recheck_message(self.app, record, s=s)
            if findings:
                raise EditRefused(f"edit of approval {approval_id}", [r.to_dict() for r in findings])
            for k in ("subject", "html", "text"):
                if k in record:
                    setattr(row, k, record[k])
            row.record, row.updated_at = record, now
            appr.edited_by, appr.edited_at = actor, now
            s.add(row)
            s.add(appr)
            audit.append(s, event="approval.edited", actor=actor, now=now, ref=str(appr.id), outbox_id=row.id,
                         status="pending", data={"before": before, "after": {"subject": row.subject}})
            return appr

    def sweep(self) -> dict:
        """Escalate SLA breaches to the backup (alert; the item stays pending) and expire what is past expiry."""
        now = self.app.clock()
        escalated, expired, alerts = [], [], []
        with self.app.store.write() as s:
            rows = s.exec(select(Approval).where(Approval.status == "pending")).all()
            for appr in rows:
                e = self.roster.entry(appr.action_type or "tier3_email")
                if appr.expires_at is not None and now >= appr.expires_at:
                    appr.status, appr.decided_at = "expired", now
                    r = Reason(Code.APPROVAL_EXPIRED, f"no decision by {appr.expires_at:%Y-%m-%d %H:%M} UTC")
                    if appr.outbox_id is not None:
                        row = s.get(OutboxItem, appr.outbox_id)
                        if row is not None:  # always (a foreign key)
                            row.status, row.reasons, row.updated_at = "denied", [r.to_dict()], now
                            s.add(row)
                    s.add(appr)
                    audit.append(s, event="approval.expired", actor="approvals", now=now, ref=str(appr.id),
                                 outbox_id=appr.outbox_id, status="expired", reasons=[r.code.value])
                    expired.append(appr.id)
                elif appr.sla_due_at is not None and now >= appr.sla_due_at and appr.escalated_at is None and e:
                    appr.escalated_at, appr.escalated_to = now, e.backup
                    s.add(appr)
                    audit.append(s, event="approval.escalated", actor="approvals", now=now, ref=str(appr.id),
                                 outbox_id=appr.outbox_id, status="pending",
                                 data={"to": e.backup, "contacts": e.escalation_contacts})
                    escalated.append(appr.id)
                    alerts.append({"kind": "approval_sla_breached",
                                   "title": f"{'Hot lead' if appr.kind == 'hot_lead' else 'Approval'} {appr.id} "
                                            f"({appr.action_type}) breached its SLA",
                                   "text": f"Escalated to {e.backup}; it stays pending until someone decides.",
                                   "fields": {"backup": e.backup, "contacts": ", ".join(e.escalation_contacts)}})
        for a in alerts:
            self.app.alert_dict(a)
        return {"escalated": escalated, "expired": expired}

    def process(self, limit: int = 100) -> dict:
        """One pass of the execution queue: sweep, then run every due item through the gateway again."""
        swept = self.sweep()
        results = self.app.gateway.process_due(limit)
        return {**swept, "results": [r.to_dict() for r in results]}

    def run_forever(self, interval: float = 5.0, stop=lambda: False, max_backoff: float = 30.0) -> None:
        """Process the queue until ``stop()``. A database that goes away (a restart, a failover, a cut
        connection) does not end the worker: the pass is abandoned and tried again after a backoff (0.5 s,
        doubling up to ``max_backoff``). Nothing in flight is lost or repeated: a claim runs out with its
        lease, and a send whose outcome could not be written stays ``sending`` for reconciliation."""
        backoff = 0.0
        while not stop():
            try:
                out = self.process()
            except (OperationalError, InterfaceError) as e:
                backoff = min(max_backoff, backoff * 2 if backoff else 0.5)
                first = (str(getattr(e, "orig", None) or e).strip().splitlines() or [type(e).__name__])[0]
                log.warning("database unavailable (%s); retrying in %.1f s", first, backoff)
                deadline = time.monotonic() + backoff
                while not stop() and (left := deadline - time.monotonic()) > 0:
                    time.sleep(min(0.2, left))  # a SIGTERM is obeyed within 0.2 s
                continue
            backoff = 0.0
            if not out["results"]:
                time.sleep(interval)


def _int(v) -> int | None:
    """Outbox rows carry the caller's lead id as text; ours are integers."""
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def _lead_id(a: Approval, o: OutboxItem | None) -> int | None:
    return a.lead_id if a.lead_id is not None else _int(o.lead_id if o else None)


def _iso(dt) -> str | None:
    from engine.core.clock import iso

    return iso(dt) if dt is not None else None


def queue_row(a: Approval, o: OutboxItem | None, lead: Lead | None, now: datetime) -> dict:
    from engine.core.clock import iso

    left = (a.sla_due_at - now).total_seconds() / 60 if a.sla_due_at else None
    return {"id": a.id, "kind": a.kind, "status": a.status, "action_type": a.action_type, "risk": a.risk,
            "requested_by": a.requested_by, "requested_at": iso(a.requested_at),
            "outbox_id": o.id if o else None, "to": o.to_email if o else None,
            "from": o.from_email if o else None, "subject": o.subject if o else None,
            "html": o.html if o else None, "text": o.text if o else None,
            "scheduled_for": iso(o.not_before) if o else None,
            "lead_id": lead.id if lead else a.lead_id, "lead_email": lead.email if lead else None,
            "company": lead.company if lead else None, "lead_title": lead.title if lead else None,
            "timezone": lead.timezone if lead else None, "summary": a.summary,
            "sla_due_at": iso(a.sla_due_at), "sla_minutes_left": None if left is None else round(left, 1),
            "breached": left is not None and left < 0, "escalated_to": a.escalated_to,
            "expires_at": iso(a.expires_at), "edited_by": a.edited_by, "decided_by": a.decided_by,
            "reason": a.reason, "decided_at": iso(a.decided_at),
            "tier": (o.tier if o is not None and o.tier is not None else (lead.tier if lead else None)),
            "score": lead.score if lead else None, "country": lead.country if lead else None,
            "reply_class": lead.reply_class if lead else None,
            "reasons": [str(r.get("code")) for r in ((o.reasons or []) if o else []) if isinstance(r, dict)]}
