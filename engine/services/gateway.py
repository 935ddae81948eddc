"""The execution gateway: the one fail-closed choke point for every outbound action.

Order: kill switch -> maintenance -> phase -> permissions -> idempotency -> guardrails -> approval ->
circuit breaker -> execute -> audit.

The decision (checks, counters, outbox row and audit row) commits in ONE transaction under the gate
lock, so concurrent workers on several processes or hosts cannot overshoot a limit, and nothing is
counted in process memory. The outbox row is committed as ``sending`` *before* the executor is called;
a crash after the call and before the result commits leaves it ``sending``, which is never retried
automatically and is listed for reconciliation.
"""
from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, or_, text, update
from sqlmodel import Session, select

from engine.adapters import audit
from engine.rules import guardrails
from engine.core.actions import Action, InvalidAction, parse_action
from engine.adapters.breakers import Breakers
from engine.core.clock import Clock, iso
from engine.core.config import Settings
from engine.services.control import EnvKillSwitch, kill_state, live_sending_allowed
from engine.adapters.db import Store, insert_many
from engine.adapters.executors import AmbiguousFailure, DefiniteFailure, Executor, Message
from engine.rules.geo import lead_timezone
from engine.rules.guardrails.hours import check_working_hours
from engine.rules.guardrails.recipients import check_exclusions
from engine.core.identity import address_domain, canonical_address
from engine.adapters.models import Approval, ControlState, DomainHealth, Lead, OutboxItem, Suppression
from engine.queries.outbox import (
    domain_hour_times,
    global_usage,
    has_prior_send,
    load_usage,
    mailbox_last,
    prior_send_keys,
)
from engine.services.permissions import Permissions, check_permission
from engine.core.reasons import Code, Kind, Reason
from engine.rules.unsubscribe import one_click_headers

log = logging.getLogger("alpha.gateway")

STATUSES = ("sent", "shadowed", "pending_approval", "deferred", "denied", "duplicate", "reconcile")

PHASE_HOLD = timedelta(minutes=15)  # a queued send held by a phase step-down is looked at again this often
STOPPED_STATUSES = ("replied", "hot", "unsubscribed", "bounced")


@dataclass(frozen=True)
class Facts:
    """What the gateway decides on about the recipient, derived from what it stores (the lead record, the outbox
    history, the suppression list) - never taken from the caller. A caller's claim may only narrow a decision:
    a riskier tier, an extra time zone that must also be in working hours, a first touch; a claim that disagrees
    with the stored facts is ignored for widening and listed in ``ignored`` (audited with the decision)."""

    to_key: str
    domain: str
    lead: Any  # the stored Lead, or None
    tier: int | None
    timezones: tuple[str, ...]
    timezone_source: str
    first_touch: bool
    ignored: tuple[dict, ...] = ()


@dataclass
class Result:
    idempotency_key: str | None
    status: str
    reasons: list[Reason] = field(default_factory=list)
    not_before: datetime | None = None
    outbox_id: int | None = None
    extra: dict = field(default_factory=dict)

    @property
    def codes(self) -> list[str]:
        return [r.code.value for r in self.reasons]

    def to_dict(self, details: bool = False) -> dict:
        d: dict[str, Any] = {"idempotency_key": self.idempotency_key, "status": self.status, "reasons": self.codes}
        if self.not_before is not None:
            d["not_before"] = iso(self.not_before)
        if self.outbox_id is not None:
            d["outbox_id"] = self.outbox_id
        if details:
            d["details"] = [r.to_dict() for r in self.reasons]
            d.update(self.extra)
        return d


def needs_approval(phase: str, high_risk: bool) -> bool:
    """assisted: every send needs a human; autonomous: only high-risk actions."""
    if phase == "assisted":
        return True
    if phase == "autonomous":
        return high_risk
    return False


BATCH = 200  # decisions per locked transaction in submit_many: bounds how long other processes wait for the lock


def _lead_pk(lead_id: str | None) -> int | None:
    """A claimed lead id as a primary key, or None when it cannot be one."""
    if lead_id is not None and lead_id.isascii() and lead_id.isdigit() and len(lead_id) < 19:
        return int(lead_id)
    return None


