"""The approval queue: who approves what (config/approvers.json), SLAs and expiry, four-eyes, execution.

The gateway creates a request whenever approval is required. A person approves, rejects (with a reason) or
edits; nobody approves an item they requested or edited. An SLA breach escalates to the backup and the item
stays pending; past its expiry it becomes ``expired`` (never approved, never counted as a human rejection).
Approved items execute through ``Gateway.resume``, which re-runs every check at that moment: a send that is no
longer safe is deferred or denied, not forced through.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from sqlmodel import select

from . import audit
from .actions import Action
from .config import WorkingHours, _check_tz, _Strict, _validate
from .errors import ConfigError, InvalidRequest
from .models import Approval, OutboxItem
from .reasons import Code, Reason

ACTION_TYPES = ("tier1_email", "tier2_email", "tier3_email", "bulk_campaign", "hot_lead", "crm_write")


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
    action_types: dict[Literal["tier1_email", "tier2_email", "tier3_email", "bulk_campaign", "hot_lead",
                               "crm_write"], RosterEntry]


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
            if e.expire_minutes <= e.sla_minutes:
                problems.append(f"{path}: key 'action_types.{name}.expire_minutes' = {e.expire_minutes}: must be "
                                f"longer than sla_minutes ({e.sla_minutes})")
    if problems:
        raise ConfigError(problems)
    return roster


def action_type(action: Action, high_risk: bool) -> str:
    if action.action == "send_campaign_email":
        return "bulk_campaign"
    if action.action.startswith("crm_"):
        return "crm_write"
    return {1: "tier1_email", 2: "tier2_email"}.get(action.tier, "tier3_email")


@dataclass
class ApprovalService:
    app: object

    @property
    def roster(self) -> Roster:
        if getattr(self, "_roster", None) is None:
            self._roster = load_roster(self.app.settings.config_dir)
        return self._roster

    # called by the gateway, inside its transaction, for every new request
    def new_fields(self, action: Action, high_risk: bool, now: datetime) -> dict:
        kind = action_type(action, high_risk)
        e = self.roster.action_types[kind]
        return {"action_type": kind, "sla_due_at": now + timedelta(minutes=e.sla_minutes),
                "expires_at": now + timedelta(minutes=e.expire_minutes)}

    def pending(self, limit: int = 200) -> list[tuple[Approval, OutboxItem]]:
        with self.app.store.read() as s:
            rows = s.exec(select(Approval, OutboxItem).join(OutboxItem, OutboxItem.id == Approval.outbox_id)
                          .where(Approval.status == "pending").order_by(Approval.sla_due_at, Approval.id)
                          .limit(limit)).all()
        return list(rows)

    def _get(self, s, approval_id: int) -> tuple[Approval, OutboxItem]:
        appr = s.get(Approval, approval_id)
        if appr is None:
            raise InvalidRequest(f"approval {approval_id} does not exist")
        row = s.get(OutboxItem, appr.outbox_id)
        return appr, row

    def _four_eyes(self, appr: Approval, actor: str) -> None:
        if not actor.strip():
            raise InvalidRequest("an actor is required (--actor)")
        if actor == appr.requested_by:
            raise InvalidRequest(f"four-eyes: {actor} requested approval {appr.id} and cannot approve it")
        if actor == appr.edited_by:
            raise InvalidRequest(f"four-eyes: {actor} edited approval {appr.id} and cannot approve it")

    def approve(self, approval_id: int, actor: str) -> Approval:
        now = self.app.clock()
        with self.app.store.write() as s:
            appr, row = self._get(s, approval_id)
            if appr.status != "pending":
                raise InvalidRequest(f"approval {approval_id} is {appr.status}, not pending")
            self._four_eyes(appr, actor)
            appr.status, appr.decided_by, appr.decided_at = "approved", actor, now
            s.add(appr)
            audit.append(s, event="approval.approved", actor=actor, now=now, ref=str(appr.id), outbox_id=row.id,
                         status="approved", data={"action_type": appr.action_type, "to": row.to_email})
            return appr

    def reject(self, approval_id: int, actor: str, reason: str) -> Approval:
        if not (reason or "").strip():
            raise InvalidRequest("a reason is required to reject (--reason)")
        now = self.app.clock()
        with self.app.store.write() as s:
            appr, row = self._get(s, approval_id)
            if appr.status != "pending":
                raise InvalidRequest(f"approval {approval_id} is {appr.status}, not pending")
            appr.status, appr.decided_by, appr.decided_at, appr.reason = "rejected", actor, now, reason
            r = Reason(Code.APPROVAL_REJECTED, f"rejected by {actor}: {reason}")
            row.status, row.reasons, row.updated_at = "denied", [r.to_dict()], now
            s.add(appr)
            s.add(row)
            audit.append(s, event="approval.rejected", actor=actor, now=now, ref=str(appr.id), outbox_id=row.id,
                         status="rejected", reasons=[r.code.value], data={"reason": reason})
            return appr

    def edit(self, approval_id: int, actor: str, subject: str | None = None, html: str | None = None,
             text: str | None = None) -> Approval:
        """Change the message before approval; the editor may not approve it (four-eyes)."""
        now = self.app.clock()
        with self.app.store.write() as s:
            appr, row = self._get(s, approval_id)
            if appr.status != "pending":
                raise InvalidRequest(f"approval {approval_id} is {appr.status}, not pending")
            before = {"subject": row.subject}
            record = dict(row.record or {})
            for k, v in (("subject", subject), ("html", html), ("text", text)):
                if v is not None:
                    setattr(row, k, v)
                    record[k] = v
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
                e = self.roster.action_types.get(appr.action_type or "tier3_email")
                if appr.expires_at is not None and now >= appr.expires_at:
                    appr.status, appr.decided_at = "expired", now
                    row = s.get(OutboxItem, appr.outbox_id)
                    r = Reason(Code.APPROVAL_EXPIRED, f"no decision by {appr.expires_at:%Y-%m-%d %H:%M} UTC")
                    row.status, row.reasons, row.updated_at = "denied", [r.to_dict()], now
                    s.add(row)
                    s.add(appr)
                    audit.append(s, event="approval.expired", actor="approvals", now=now, ref=str(appr.id),
                                 outbox_id=row.id, status="expired", reasons=[r.code.value])
                    expired.append(appr.id)
                elif appr.sla_due_at is not None and now >= appr.sla_due_at and appr.escalated_at is None and e:
                    appr.escalated_at, appr.escalated_to = now, e.backup
                    s.add(appr)
                    audit.append(s, event="approval.escalated", actor="approvals", now=now, ref=str(appr.id),
                                 outbox_id=appr.outbox_id, status="pending",
                                 data={"to": e.backup, "contacts": e.escalation_contacts})
                    escalated.append(appr.id)
                    alerts.append({"kind": "approval_sla_breached",
                                   "title": f"Approval {appr.id} ({appr.action_type}) breached its SLA",
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

    def run_forever(self, interval: float = 5.0, stop=lambda: False) -> None:
        while not stop():
            out = self.process()
            if not out["results"]:
                time.sleep(interval)
