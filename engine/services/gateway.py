"""The execution gateway: the one fail-closed choke point for every outbound action.

Order: kill switch -> maintenance -> permissions -> action map -> CRM writes -> idempotency -> guardrails
(permanent) -> phase -> guardrails (temporary) -> approval -> circuit breaker -> execute -> audit. The order is
the pure ``decide`` of ``engine/rules/decision.py``; this module derives the facts it decides on from the
database and carries its decisions out.

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
from typing import Any, Callable, TypeVar

from sqlalchemy import case, or_, text, update
from sqlalchemy.sql.schema import ScalarElementColumnDefault
from sqlmodel import Session, col, select

from engine.adapters import audit
from engine.rules import guardrails
from engine.core.actions import Action, ActionSpec, InvalidAction, parse_action
from engine.adapters.breakers import Breakers
from engine.core.clock import Clock, iso
from engine.core.config import Settings
from engine.core.errors import DatabaseNotReady
from engine.services.control import EnvKillSwitch, kill_state, live_sending_allowed
from engine.adapters.db import Store, insert_many
from engine.adapters.executors import AmbiguousFailure, DefiniteFailure, Executor, Message
from engine.rules.decision import (
    Breaker,
    Control,
    Decision,
    Facts,
    LeadState,
    Outbox,
    Outcome,
    Recipient,
    Standing,
    StoredSend,
    decide,
    derive_recipient,
)
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
from engine.core.reasons import Code, Reason
from engine.core.statuses import STOP_LEAD_STATUSES, DecisionStatus
from engine.rules.unsubscribe import one_click_headers

log = logging.getLogger("alpha.gateway")
T = TypeVar("T")

STATUSES = tuple(DecisionStatus)  # the decision statuses (engine/core/statuses)

STOPPED_STATUSES = STOP_LEAD_STATUSES  # one list with the router (engine/core/statuses)


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


BATCH = 200  # decisions per locked transaction in submit_many: bounds how long other processes wait for the lock


def _lead_pk(lead_id: str | None) -> int | None:
    """A claimed lead id as a primary key, or None when it cannot be one."""
    if lead_id is not None and lead_id.isascii() and lead_id.isdigit() and len(lead_id) < 19:
        return int(lead_id)
    return None


def _given(value: T | None) -> T:
    """A value the gateway has derived (or the database has assigned) before this point; never None there."""
    if value is None:
        raise RuntimeError("gateway: a fact or row id that is derived before this point is missing")
    return value


def _control_row(s: Session) -> ControlState:
    """The control plane's one row: without it (a database never initialised) nothing is decided or sent."""
    ctl = s.get(ControlState, 1)
    if ctl is None:
        raise DatabaseNotReady("control_state row 1 is missing: initialise the database (alpha init); nothing is sent")
    return ctl


def _outbox_row(s: Session, oid: int) -> OutboxItem:
    """An outbox row committed as ``sending`` (it is never deleted)."""
    row = s.get(OutboxItem, oid)
    if row is None:
        raise RuntimeError(f"gateway: outbox row {oid} was committed as sending and is gone")
    return row


def _spec(action: Action) -> ActionSpec:
    """The action map's entry of an action ``decide`` let past the action map (only outbound actions get here)."""
    return _given(action.spec)


def _lead_state(lead: Lead | None) -> LeadState | None:
    """The stored lead as a fact for ``decide``."""
    if lead is None:
        return None
    return LeadState(id=_given(lead.id), status=lead.status, stop_reason=lead.stop_reason,
                     sequence_stopped_at=lead.sequence_stopped_at, paused_until=lead.paused_until,
                     company=lead.company, company_domain=lead.company_domain, tier=lead.tier,
                     timezone=lead.timezone, country=lead.country)


class _Reads:
    """What a decision reads inside the gate lock, straight from the session (one ``submit``)."""

    def __init__(self, gw: "Gateway", s: Session, now: datetime):
        self.gw, self.s, self.now = gw, s, now

    def control(self) -> ControlState:
        return _control_row(self.s)

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
        return self.s.exec(select(Lead).where(Lead.email_key == to_key).order_by(col(Lead.id)).limit(1)).first()

    def prior_send(self, to_key: str) -> bool:
        return has_prior_send(self.s, to_key)

    def domain(self, domain: str) -> DomainHealth | None:
        return self.s.get(DomainHealth, domain)

    def usage(self, action: Action, warmup_phase: int, domain: str) -> guardrails.Usage:
        return load_usage(self.s, action, self.gw.settings, self.now, warmup_phase, domain)

    def agent_rate(self, agent: str) -> list[Reason]:
        return self.gw.permissions.rate_reasons(self.s, agent, self.now)

    def new_row(self, **values) -> OutboxItem | _NewRow:
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