class _Reads:
    """What a decision reads inside the gate lock, straight from the session (one ``submit``)."""

    def __init__(self, gw: "Gateway", s: Session, now: datetime):
        self.gw, self.s, self.now = gw, s, now

    def control(self) -> ControlState:
        return self.s.get(ControlState, 1)

    def outbox_row(self, key: str) -> OutboxItem | None:
        return self.s.exec(select(OutboxItem).where(OutboxItem.idempotency_key == key)).first()

    def suppression(self, to_key: str) -> Suppression | None:
        """The suppression of any spelling of the recipient (by canonical key)."""
        return self.s.exec(select(Suppression).where(Suppression.address_key == to_key).limit(1)).first()

    def lead(self, to_key: str, lead_id: str | None) -> Lead | None:
        """The stored lead of this recipient: the claimed lead_id only when it is this recipient's lead."""
        pk = _lead_pk(lead_id)
        if pk is not None:
            lead = self.s.get(Lead, pk)
            if lead is not None and lead.email_key == to_key:
                return lead
        return self.s.exec(select(Lead).where(Lead.email_key == to_key).order_by(Lead.id).limit(1)).first()

    def prior_send(self, to_key: str) -> bool:
        return has_prior_send(self.s, to_key)

    def domain(self, domain: str) -> DomainHealth | None:
        return self.s.get(DomainHealth, domain)

    def usage(self, action: Action, warmup_phase: int, domain: str) -> guardrails.Usage:
        return load_usage(self.s, action, self.gw.settings, self.now, warmup_phase, domain)

    def agent_rate(self, agent: str) -> list[Reason]:
        return self.gw.permissions.rate_reasons(self.s, agent, self.now)

    def new_row(self, **values) -> OutboxItem:
        return OutboxItem(**values)

    def add_row(self, row: OutboxItem) -> None:
        """Add a new or changed outbox row; it has its id afterwards."""
        self.s.add(row)
        self.s.flush()

    def flush_rows(self) -> None:
        self.s.flush()

    def set_approval(self, row: OutboxItem, approval_id: int) -> None:
        row.approval_id = approval_id
        self.s.add(row)

    def finish(self) -> None:
        """Write what the decisions left pending (nothing here: each was written as it was made)."""


_OUTBOX_DEFAULTS = {c.key: (c.default.arg if c.default is not None and c.default.is_scalar else None)
                    for c in OutboxItem.__table__.columns}


class _NewRow:
    """A new outbox row of a batch before its bulk insert: the columns as attributes, the model's defaults."""

    def __init__(self, values: dict):
        self.__dict__.update(_OUTBOX_DEFAULTS)
        self.__dict__.update(values)

    def values(self) -> dict:
        return {k: self.__dict__[k] for k in _OUTBOX_DEFAULTS}


