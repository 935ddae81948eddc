"""The gateway's decision as one pure function: ``decide(action, facts, settings, now) -> Decision``.

Why a function of its own: the gateway is the one fail-closed choke point, and the order of its rules *is* its
policy. Kept apart from the database, the order reads top to bottom in ``decide`` and is tested without one:

  1. kill switch (control plane or EMERGENCY_STOP)      -> denied KILL_SWITCH
  2. maintenance                                         -> denied MAINTENANCE
  3. permissions (recorded as a violation)               -> denied UNKNOWN_AGENT / PERMISSION_DENIED / ...
  4. the action map: only sends and CRM writes leave     -> denied UNMAPPED_ACTION
  5. CRM writes blocked by configuration                 -> denied PRODUCTION_WRITES_BLOCKED
  6. idempotency: another payload, a foreign resume      -> denied IDEMPOTENCY_CONFLICT / INVALID_ACTION
                  the key was decided before             -> duplicate (or skipped, for a resume another worker did)
  7. guardrails, permanent (every one found, in order)   -> denied
  8. phase: a queued send after a step-down              -> deferred PHASE_HELD
            nothing leaves in this phase / shadow run    -> shadowed PHASE_BLOCKS_SEND (+ the temporary reasons)
  9. guardrails, temporary (hours, limits, cooling, ...) -> deferred until the latest not_before
 10. approval (phase and risk policy)                    -> pending_approval APPROVAL_REQUIRED
 11. circuit breaker of the executor's API               -> deferred BREAKER_OPEN
 12. everything passed                                   -> sending (the gateway executes it)

The gateway derives every fact from what it stores and from its configuration, inside its locked transaction; a
caller's claims can only narrow them (``derive_recipient``). ``decide`` reads no clock (``now`` is passed in), no
database and no environment, and imports only ``engine.core`` and ``engine.rules``.

Facts come in groups, derived when a rule first needs them: the outbox row only for an action that passed the
gates, the recipient's state only for one that is not a duplicate, and the circuit breaker - whose half-open trial
is a reservation, not a read - only when every other rule lets the action leave. A group not given is never
assumed: ``decide`` stops at the first rule that needs it with a decision that lets nothing leave
(``Outcome.MISSING``, the group's name in ``missing``); the gateway derives it and decides again.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

from engine.core.actions import Action
from engine.core.clock import as_utc, iso
from engine.core.config import Settings
from engine.core.reasons import Code, Kind, Reason
from engine.core.statuses import STOP_LEAD_STATUSES
from engine.rules import guardrails  # its rules are called through the package (see guardrail_reasons)
from engine.rules.geo import lead_timezone
from engine.rules.guardrails.domain_health import DomainState
from engine.rules.guardrails.hours import check_working_hours
from engine.rules.guardrails.limits import Usage
from engine.rules.guardrails.recipients import Suppressed, check_exclusions

PHASE_HOLD = timedelta(minutes=15)  # a queued send held by a phase step-down is looked at again this often


# ------------------------------------------------------------------------------------------------ facts

@dataclass(frozen=True)
class Control:
    """The control plane as the gateway read it (and the environment's EMERGENCY_STOP)."""

    kill_switch: bool
    kill_reason: str | None
    maintenance: bool
    maintenance_reason: str | None
    phase: str
    live_allowed: bool  # the phase and the email_behavior flags allow live sends


@dataclass(frozen=True)
class StoredSend:
    """The outbox row that already holds the action's idempotency key."""

    id: int
    payload_hash: str
    status: str
    reasons: tuple[dict, ...] = ()  # its stored reasons, as stored ({"code", "detail", ...})
    not_before: datetime | None = None
    approval_status: str | None = None  # the status of its approval; None without one


@dataclass(frozen=True)
class Outbox:
    """The outcome of the idempotency lookup: the stored row under the key, or None when the key is new."""

    row: StoredSend | None


@dataclass(frozen=True)
class LeadState:
    """The stored lead of the recipient, as far as the decision looks at it."""

    id: int
    status: str | None = None
    stop_reason: str | None = None
    sequence_stopped_at: datetime | None = None
    paused_until: datetime | None = None  # out of office
    company: str | None = None
    company_domain: str | None = None
    tier: int | None = None
    timezone: str | None = None
    country: str | None = None


@dataclass(frozen=True)
class Recipient:
    """What the gateway decides on about the recipient, derived from what it stores (the lead record, the outbox
    history) - never taken from the caller. A caller's claim may only narrow a decision: a riskier tier, an extra
    time zone that must also be in working hours, a first touch; a claim that disagrees with the stored facts is
    ignored for widening and listed in ``ignored`` (audited with the decision)."""

    to_key: str
    domain: str
    lead: LeadState | None
    tier: int | None
    timezones: tuple[str, ...]
    timezone_source: str
    first_touch: bool
    ignored: tuple[dict, ...] = ()

    def to_dict(self) -> dict:
        """The facts as recorded in the outbox row's decision."""
        return {"to_key": self.to_key, "lead_id": self.lead.id if self.lead is not None else None, "tier": self.tier,
                "timezones": list(self.timezones), "timezone_source": self.timezone_source,
                "first_touch": self.first_touch}


@dataclass(frozen=True)
class Standing:
    """The recipient's and the sender's state now: suppression, what the limits have reserved, the sending domain's
    health, the agent's rate."""

    suppression: Suppressed | None
    usage: Usage | None  # emails only; None for any other action
    sender_domain: DomainState | None  # None: no health record for the sending domain (it is not cooling)
    agent_rate: tuple[Reason, ...] = ()  # the agent's per-minute and per-hour rate limits


@dataclass(frozen=True)
class Breaker:
    """The answer of the executor's circuit breaker (asked last: a half-open trial is taken by asking)."""

    api: str
    admitted: bool
    retry_at: datetime | None = None


@dataclass(frozen=True)
class Facts:
    """Everything ``decide`` decides on besides the action. A group left None has not been derived."""

    control: Control | None = None
    permission: tuple[Reason, ...] | None = None  # the agent's permission for the action (empty: granted)
    message: tuple[Reason, ...] | None = None  # content and recipient syntax rules, checked before the lock
    outbox: Outbox | None = None
    recipient: Recipient | None = None
    standing: Standing | None = None
    breaker: Breaker | None = None
    resume_id: int | None = None  # deciding again on this waiting outbox row (deferred, or approved)
    shadow_run: bool = False  # every check, but nothing leaves, whatever the phase


# Each group of facts, in the order the rules need them: how a decision without it fails closed.
GROUPS: dict[str, tuple[str, Code, str]] = {
    "control": ("denied", Code.KILL_SWITCH, "the control state (kill switch, maintenance, phase)"),
    "permission": ("denied", Code.PERMISSION_DENIED, "the agent's permission for the action"),
    "outbox": ("denied", Code.INVALID_ACTION, "the outbox row under the idempotency key"),
    "recipient": ("denied", Code.INVALID_ACTION, "the recipient's stored facts"),
    "standing": ("denied", Code.INVALID_ACTION, "the suppression list, limits, domain health and agent rate"),
    "message": ("denied", Code.INVALID_ACTION, "the content and recipient syntax checks"),
    "breaker": ("deferred", Code.BREAKER_OPEN, "the circuit breaker of the executor's API"),
}


# ------------------------------------------------------------------------------------------------ decision

class Outcome(str, Enum):
    """What the gateway does with a decision."""

    REFUSED = "refused"      # denied before any outbox row: audited as the decision
    VIOLATION = "violation"  # denied by permissions: recorded as a permission violation
    DUPLICATE = "duplicate"  # the key was decided before: the stored decision is returned
    SKIPPED = "skipped"      # a resume another worker already handled: nothing to do
    DECIDED = "decided"      # a decision on the outbox row: written, audited, executed when "sending"
    MISSING = "missing"      # a group of facts was not derived: nothing leaves (see ``missing``)


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    status: str  # sending | shadowed | pending_approval | deferred | denied | duplicate | the row's (skipped)
    reasons: tuple[Reason, ...] = ()
    not_before: datetime | None = None
    missing: str | None = None  # with Outcome.MISSING: the group of facts to derive (a key of GROUPS)
    all_reasons: tuple[Reason, ...] = ()  # every guardrail reason found (the row's decision record)
    live: bool = False
    high_risk: bool = False
    request_approval: bool = False  # pending_approval and no pending approval yet: request one

    @property
    def codes(self) -> list[str]:
        return [r.code.value for r in self.reasons]

    @property
    def execute(self) -> bool:
        """Every rule let the action leave: the gateway reserves it and calls the executor."""
        return self.outcome is Outcome.DECIDED and self.status == "sending"


def needs_approval(phase: str, high_risk: bool) -> bool:
    """assisted: every send needs a human; autonomous: only high-risk actions."""
    if phase == "assisted":
        return True
    if phase == "autonomous":
        return high_risk
    return False


def _missing(group: str, now: datetime) -> Decision:
    status, code, what = GROUPS[group]
    not_before = now if status == "deferred" else None
    return Decision(Outcome.MISSING, status, (Reason(code, f"{what} was not derived: nothing leaves", not_before),),
                    not_before, missing=group)


def _refuse(reason: Reason) -> Decision:
    return Decision(Outcome.REFUSED, "denied", (reason,))


def decide(action: Action, facts: Facts, settings: Settings, now: datetime) -> Decision:
    """The gateway's decision on one parsed action, in the order of the module docstring; fail closed."""
    control = facts.control
    if control is None:
        return _missing("control", now)
    if control.kill_switch:
        return _refuse(Reason(Code.KILL_SWITCH, control.kill_reason or "kill switch is on"))
    if control.maintenance:
        return _refuse(Reason(Code.MAINTENANCE, control.maintenance_reason or "maintenance mode is on"))

    if facts.permission is None:
        return _missing("permission", now)
    if facts.permission:
        return Decision(Outcome.VIOLATION, "denied", facts.permission)
    spec = action.spec
    if spec is None or not spec.outbound:
        return _refuse(Reason(Code.UNMAPPED_ACTION, f"{action.action} is not an outbound action; "
                                                    "the gateway executes sends and CRM writes only"))
    if spec.crm_write and settings.production.block_production_writes:
        return _refuse(Reason(Code.PRODUCTION_WRITES_BLOCKED, "block_production_writes is true"))
    live = control.live_allowed and not facts.shadow_run

    if facts.outbox is None:
        return _missing("outbox", now)
    replay = _idempotency(action, facts.outbox.row, facts.resume_id)
    if replay is not None:
        return replay
    row = facts.outbox.row
    approval_status = row.approval_status if row is not None else None

    recipient, standing, message = facts.recipient, facts.standing, facts.message
    if recipient is None:
        return _missing("recipient", now)
    if standing is None or (spec.kind == "email" and standing.usage is None):
        return _missing("standing", now)
    if message is None:
        return _missing("message", now)
    reasons = guardrail_reasons(action, recipient, standing, message, settings, now)
    permanent = tuple(r for r in reasons if r.kind == Kind.PERMANENT)
    temporary = tuple(r for r in reasons if r.kind == Kind.TEMPORARY)
    # high risk when the stored tier says so, or when the caller claims a riskier tier (never less)
    effective = dataclasses.replace(action, tier=recipient.tier)
    high_risk = guardrails.is_high_risk(effective, settings) or guardrails.is_high_risk(action, settings)
    def decided(status: str, out: tuple[Reason, ...], not_before: datetime | None = None,
                request_approval: bool = False) -> Decision:
        return Decision(Outcome.DECIDED, status, out, not_before, all_reasons=tuple(reasons), live=live,
                        high_risk=high_risk, request_approval=request_approval)

    phase = control.phase
    if permanent:
        return decided("denied", permanent)
    if not live and facts.resume_id is not None and not facts.shadow_run:
        # a queued send whose phase was stepped down: held, resumable (never a final shadowed row); released at
        # once by a step up (ControlPlane.set_phase), else looked at again after PHASE_HOLD
        not_before = now + PHASE_HOLD
        return decided("deferred", (Reason(Code.PHASE_HELD, f"phase {phase}: held until the phase allows live sends",
                                           not_before),), not_before)
    if not live:
        why = ("shadow run" if facts.shadow_run else f"phase {phase}" if phase in ("shadow", "parallel")
               else "email_behavior.actually_send/shadow_mode forbid live sends")
        return decided("shadowed", (Reason(Code.PHASE_BLOCKS_SEND, f"nothing leaves: {why}"),) + temporary)
    if temporary:
        waits = [r.not_before for r in temporary if r.not_before]
        return decided("deferred", temporary, max(waits) if waits else now + timedelta(minutes=1))
    if needs_approval(phase, high_risk) and approval_status != "approved":
        detail = f"phase {phase}: " + ("high-risk action" if high_risk else "every send needs a human approval")
        return decided("pending_approval", (Reason(Code.APPROVAL_REQUIRED, detail),),
                       request_approval=approval_status != "pending")
    if facts.breaker is None:
        return _missing("breaker", now)
    if not facts.breaker.admitted:
        retry_at = facts.breaker.retry_at
        return decided("deferred", (Reason(Code.BREAKER_OPEN, f"{facts.breaker.api} breaker is open", retry_at),),
                       retry_at)
    return decided("sending", ())


def _idempotency(action: Action, row: StoredSend | None, resume_id: int | None) -> Decision | None:
    """A decision made by the outbox row already under the key, or None when the action is decided on anew."""
    key = action.idempotency_key
    # on resume the stored row is the source of truth (a human may have edited it before approving)
    if row is not None and resume_id is None and row.payload_hash != action.payload_hash:
        return _refuse(Reason(Code.IDEMPOTENCY_CONFLICT,
                              f"key {key!r} was used for another payload (outbox row {row.id})"))
    if resume_id is not None and (row is None or row.id != resume_id):
        return _refuse(Reason(Code.INVALID_ACTION, f"outbox row {resume_id} does not match its key"))
    if row is None:
        return None
    resumable = row.status == "deferred" or (row.status == "pending_approval" and row.approval_status == "approved")
    if resumable and not (resume_id is None and row.status != "deferred"):
        return None
    if resume_id is None:
        stored = tuple(Reason(Code(c["code"]), c.get("detail", "")) for c in row.reasons)
        return Decision(Outcome.DUPLICATE, "duplicate", stored, row.not_before if row.status == "deferred" else None)
    # a worker raced us to it: nothing to do
    return Decision(Outcome.SKIPPED, row.status, (), row.not_before)


def guardrail_reasons(action: Action, recipient: Recipient, standing: Standing, message: tuple[Reason, ...],
                      settings: Settings, now: datetime) -> list[Reason]:
    """Every guardrail reason for the action, permanent and temporary, each once, in the order found.

    The package's rules are looked up on ``engine.rules.guardrails`` when called, as the gateway always did: the
    canary tests (tests/integration/test_pipeline.py) switch one off there to prove their checks notice."""
    spec = action.spec
    email = spec is not None and spec.kind == "email"
    effective = dataclasses.replace(action, tier=recipient.tier, timezone=recipient.timezones[0])
    reasons = guardrails.check_suppression(standing.suppression) + list(message)
    if not recipient.first_touch:  # the outbox shows an earlier send: a "Re:" is not deceptive
        reasons = [r for r in reasons if r.code != Code.DECEPTIVE_SUBJECT]
    reasons += lead_reasons(recipient.lead, action, settings, now)
    state = guardrails.SendState()
    if email:
        if standing.usage is None:  # decide() asks for the limits first: never decided on without them
            raise ValueError("standing.usage is required for an email (the limits were not read)")
        state = guardrails.SendState(usage=standing.usage, suppression=standing.suppression,
                          sender_domain=standing.sender_domain, first_touch=recipient.first_touch)
        if action.from_ not in settings.production.sender.from_addresses:
            reasons.append(Reason(Code.INVALID_ACTION, f"from {action.from_!r} is not a configured sending "
                                                       "mailbox (sender.from_addresses)"))
    reasons = guardrails.evaluate(effective, state, settings, now, message_reasons=reasons)
    if email:  # every further zone (a claim that differs) must be in working hours too
        for tz in recipient.timezones[1:]:
            reasons += check_working_hours(tz, settings.production.working_hours, now)
    reasons += standing.agent_rate
    return list(dict.fromkeys(reasons))  # a rule reached by two facts (claimed and stored company) once


def lead_reasons(lead: LeadState | None, action: Action, settings: Settings, now: datetime) -> list[Reason]:
    """The stored lead's own state: a reply, opt-out or bounce stops every step; out of office holds them;
    its company is checked against the exclusion lists whatever the caller says it is."""
    if lead is None:
        return []
    out: list[Reason] = []
    if lead.sequence_stopped_at is not None or lead.status in STOP_LEAD_STATUSES:
        out.append(Reason(Code.SEQUENCE_STOPPED, f"lead {lead.id} is {lead.status}"
                          + (f" ({lead.stop_reason})" if lead.stop_reason else "")
                          + (f" since {iso(lead.sequence_stopped_at)}" if lead.sequence_stopped_at else "")))
    if lead.paused_until is not None:
        paused = as_utc(lead.paused_until)
        if paused > now:
            out.append(Reason(Code.LEAD_PAUSED, f"lead {lead.id} is out of office until {iso(paused)}", paused))
    if lead.company and lead.company != action.company:
        out += check_exclusions(None, lead.company, settings.customer_exclusions, settings.competitor_exclusions)
    if lead.company_domain:
        out += check_exclusions(lead.company_domain, None, settings.customer_exclusions,
                                settings.competitor_exclusions)
    return out


def derive_recipient(action: Action, to_key: str, domain: str, lead: LeadState | None, prior_send: bool,
                     default_timezone: str) -> Recipient:
    """The recipient's facts from the stored lead and the outbox history (``prior_send``); the caller's claims
    (lead_id, tier, timezone, first_touch) are compared with them and only narrow."""
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
        zone, source = lead_timezone(lead.timezone, lead.country, default_timezone)
    else:
        zone, source = default_timezone, "default"
    zones = [zone]
    if action.timezone and action.timezone != zone:
        zones.append(action.timezone)  # narrows: both zones must be in working hours
        ignored.append({"claim": "timezone", "claimed": action.timezone, "derived": zone, "source": source,
                        "note": "working hours must hold in both"})
    first_touch = not prior_send or action.first_touch is True
    if action.first_touch is False and not prior_send:
        ignored.append({"claim": "first_touch", "claimed": False, "derived": True,
                        "note": "no earlier send to this recipient in the outbox"})
    return Recipient(to_key, domain, lead, tier, tuple(zones), source, first_touch, tuple(ignored))