_OUTBOX = OutboxItem.metadata.tables["outbox"]  # the table (OutboxItem.__table__, typed)
_OUTBOX_DEFAULTS = {c.key: (c.default.arg if isinstance(c.default, ScalarElementColumnDefault) else None)
                    for c in _OUTBOX.columns}


class _NewRow:
    """A new outbox row of a batch before its bulk insert: the columns as attributes, the model's defaults."""

    id: int | None  # these and every other column of the outbox, set from the values and the defaults
    idempotency_key: str
    approval_id: int | None

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
        self.rows: dict[str, Any] = {r.idempotency_key: r  # stored rows, and the batch's new ones (_NewRow)
                                     for r in self._in(OutboxItem, OutboxItem.idempotency_key, keys)}
        self.sups: dict[str, Suppression] = {}
        for r in sorted(self._in(Suppression, Suppression.address_key, to_keys), key=lambda r: r.email, reverse=True):
            self.sups[r.address_key] = r
        self.leads: dict[str, Lead] = {}
        for lead in sorted(self._in(Lead, Lead.email_key, to_keys), key=lambda r: r.id, reverse=True):
            self.leads[lead.email_key] = lead  # the lowest id wins, as in _Reads.lead
        claimed = sorted({pk for a in actions if (pk := _lead_pk(a.lead_id)) is not None})
        self.leads_by_id = {lead.id: lead for lead in self._in(Lead, Lead.id, claimed)}
        self.priors = prior_send_keys(s, to_keys)
        self.domains = {r.domain: r for r in self._in(DomainHealth, DomainHealth.domain, senders)}
        self._global: tuple[int, int, tuple[datetime, ...]] | None = None
        self._dom_times: dict[str, tuple] = {}
        self._domains_wanted = sorted({address_domain(a.to) for a in actions if a.to} - {""})
        self._mailbox: dict[str | None, datetime | None] = {}
        self._rates: dict[str, list[Reason]] = {}
        self._top: int | None = None
        self._control: ControlState | None = None
        self._pending: list[_NewRow] = []

    def _in(self, model: Any, column: Any, values: list) -> list:
        out: list = []
        for i in range(0, len(values), 500):
            out += self.s.exec(select(model).where(col(column).in_(values[i:i + 500]))).all()
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

    def new_row(self, **values) -> _NewRow:
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
        insert_many(self.s.connection(), _OUTBOX, [r.values() for r in pending])
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
        insert_many(self.s.connection(), _OUTBOX, [r.values() for r in pending])

    def _next_id(self) -> int:
        """The id the row would have had from the database: one nextval on PostgreSQL (a block would leave gaps
        where a decision creates no row), the next rowid on SQLite, where BEGIN IMMEDIATE makes this
        transaction the only writer."""
        conn = self.s.connection()
        if self.gw.store.dialect == "postgresql":
            return int(_given(conn.execute(text("SELECT nextval(pg_get_serial_sequence('outbox', 'id'))")).scalar()))
        if self._top is None:
            self._top = int(_given(conn.execute(text("SELECT coalesce(max(id), 0) FROM outbox")).scalar()))
        self._top += 1
        return self._top