class _BatchReads(_Reads):
    """The same reads for a batch of decisions in one locked transaction, each done once, in bulk.

    Exact because nothing a decision of the batch writes changes them: a batch ends at the first decision that
    reserves quota or counts against an agent's rate (it is executed before the next one is decided), shadowed,
    denied, deferred and pending rows count against no limit, and every other writer waits for the gate lock.
    Rows created in the batch are seen by the idempotency check of the decisions after them."""

    def __init__(self, gw: "Gateway", s: Session, now: datetime, actions: list[Action]):
        super().__init__(gw, s, now)
        keys = sorted({a.idempotency_key for a in actions})
        to_keys = sorted({canonical_address(a.to) for a in actions if a.to})
        senders = sorted({a.sender_domain for a in actions if a.sender_domain})
        self.rows = {r.idempotency_key: r for r in self._in(OutboxItem, OutboxItem.idempotency_key, keys)}
        self.sups: dict[str, Suppression] = {}
        for r in sorted(self._in(Suppression, Suppression.address_key, to_keys), key=lambda r: r.email, reverse=True):
            self.sups[r.address_key] = r
        self.leads: dict[str, Lead] = {}
        for lead in sorted(self._in(Lead, Lead.email_key, to_keys), key=lambda r: r.id, reverse=True):
            self.leads[lead.email_key] = lead  # the lowest id wins, as in _Reads.lead
        claimed = sorted({int(a.lead_id) for a in actions if _lead_pk(a.lead_id) is not None})
        self.leads_by_id = {lead.id: lead for lead in self._in(Lead, Lead.id, claimed)}
        self.priors = prior_send_keys(s, to_keys)
        self.domains = {r.domain: r for r in self._in(DomainHealth, DomainHealth.domain, senders)}
        self._global = None
        self._dom_times: dict[str, tuple] | None = None
        self._domains_wanted = sorted({address_domain(a.to) for a in actions if a.to} - {""})
        self._mailbox: dict[str | None, datetime | None] = {}
        self._rates: dict[str, list[Reason]] = {}
        self._top: int | None = None
        self._control: ControlState | None = None
        self._pending: list[_NewRow] = []

    def _in(self, model, col, values: list) -> list:
        out = []
        for i in range(0, len(values), 500):
            out += self.s.exec(select(model).where(col.in_(values[i:i + 500]))).all()
        return out

    def control(self) -> ControlState:
        if self._control is None:  # held here: the session's identity map keeps only weak references
            self._control = super().control()
        return self._control

    def outbox_row(self, key: str) -> OutboxItem | None:
        return self.rows.get(key)

    def suppression(self, to_key: str) -> Suppression | None:
        return self.sups.get(to_key)

    def lead(self, to_key: str, lead_id: str | None) -> Lead | None:
        pk = _lead_pk(lead_id)
        if pk is not None:
            lead = self.leads_by_id.get(pk)
            if lead is not None and lead.email_key == to_key:
                return lead
        return self.leads.get(to_key)

    def prior_send(self, to_key: str) -> bool:
        return to_key in self.priors

    def domain(self, domain: str) -> DomainHealth | None:
        return self.domains.get(domain)

    def usage(self, action: Action, warmup_phase: int, domain: str) -> guardrails.Usage:
        settings, s = self.gw.settings, self.s
        if self._global is None:
            self._global = global_usage(s, settings, self.now)
            self._dom_times = domain_hour_times(s, self._domains_wanted, settings, self.now)
        if action.from_ not in self._mailbox:
            self._mailbox[action.from_] = mailbox_last(s, action.from_)
        month, day, hour = self._global
        return guardrails.Usage(month_count=month, day_count=day, hour_times=hour,
                                domain_hour_times=self._dom_times.get(domain, ()),
                                mailbox_last=self._mailbox[action.from_], warmup_phase=warmup_phase)

    def agent_rate(self, agent: str) -> list[Reason]:
        if agent not in self._rates:
            self._rates[agent] = super().agent_rate(agent)
        return self._rates[agent]

    def new_row(self, **values) -> "_NewRow":
        return _NewRow(values)

    def add_row(self, row) -> None:
        """No flush per row: a new row takes the id the database would give it and waits, with the batch's other
        new rows, for one bulk insert (``finish``); a stored row changes through the session."""
        if isinstance(row, _NewRow):
            if row.id is None:
                row.id = self._next_id()
                self._pending.append(row)
        else:
            self.s.add(row)
        self.rows[row.idempotency_key] = row

    def flush_rows(self) -> None:
        """Insert the new rows now (a row that refers to them follows); later decisions change them as stored
        rows."""
        pending, self._pending = self._pending, []
        insert_many(self.s.connection(), OutboxItem.__table__, [r.values() for r in pending])
        for r in pending:
            self.rows[r.idempotency_key] = self.s.get(OutboxItem, r.id)
        self.s.flush()

    def set_approval(self, row, approval_id: int) -> None:
        if isinstance(row, _NewRow):  # inserted by flush_rows: its stored copy takes the approval
            row.approval_id = approval_id
            row = self.rows[row.idempotency_key]
        row.approval_id = approval_id
        self.s.add(row)

    def finish(self) -> None:
        pending, self._pending = self._pending, []
        insert_many(self.s.connection(), OutboxItem.__table__, [r.values() for r in pending])

    def _next_id(self) -> int:
        """The id the row would have had from the database: one nextval on PostgreSQL (a block would leave gaps
        where a decision creates no row), the next rowid on SQLite, where BEGIN IMMEDIATE makes this
        transaction the only writer."""
        conn = self.s.connection()
        if self.gw.store.dialect == "postgresql":
            return conn.execute(text("SELECT nextval(pg_get_serial_sequence('outbox', 'id'))")).scalar()
        if self._top is None:
            self._top = conn.execute(text("SELECT coalesce(max(id), 0) FROM outbox")).scalar()
        self._top += 1
        return self._top