class Gateway:
    def __init__(self, store: Store, settings: Settings, clock: Clock, executors: dict[str, Executor],
                 env_kill: EnvKillSwitch, permissions: Permissions, breakers: Breakers, unsubscribe_secret: bytes,
                 approval_fields: Callable[[Action, bool, datetime], dict] | None = None):
        self.store, self.settings, self.clock = store, settings, clock
        self.executors = executors
        self.env_kill = env_kill
        self.permissions = permissions
        self.breakers = breakers
        self.secret = unsubscribe_secret
        # who approves what and by when (the App gives ApprovalService.new_fields: config/approvers.json)
        self.approval_fields = approval_fields or (lambda action, high_risk, now: {})

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
        free = or_(col(OutboxItem.claimed_until).is_(None), col(OutboxItem.claimed_until) < now,
                   col(OutboxItem.claimed_by) == worker)
        if exclude:
            free = free & col(OutboxItem.id).not_in(sorted(exclude))
        # under a cap the best go first: the highest tier (1), then the longest waiting; unscored rows last
        tier = case((col(OutboxItem.tier).is_(None), 99), else_=col(OutboxItem.tier))
        with self.store.write_plain() as s:
            approved = s.exec(select(OutboxItem.id).join(Approval, col(Approval.id) == col(OutboxItem.approval_id))
                              .where(col(OutboxItem.status) == "pending_approval", col(Approval.status) == "approved",
                                     free)
                              .order_by(tier, col(OutboxItem.id)).limit(limit)
                              .with_for_update(skip_locked=True, of=OutboxItem)).all()
            deferred = s.exec(select(OutboxItem.id).where(col(OutboxItem.status) == "deferred",
                                                          col(OutboxItem.not_before) <= now, free)
                              .order_by(tier, col(OutboxItem.not_before), col(OutboxItem.id))
                              .limit(max(0, limit - len(approved)))
                              .with_for_update(skip_locked=True)).all()
            ids = [i for i in (*approved, *deferred) if i is not None]  # primary keys: never None
            if ids:
                s.exec(update(OutboxItem).where(col(OutboxItem.id).in_(ids)).values(
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
                    s.exec(update(OutboxItem).where(col(OutboxItem.id).in_(ids), col(OutboxItem.claimed_by) == worker)
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
        """Derive the facts ``decide`` asks for, in its order and only when it asks for them (engine/rules/decision:
        the order of the rules lives there), then act on its decision: audit it, write the outbox row, request an
        approval, reserve the action for execution."""
        s, now = reads.s, reads.now
        ctl = reads.control()
        kill = kill_state(ctl, self.env_kill)
        facts = Facts(control=Control(kill.on, kill.reason, ctl.maintenance, ctl.maintenance_reason, ctl.phase,
                                      live_sending_allowed(ctl.phase, self.settings)),
                      permission=tuple(check_permission(action.agent, action.action, self.settings.permissions)),
                      message=tuple(static), resume_id=resume_id, shadow_run=force_shadow)
        row: Any = None  # the stored outbox row under the key (an OutboxItem, or a batch's _NewRow)
        derived: set[str] = set()
        while True:
            decision = decide(action, facts, self.settings, now)
            if decision.outcome is not Outcome.MISSING:
                break
            need = decision.missing or ""
            if need in derived or need not in ("outbox", "recipient", "standing", "breaker"):
                raise RuntimeError(f"gateway: decide() asks for the {need!r} facts, which the gateway "
                                   f"{'already derived' if need in derived else 'derives before deciding'}")
            derived.add(need)
            if need == "outbox":
                row = reads.outbox_row(action.idempotency_key)
                facts = dataclasses.replace(facts, outbox=Outbox(self._stored(s, row)))
            elif need == "recipient":
                facts = dataclasses.replace(facts, recipient=self._recipient(reads, action))
            elif need == "standing":
                facts = dataclasses.replace(facts, standing=self._standing(reads, action, ctl.warmup_phase,
                                                                           _given(facts.recipient)))
            else:
                api = self.executors[_spec(action).kind].api
                ok, retry_at = self.breakers.admit_in(s, api, now)
                facts = dataclasses.replace(facts, breaker=Breaker(api, ok, retry_at))
        return self._act(reads, action, headers, decision, facts, row, ctl.phase)

    def _act(self, reads: _Reads, action: Action, headers: dict, decision: Decision, facts: Facts, row: Any,
             phase: str) -> tuple[Result, bool]:
        """Carry out a decision in the gateway's transaction: the audit record, the outbox row and its approval."""
        s, now = reads.s, reads.now
        key, resume_id = action.idempotency_key, facts.resume_id
        reasons = list(decision.reasons)
        if decision.outcome is Outcome.REFUSED:
            self._audit_decision(s, action, "denied", reasons, now, outbox_id=resume_id)
            return Result(key, "denied", reasons, outbox_id=resume_id), False
        if decision.outcome is Outcome.VIOLATION:
            self.permissions.record_violation(s, action.agent, action.action, reasons, now, ref=key)
            return Result(key, "denied", reasons, outbox_id=resume_id), False
        if decision.outcome is Outcome.DUPLICATE:
            self._audit_decision(s, action, "duplicate", [], now, outbox_id=row.id, original=row.status)
            return Result(key, "duplicate", reasons, decision.not_before, row.id,
                          {"original_status": row.status}), False
        if decision.outcome is Outcome.SKIPPED:  # a worker raced us to it: nothing to do
            return Result(key, decision.status, [], decision.not_before, row.id, {"skipped": True}), False
        if decision.outcome is not Outcome.DECIDED:
            raise RuntimeError(f"gateway: cannot act on a {decision.outcome.value} decision ({decision.codes})")

        spec, recipient = _spec(action), _given(facts.recipient)
        status, not_before, execute = decision.status, decision.not_before, decision.execute
        if row is None:
            row = reads.new_row(idempotency_key=key, payload_hash=action.payload_hash, agent=action.agent,
                                action=action.action, channel=spec.kind, to_email=action.to,
                                to_key=recipient.to_key or None, to_domain=recipient.domain or None,
                                from_email=action.from_, subject=action.subject, html=action.html, text=action.text,
                                lead_id=str(recipient.lead.id) if recipient.lead is not None else action.lead_id,
                                tier=recipient.tier,
                                record=action.to_record(), headers=headers or None, created_at=now, status=status)
        row.status = status
        row.reasons = [r.to_dict() for r in reasons]
        row.decision = {"phase": phase, "live": decision.live, "high_risk": decision.high_risk,
                        "evaluated_at": iso(now), "all_reasons": [r.to_dict() for r in decision.all_reasons],
                        "facts": recipient.to_dict()}
        row.not_before = not_before
        row.updated_at = now
        if execute:
            row.reserved_at = now
            row.attempts += 1
            row.provider = self.executors[spec.kind].name
            self.permissions.count(s, action.agent, action.action, now)
        reads.add_row(row)
        if decision.request_approval:
            reads.flush_rows()  # the outbox row first: the approval refers to it
            appr = Approval(outbox_id=row.id, status="pending", risk="high" if decision.high_risk else "normal",
                            requested_by=action.agent, requested_at=now,
                            **self.approval_fields(action, decision.high_risk, now))
            s.add(appr)
            s.flush()
            reads.set_approval(row, _given(appr.id))
        extra = {"claims_ignored": list(recipient.ignored)} if recipient.ignored else {}
        self._audit_decision(s, action, status, reasons, now, outbox_id=row.id, phase=phase,
                             not_before=iso(not_before), high_risk=decision.high_risk, **extra)
        return Result(key, status, reasons, not_before, row.id, extra), execute

    @staticmethod
    def _stored(s: Session, row: Any) -> StoredSend | None:
        """The outbox row under the key (and the status of its approval) as a fact."""
        if row is None:
            return None
        approval = s.get(Approval, row.approval_id) if row.approval_id else None
        return StoredSend(_given(row.id), row.payload_hash, row.status, tuple(row.reasons or ()), row.not_before,
                          approval.status if approval is not None else None)

    def _recipient(self, reads: _Reads, action: Action) -> Recipient:
        """Derive the recipient's facts from the store: its lead, and whether the outbox shows an earlier send."""
        to_key = canonical_address(action.to) if action.to else ""
        lead = reads.lead(to_key, action.lead_id) if to_key else None
        prior = (reads.prior_send(to_key) if to_key and action.spec is not None and action.spec.kind == "email"
                 else False)
        return derive_recipient(action, to_key, address_domain(action.to), _lead_state(lead), prior,
                                self.settings.production.working_hours.default_timezone)

    @staticmethod
    def _standing(reads: _Reads, action: Action, warmup_phase: int, recipient: Recipient) -> Standing:
        """Read the suppression list, the sending domain's health, the limits' usage and the agent's rate."""
        sup = reads.suppression(recipient.to_key) if recipient.to_key else None
        suppressed = guardrails.Suppressed(sup.email, sup.reason, sup.source or "") if sup is not None else None
        dom, usage = None, None
        if _spec(action).kind == "email":
            dom = reads.domain(action.sender_domain) if action.sender_domain else None
            usage = reads.usage(action, warmup_phase, recipient.domain)
        health = guardrails.DomainState(dom.domain, dom.score, dom.cooling) if dom is not None else None
        return Standing(suppressed, usage, health, tuple(reads.agent_rate(action.agent)))

    def _execute(self, decided: Result) -> Result:
        """Call the executor for a row committed as ``sending``, then commit the outcome."""
        oid = _given(decided.outbox_id)
        with self.store.read() as s:
            row = _outbox_row(s, oid)
            ctl = _control_row(s)
        spec_kind = row.channel
        executor = self.executors[spec_kind]
        kill = kill_state(ctl, self.env_kill)
        if kill.on:  # flipped between our decision and the call: hold it, nothing is lost
            now = self.clock()
            reason = Reason(Code.KILL_SWITCH, kill.reason or "kill switch is on")
            with self.store.write() as s:
                row = _outbox_row(s, oid)
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
            row = _outbox_row(s, oid)
            self.breakers.record_in(s, executor.api, breaker_ok, now, error)
            row.updated_at = now
            row.last_error = audit.redact(error) if error else None
            if outcome == "sent":
                if delivery is None:  # an executor that returns nothing: the row stays sending (reconciliation)
                    raise TypeError(f"executor {executor.name} returned no delivery for outbox row {oid}")
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