class Gateway:
    def __init__(self, store: Store, settings: Settings, clock: Clock, executors: dict[str, Executor],
                 env_kill: EnvKillSwitch, permissions: Permissions, breakers: Breakers, unsubscribe_secret: bytes):
        self.store, self.settings, self.clock = store, settings, clock
        self.executors = executors
        self.env_kill = env_kill
        self.permissions = permissions
        self.breakers = breakers
        self.secret = unsubscribe_secret
        # who approves what and by when (set by the App from config/approvers.json)
        self.approval_fields = lambda action, high_risk, now: {}

    # ------------------------------------------------------------------------------------ public API

    def submit(self, raw: Any, *, shadow: bool = False) -> Result:
        """Decide on one action (a dict as submitted) and, if allowed, execute it.

        ``shadow=True`` runs every check but lets nothing leave, whatever the phase (shadow runs, canaries)."""
        now = self.clock()
        try:
            action = parse_action(raw)
        except InvalidAction as e:
            return self._invalid(e, raw, now)
        static, headers = self._precheck(action)
        with self.store.write() as s:
            result, execute = self._decide(_Reads(self, s, now), action, static, headers, force_shadow=shadow)
        self.breakers.flush_transitions()
        if execute:
            return self._execute(result)
        return result

    def submit_many(self, raws: list[Any], *, shadow: bool = False, batch: int = BATCH) -> list[Result]:
        """Decide on many actions, in order, with exactly the results, outbox rows and audit rows of one ``submit``
        after the other, but up to ``batch`` decisions per locked transaction with their state read in bulk.

        A decision that lets an action leave ends its transaction: the action is executed before the next one is
        decided, so limits, breakers and the kill switch see it as they would with ``submit``. A database error
        rolls back the decisions of the unfinished transaction (none of them took effect) and raises."""
        items: list[tuple] = []
        for raw in raws:
            try:
                action = parse_action(raw)
            except InvalidAction as e:
                items.append((None, e, None, None))
                continue
            items.append((action, None, *self._precheck(action)))
        results: list[Result] = []
        while len(results) < len(items):
            chunk = items[len(results):len(results) + max(1, batch)]
            execute = False
            with self.store.write() as s, audit.buffered(s):
                reads = _BatchReads(self, s, self.clock(), [a for a, *_ in chunk if a is not None])
                for action, invalid, static, headers in chunk:
                    if action is None:
                        results.append(self._invalid_in(s, invalid, reads.now))
                        continue
                    result, execute = self._decide(reads, action, static, headers, force_shadow=shadow)
                    results.append(result)
                    if execute:
                        break
                reads.finish()
            self.breakers.flush_transitions()
            if execute:
                results[-1] = self._execute(results[-1])
        return results

    def resume(self, outbox_id: int) -> Result:
        """Re-run every check on a waiting row (deferred and due, or approved) and execute it if allowed."""
        with self.store.read() as s:
            row = s.get(OutboxItem, outbox_id)
        if row is None:
            return Result(None, "denied", [Reason(Code.INVALID_ACTION, f"outbox row {outbox_id} does not exist")])
        action = parse_action(row.record)
        static, headers = self._precheck(action)
        now = self.clock()
        with self.store.write() as s:
            result, execute = self._decide(_Reads(self, s, now), action, static, headers, resume_id=outbox_id)
        self.breakers.flush_transitions()
        if execute:
            return self._execute(result)
        return result

    def due(self, limit: int = 100, worker: str | None = None, lease_seconds: int = 120,
            exclude: set[int] | None = None) -> list[int]:
        """Claim up to ``limit`` waiting rows that may proceed now (deferred past not_before, or pending with an
        approval granted) for ``worker``, under a lease. On PostgreSQL concurrent workers skip each other's
        rows (FOR UPDATE SKIP LOCKED); on SQLite the claim transaction is serialized. A claim is only a way to
        share work: ``resume`` re-checks the row's state under the gate lock, so a lost lease never sends twice.
        """
        now = self.clock()
        worker = worker or f"pid-{os.getpid()}"
        # a worker may re-take its own claims: after a database outage it could not release them, and they must
        # not wait out the lease (``exclude`` keeps a pass from taking a row twice)
        free = or_(OutboxItem.claimed_until.is_(None), OutboxItem.claimed_until < now, OutboxItem.claimed_by == worker)
        if exclude:
            free = free & OutboxItem.id.not_in(sorted(exclude))
        # under a cap the best go first: the highest tier (1), then the longest waiting; unscored rows last
        tier = case((OutboxItem.tier.is_(None), 99), else_=OutboxItem.tier)
        with self.store.write_plain() as s:
            approved = s.exec(select(OutboxItem.id).join(Approval, Approval.id == OutboxItem.approval_id).where(
                OutboxItem.status == "pending_approval", Approval.status == "approved", free)
                .order_by(tier, OutboxItem.id).limit(limit)
                .with_for_update(skip_locked=True, of=OutboxItem)).all()
            deferred = s.exec(select(OutboxItem.id).where(OutboxItem.status == "deferred",
                                                          OutboxItem.not_before <= now, free)
                              .order_by(tier, OutboxItem.not_before, OutboxItem.id)
                              .limit(max(0, limit - len(approved)))
                              .with_for_update(skip_locked=True)).all()
            ids = list(approved) + list(deferred)
            if ids:
                s.exec(update(OutboxItem).where(OutboxItem.id.in_(ids)).values(
                    claimed_by=worker, claimed_until=now + timedelta(seconds=lease_seconds)))
        return ids

    def process_due(self, limit: int = 100, batch: int = 25, worker: str | None = None) -> list[Result]:
        """Resume up to ``limit`` due rows, claiming them ``batch`` at a time."""
        worker = worker or f"pid-{os.getpid()}-{id(self)}"
        out: list[Result] = []
        seen: set[int] = set()  # each row at most once per pass (a held row must not spin)
        while len(out) < limit:
            ids = self.due(min(batch, limit - len(out)), worker, exclude=seen)
            if not ids:
                break
            seen.update(ids)
            try:
                out.extend(self.resume(i) for i in ids)
            finally:  # handled (or failed): let any worker take what is still waiting
                with self.store.write_plain() as s:
                    s.exec(update(OutboxItem).where(OutboxItem.id.in_(ids), OutboxItem.claimed_by == worker)
                           .values(claimed_by=None, claimed_until=None))
        return out

    # ------------------------------------------------------------------------------------ steps

    def _precheck(self, action: Action) -> tuple[list[Reason], dict]:
        """Pure work done before taking the lock: content and recipient syntax rules, headers."""
        spec = action.spec
        if spec is None or not spec.outbound or check_permission(action.agent, action.action,
                                                                 self.settings.permissions):
            return [], {}
        # every email is checked as a first touch here; the decision drops the deceptive-subject reason only when
        # the outbox shows an earlier send to this recipient (the caller's first_touch can never drop it)
        static = guardrails.static_reasons(action, self.settings, first_touch=True, secret=self.secret)
        headers = {}
        if spec.kind == "email" and action.to:
            headers = one_click_headers(self.settings.production.sender.unsubscribe_base_url, action.to, self.secret)
        return static, headers

    def _invalid(self, e: InvalidAction, raw: Any, now: datetime) -> Result:
        with self.store.write() as s:
            return self._invalid_in(s, e, now)

    def _invalid_in(self, s: Session, e: InvalidAction, now: datetime) -> Result:
        reason = Reason(Code.INVALID_ACTION, "; ".join(e.problems))
        agent, action = e.agent, e.action  # escaped: a NUL or a lone surrogate as submitted cannot be stored
        audit.append(s, event="gateway.decision", actor=agent or "unknown", agent=agent, action=action,
                     status="denied", ref=e.idempotency_key, reasons=[reason.code.value], now=now,
                     data={"detail": reason.detail})
        return Result(e.idempotency_key, "denied", [reason])

    def _audit_decision(self, s: Session, action: Action, status: str, reasons: list[Reason], now: datetime,
                        outbox_id: int | None = None, **data) -> None:
        audit.append(s, event="gateway.decision", actor=action.agent, agent=action.agent, action=action.action,
                     status=status, ref=action.idempotency_key, outbox_id=outbox_id,
                     reasons=[r.code.value for r in reasons], now=now,
                     data={"to": action.to, "details": [r.detail for r in reasons if r.detail], **data})

    def _decide(self, reads: _Reads, action: Action, static: list[Reason], headers: dict,
                resume_id: int | None = None, force_shadow: bool = False) -> tuple[Result, bool]:
        s, now = reads.s, reads.now
        key = action.idempotency_key
        spec = action.spec
        ctl = reads.control()

        def refuse(reason: Reason) -> tuple[Result, bool]:
            self._audit_decision(s, action, "denied", [reason], now, outbox_id=resume_id)
            return Result(key, "denied", [reason], outbox_id=resume_id), False

        # 1. kill switch (control plane or EMERGENCY_STOP), 2. maintenance
        kill = kill_state(ctl, self.env_kill)
        if kill.on:
            return refuse(Reason(Code.KILL_SWITCH, kill.reason or "kill switch is on"))
        if ctl.maintenance:
            return refuse(Reason(Code.MAINTENANCE, ctl.maintenance_reason or "maintenance mode is on"))

        # 3. permissions (recorded as violations), action map
        perm = check_permission(action.agent, action.action, self.settings.permissions)
        if perm:
            self.permissions.record_violation(s, action.agent, action.action, perm, now, ref=key)
            return Result(key, "denied", perm, outbox_id=resume_id), False
        if spec is None or not spec.outbound:
            return refuse(Reason(Code.UNMAPPED_ACTION, f"{action.action} is not an outbound action; "
                                                       "the gateway executes sends and CRM writes only"))

        # 4. phase: CRM writes blocked by config; otherwise live or shadow
        if spec.crm_write and self.settings.production.block_production_writes:
            return refuse(Reason(Code.PRODUCTION_WRITES_BLOCKED, "block_production_writes is true"))
        live = live_sending_allowed(ctl.phase, self.settings) and not force_shadow

        # 5. idempotency
        row = reads.outbox_row(key)
        # on resume the stored row is the source of truth (a human may have edited it before approving)
        if row is not None and resume_id is None and row.payload_hash != action.payload_hash:
            return refuse(Reason(Code.IDEMPOTENCY_CONFLICT,
                                 f"key {key!r} was used for another payload (outbox row {row.id})"))
        if resume_id is not None and (row is None or row.id != resume_id):
            return refuse(Reason(Code.INVALID_ACTION, f"outbox row {resume_id} does not match its key"))
        approval = s.get(Approval, row.approval_id) if row is not None and row.approval_id else None
        if row is not None:
            resumable = row.status == "deferred" or (row.status == "pending_approval" and approval is not None
                                                     and approval.status == "approved")
            if not resumable or (resume_id is None and row.status != "deferred"):
                if resume_id is None:
                    self._audit_decision(s, action, "duplicate", [], now, outbox_id=row.id, original=row.status)
                    return Result(key, "duplicate", [Reason(Code(c["code"]), c.get("detail", ""))
                                                      for c in (row.reasons or [])],
                                  row.not_before if row.status == "deferred" else None, row.id,
                                  {"original_status": row.status}), False
                # a worker raced us to it: nothing to do
                return Result(key, row.status, [], row.not_before, row.id, {"skipped": True}), False

        # 6. the facts about the recipient, derived from what we store (a caller's claim can only narrow them)
        facts = self._facts(reads, action)
        effective = dataclasses.replace(action, tier=facts.tier, timezone=facts.timezones[0])

        # 7. guardrails (state loaded inside the lock, so it is exact)
        sup = reads.suppression(facts.to_key) if facts.to_key else None
        suppressed = guardrails.Suppressed(sup.email, sup.reason, sup.source or "") if sup else None
        reasons = guardrails.check_suppression(suppressed) + list(static)
        if not facts.first_touch:
            reasons = [r for r in reasons if r.code != Code.DECEPTIVE_SUBJECT]
        reasons += self._lead_reasons(facts, action, now)
        state = guardrails.SendState()
        if spec.kind == "email":
            dom = reads.domain(action.sender_domain) if action.sender_domain else None
            state = guardrails.SendState(
                usage=reads.usage(action, ctl.warmup_phase, facts.domain),
                suppression=suppressed,
                sender_domain=guardrails.DomainState(dom.domain, dom.score, dom.cooling) if dom else None,
                first_touch=facts.first_touch,
            )
            if action.from_ not in self.settings.production.sender.from_addresses:
                reasons.append(Reason(Code.INVALID_ACTION, f"from {action.from_!r} is not a configured sending "
                                                           "mailbox (sender.from_addresses)"))
        reasons = guardrails.evaluate(effective, state, self.settings, now, message_reasons=reasons)
        if spec.kind == "email":  # every further zone (a claim that differs) must be in working hours too
            for tz in facts.timezones[1:]:
                reasons += check_working_hours(tz, self.settings.production.working_hours, now)
        reasons += reads.agent_rate(action.agent)
        reasons = list(dict.fromkeys(reasons))  # a rule reached by two facts (claimed and stored company) once
        permanent = [r for r in reasons if r.kind == Kind.PERMANENT]
        temporary = [r for r in reasons if r.kind == Kind.TEMPORARY]
        # high risk when the stored tier says so, or when the caller claims a riskier tier (never less)
        high_risk = guardrails.is_high_risk(effective, self.settings) or guardrails.is_high_risk(action, self.settings)

        execute = False
        not_before = None
        new_approval = False
        if permanent:
            status, out = "denied", permanent
        elif not live and resume_id is not None and not force_shadow:
            # a queued send whose phase was stepped down: held, resumable (never a final shadowed row); released
            # at once by a step up (ControlPlane.set_phase), else looked at again after PHASE_HOLD
            status, not_before = "deferred", now + PHASE_HOLD
            out = [Reason(Code.PHASE_HELD, f"phase {ctl.phase}: held until the phase allows live sends", not_before)]
        elif not live:
            status = "shadowed"
            why = ("shadow run" if force_shadow else f"phase {ctl.phase}" if ctl.phase in ("shadow", "parallel")
                   else "email_behavior.actually_send/shadow_mode forbid live sends")
            out = [Reason(Code.PHASE_BLOCKS_SEND, f"nothing leaves: {why}")] + temporary
        elif temporary:
            status, out = "deferred", temporary
            not_before = max(r.not_before for r in temporary if r.not_before) if any(
                r.not_before for r in temporary) else now + timedelta(minutes=1)
        elif needs_approval(ctl.phase, high_risk) and not (approval and approval.status == "approved"):
            status = "pending_approval"
            out = [Reason(Code.APPROVAL_REQUIRED, f"phase {ctl.phase}: " + ("high-risk action" if high_risk
                                                                           else "every send needs a human approval"))]
            new_approval = approval is None or approval.status != "pending"
        else:
            executor = self.executors[spec.kind]
            ok, retry_at = self.breakers.admit_in(s, executor.api, now)
            if not ok:
                status, not_before = "deferred", retry_at
                out = [Reason(Code.BREAKER_OPEN, f"{executor.api} breaker is open", retry_at)]
            else:
                status, out, execute = "sending", [], True

        if row is None:
            row = reads.new_row(idempotency_key=key, payload_hash=action.payload_hash, agent=action.agent,
                                action=action.action, channel=spec.kind, to_email=action.to,
                                to_key=facts.to_key or None, to_domain=facts.domain or None,
                                from_email=action.from_, subject=action.subject, html=action.html, text=action.text,
                                lead_id=str(facts.lead.id) if facts.lead is not None else action.lead_id,
                                tier=facts.tier,
                                record=action.to_record(), headers=headers or None, created_at=now, status=status)
        row.status = status
        row.reasons = [r.to_dict() for r in out]
        row.decision = {"phase": ctl.phase, "live": live, "high_risk": high_risk, "evaluated_at": iso(now),
                        "all_reasons": [r.to_dict() for r in reasons], "facts": self._facts_dict(facts)}
        row.not_before = not_before
        row.updated_at = now
        if execute:
            row.reserved_at = now
            row.attempts += 1
            row.provider = self.executors[spec.kind].name
            self.permissions.count(s, action.agent, action.action, now)
        reads.add_row(row)
        if new_approval:
            reads.flush_rows()  # the outbox row first: the approval refers to it
            appr = Approval(outbox_id=row.id, status="pending", risk="high" if high_risk else "normal",
                            requested_by=action.agent, requested_at=now,
                            **self.approval_fields(action, high_risk, now))
            s.add(appr)
            s.flush()
            reads.set_approval(row, appr.id)
        extra = {"claims_ignored": list(facts.ignored)} if facts.ignored else {}
        self._audit_decision(s, action, status, out, now, outbox_id=row.id, phase=ctl.phase,
                             not_before=iso(not_before), high_risk=high_risk, **extra)
        return Result(key, status, out, not_before, row.id, extra), execute

    def _facts(self, reads: _Reads, action: Action) -> Facts:
        """Derive the recipient's facts from the store; compare the caller's claims with them."""
        wh = self.settings.production.working_hours
        to_key = canonical_address(action.to) if action.to else ""
        lead = reads.lead(to_key, action.lead_id) if to_key else None
        ignored: list[dict] = []
        if action.lead_id is not None and (lead is None or str(lead.id) != action.lead_id):
            ignored.append({"claim": "lead_id", "claimed": action.lead_id,
                            "derived": lead.id if lead is not None else None})
        stored_tier = lead.tier if lead is not None else None
        tier = stored_tier if stored_tier is not None else action.tier
        if action.tier is not None and stored_tier is not None and action.tier != stored_tier:
            ignored.append({"claim": "tier", "claimed": action.tier, "derived": stored_tier,
                            "note": "decided on the stored tier (and on the claimed one where it is riskier)"})
        if lead is not None:
            zone, source = lead_timezone(lead.timezone, lead.country, wh.default_timezone)
        else:
            zone, source = wh.default_timezone, "default"
        zones = [zone]
        if action.timezone and action.timezone != zone:
            zones.append(action.timezone)  # narrows: both zones must be in working hours
            ignored.append({"claim": "timezone", "claimed": action.timezone, "derived": zone, "source": source,
                            "note": "working hours must hold in both"})
        prior = (reads.prior_send(to_key) if to_key and action.spec is not None and action.spec.kind == "email"
                 else False)
        first_touch = not prior or action.first_touch is True
        if action.first_touch is False and not prior:
            ignored.append({"claim": "first_touch", "claimed": False, "derived": True,
                            "note": "no earlier send to this recipient in the outbox"})
        return Facts(to_key, address_domain(action.to), lead, tier, tuple(zones), source, first_touch, tuple(ignored))

    def _lead_reasons(self, facts: Facts, action: Action, now: datetime) -> list[Reason]:
        """The stored lead's own state: a reply, opt-out or bounce stops every step; out of office holds them;
        its company is checked against the exclusion lists whatever the caller says it is."""
        lead = facts.lead
        if lead is None:
            return []
        out: list[Reason] = []
        if lead.sequence_stopped_at is not None or lead.status in STOPPED_STATUSES:
            out.append(Reason(Code.SEQUENCE_STOPPED, f"lead {lead.id} is {lead.status}"
                              + (f" ({lead.stop_reason})" if lead.stop_reason else "")
                              + (f" since {iso(lead.sequence_stopped_at)}" if lead.sequence_stopped_at else "")))
        paused = lead.paused_until
        if paused is not None:
            from engine.core.clock import as_utc

            paused = as_utc(paused)
            if paused > now:
                out.append(Reason(Code.LEAD_PAUSED, f"lead {lead.id} is out of office until {iso(paused)}", paused))
        ex = self.settings
        if lead.company and lead.company != action.company:
            out += check_exclusions(None, lead.company, ex.customer_exclusions, ex.competitor_exclusions)
        if lead.company_domain:
            out += check_exclusions(lead.company_domain, None, ex.customer_exclusions, ex.competitor_exclusions)
        return out

    @staticmethod
    def _facts_dict(f: Facts) -> dict:
        return {"to_key": f.to_key, "lead_id": f.lead.id if f.lead is not None else None, "tier": f.tier,
                "timezones": list(f.timezones), "timezone_source": f.timezone_source, "first_touch": f.first_touch}

    def _execute(self, decided: Result) -> Result:
        """Call the executor for a row committed as ``sending``, then commit the outcome."""
        oid = decided.outbox_id
        with self.store.read() as s:
            row = s.get(OutboxItem, oid)
            ctl = s.get(ControlState, 1)
        spec_kind = row.channel
        executor = self.executors[spec_kind]
        kill = kill_state(ctl, self.env_kill)
        if kill.on:  # flipped between our decision and the call: hold it, nothing is lost
            now = self.clock()
            reason = Reason(Code.KILL_SWITCH, kill.reason or "kill switch is on")
            with self.store.write() as s:
                row = s.get(OutboxItem, oid)
                row.status, row.reasons, row.not_before, row.updated_at = "deferred", [reason.to_dict()], now, now
                row.reserved_at = None
                s.add(row)
                audit.append(s, event="gateway.execution", actor=row.agent, agent=row.agent, action=row.action,
                             status="deferred", ref=row.idempotency_key, outbox_id=oid, reasons=[reason.code.value],
                             now=now, data={"detail": "kill switch flipped before the call; held"})
            return Result(decided.idempotency_key, "deferred", [reason], now, oid)
        msg = Message(outbox_id=oid, action=row.action, to=row.to_email, from_=row.from_email, subject=row.subject,
                      html=row.html, text=row.text, headers=row.headers or {}, record=row.record or {})
        try:
            delivery = executor.execute(msg)
            outcome, error, breaker_ok = "sent", None, True
        except AmbiguousFailure as e:
            delivery, outcome, error, breaker_ok = None, "reconcile", str(e), False
        except DefiniteFailure as e:
            delivery, error = None, str(e)
            outcome = "retry" if e.counts_against_breaker else "failed"
            breaker_ok = not e.counts_against_breaker
        except Exception as e:  # an executor bug: we cannot know whether it went out
            log.exception("executor %s raised", executor.name)
            delivery, outcome, error, breaker_ok = None, "reconcile", f"{type(e).__name__}: {e}", False
        now = self.clock()
        with self.store.write() as s:
            row = s.get(OutboxItem, oid)
            self.breakers.record_in(s, executor.api, breaker_ok, now, error)
            row.updated_at = now
            row.last_error = audit.redact(error) if error else None
            if outcome == "sent":
                row.status, row.sent_at = "sent", now
                row.provider, row.provider_message_id = delivery.provider, delivery.message_id
                result = Result(decided.idempotency_key, "sent", [], None, oid, {"provider": delivery.provider})
            elif outcome == "reconcile":
                row.status = "reconcile"
                result = Result(decided.idempotency_key, "reconcile", [], None, oid, {"error": row.last_error})
            elif outcome == "retry":  # certainly not sent; release the quota and try again later
                backoff = timedelta(seconds=min(3600, 60 * 2 ** max(0, row.attempts - 1)))
                reason = Reason(Code.PROVIDER_ERROR, row.last_error or "provider error", now + backoff)
                row.status, row.reserved_at, row.not_before = "deferred", None, now + backoff
                row.reasons = [reason.to_dict()]
                result = Result(decided.idempotency_key, "deferred", [reason], now + backoff, oid)
            else:
                reason = Reason(Code.PROVIDER_REJECTED, row.last_error or "provider rejected the request")
                row.status, row.reserved_at, row.reasons = "failed", None, [reason.to_dict()]
                result = Result(decided.idempotency_key, "denied", [reason], None, oid)
            s.add(row)
            audit.append(s, event="gateway.execution", actor=row.agent, agent=row.agent, action=row.action,
                         status=row.status, ref=row.idempotency_key, outbox_id=oid, reasons=result.codes, now=now,
                         data={"provider": row.provider, "provider_message_id": row.provider_message_id,
                               "error": row.last_error})
        self.breakers.flush_transitions()
        return result
