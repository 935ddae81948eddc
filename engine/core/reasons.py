"""Stable reason codes. Other tools and tests depend on these names: never rename one."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum


class Kind(str, Enum):
    PERMANENT = "permanent"  # the action will never be allowed as it stands -> denied
    TEMPORARY = "temporary"  # a window, hours, breaker or cooling: try again at not_before -> deferred
    SHADOW = "shadow"        # nothing leaves in this phase -> shadowed
    APPROVAL = "approval"    # a human must approve -> pending_approval


class Code(str, Enum):
    KILL_SWITCH = "KILL_SWITCH"
    MAINTENANCE = "MAINTENANCE"
    PHASE_BLOCKS_SEND = "PHASE_BLOCKS_SEND"
    PRODUCTION_WRITES_BLOCKED = "PRODUCTION_WRITES_BLOCKED"
    UNKNOWN_AGENT = "UNKNOWN_AGENT"
    UNMAPPED_ACTION = "UNMAPPED_ACTION"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    PLATFORM_DENIED = "PLATFORM_DENIED"
    AGENT_RATE_LIMIT = "AGENT_RATE_LIMIT"
    LIMIT_MONTHLY = "LIMIT_MONTHLY"
    LIMIT_DAILY = "LIMIT_DAILY"
    WARMUP_CAP = "WARMUP_CAP"
    LIMIT_HOURLY = "LIMIT_HOURLY"
    LIMIT_DOMAIN_HOURLY = "LIMIT_DOMAIN_HOURLY"
    MIN_DELAY = "MIN_DELAY"
    OUTSIDE_WORKING_HOURS = "OUTSIDE_WORKING_HOURS"
    SPAM_CONTENT = "SPAM_CONTENT"
    MISSING_UNSUBSCRIBE = "MISSING_UNSUBSCRIBE"
    MISSING_POSTAL_ADDRESS = "MISSING_POSTAL_ADDRESS"
    FORBIDDEN_CLAIM = "FORBIDDEN_CLAIM"
    DECEPTIVE_SUBJECT = "DECEPTIVE_SUBJECT"
    UNGROUNDED = "UNGROUNDED"
    INVALID_RECIPIENT = "INVALID_RECIPIENT"
    SUPPRESSED_RECIPIENT = "SUPPRESSED_RECIPIENT"
    EXCLUDED_RECIPIENT = "EXCLUDED_RECIPIENT"
    DOMAIN_COOLING = "DOMAIN_COOLING"
    BREAKER_OPEN = "BREAKER_OPEN"
    APPROVAL_REQUIRED = "APPROVAL_REQUIRED"
    IDEMPOTENCY_CONFLICT = "IDEMPOTENCY_CONFLICT"
    INVALID_ACTION = "INVALID_ACTION"
    # Outcomes of the executor call (after every rule passed):
    PROVIDER_ERROR = "PROVIDER_ERROR"
    PROVIDER_REJECTED = "PROVIDER_REJECTED"
    # Outcomes of the approval queue:
    APPROVAL_REJECTED = "APPROVAL_REJECTED"
    APPROVAL_EXPIRED = "APPROVAL_EXPIRED"
    # The lead's own state (derived by the gateway from what it stores):
    SEQUENCE_STOPPED = "SEQUENCE_STOPPED"
    LEAD_PAUSED = "LEAD_PAUSED"
    PHASE_HELD = "PHASE_HELD"


KIND: dict[Code, Kind] = {c: Kind.PERMANENT for c in Code}
for _c in (
    Code.AGENT_RATE_LIMIT, Code.LIMIT_MONTHLY, Code.LIMIT_DAILY, Code.WARMUP_CAP, Code.LIMIT_HOURLY,
    Code.LIMIT_DOMAIN_HOURLY, Code.MIN_DELAY, Code.OUTSIDE_WORKING_HOURS, Code.DOMAIN_COOLING, Code.BREAKER_OPEN,
    Code.PROVIDER_ERROR, Code.LEAD_PAUSED, Code.PHASE_HELD,
):
    KIND[_c] = Kind.TEMPORARY
KIND[Code.PHASE_BLOCKS_SEND] = Kind.SHADOW
KIND[Code.APPROVAL_REQUIRED] = Kind.APPROVAL

# One line per code, for the README and `alpha codes`.
DESCRIPTIONS: dict[Code, str] = {
    Code.KILL_SWITCH: "The kill switch is on (control plane or EMERGENCY_STOP): nothing leaves.",
    Code.MAINTENANCE: "Maintenance mode is on: outbound actions are refused.",
    Code.PHASE_BLOCKS_SEND: "The rollout phase (shadow/parallel) or email_behavior flags forbid live sends: "
                            "stored as shadowed.",
    Code.PRODUCTION_WRITES_BLOCKED: "block_production_writes is true: CRM writes are refused.",
    Code.UNKNOWN_AGENT: "The agent is not in permissions.json (recorded as a violation).",
    Code.UNMAPPED_ACTION: "The action is not in the engine's action map (recorded as a violation).",
    Code.PERMISSION_DENIED: "The agent's role does not grant this action (recorded as a violation).",
    Code.PLATFORM_DENIED: "The agent's role does not grant the action's platform (recorded as a violation).",
    Code.AGENT_RATE_LIMIT: "The agent's per-minute or per-hour rate limit is reached.",
    Code.LIMIT_MONTHLY: "email_limits.monthly_limit reached for this calendar month.",
    Code.LIMIT_DAILY: "email_limits.daily_limit reached for this calendar day.",
    Code.WARMUP_CAP: "The warm-up phase's daily cap (smaller than daily_limit) is reached.",
    Code.LIMIT_HOURLY: "email_limits.hourly_limit reached in the last 60 minutes.",
    Code.LIMIT_DOMAIN_HOURLY: "per_domain_hourly_limit reached for the recipient's domain in the last 60 minutes.",
    Code.MIN_DELAY: "The sending mailbox sent less than min_delay_seconds ago.",
    Code.OUTSIDE_WORKING_HOURS: "Outside working hours in the recipient's time zone.",
    Code.SPAM_CONTENT: "Subject or body contains a term from spam_words.txt.",
    Code.MISSING_UNSUBSCRIBE: "No visible unsubscribe link to the configured unsubscribe URL.",
    Code.MISSING_POSTAL_ADDRESS: "The sender's postal address is not in the body.",
    Code.FORBIDDEN_CLAIM: "Body or subject makes a claim from forbidden_claims.txt.",
    Code.DECEPTIVE_SUBJECT: "A first touch whose subject pretends to be a reply or forward (Re:/Fwd:).",
    Code.UNGROUNDED: "A high-risk action lacks evidence that cites its source and is fresh.",
    Code.INVALID_RECIPIENT: "The recipient address is not a valid email address.",
    Code.SUPPRESSED_RECIPIENT: "The recipient unsubscribed, bounced, complained or is DND.",
    Code.EXCLUDED_RECIPIENT: "The recipient is a customer or competitor (config/exclusions).",
    Code.DOMAIN_COOLING: "The sending domain's health is below the cooling threshold.",
    Code.BREAKER_OPEN: "The circuit breaker of the API is open (or its half-open trial is taken).",
    Code.APPROVAL_REQUIRED: "A human must approve this action first (phase and risk policy).",
    Code.IDEMPOTENCY_CONFLICT: "The idempotency key was used before with a different payload.",
    Code.INVALID_ACTION: "The action is malformed; the detail names the field.",
    Code.PROVIDER_ERROR: "The provider failed before accepting the message (5xx, refused connection): "
                         "nothing went out; deferred with backoff.",
    Code.PROVIDER_REJECTED: "The provider refused the message for good (4xx): nothing went out.",
    Code.APPROVAL_REJECTED: "A human approver rejected it (the detail has who and why).",
    Code.APPROVAL_EXPIRED: "Nobody decided before the approval expired: not sent, and not a human rejection.",
    Code.SEQUENCE_STOPPED: "The lead replied, opted out or bounced: its sequence is stopped and nothing more "
                           "goes to it.",
    Code.LEAD_PAUSED: "The lead is out of office: held until the return date.",
    Code.PHASE_HELD: "A queued send whose phase was stepped down: held (resumable), released when the phase allows "
                     "live sends again.",
}


@dataclass(frozen=True)
class Reason:
    code: Code
    detail: str = ""
    not_before: datetime | None = None

    @property
    def kind(self) -> Kind:
        return KIND[self.code]

    def to_dict(self) -> dict:
        from engine.core.clock import iso

        d = {"code": self.code.value, "detail": self.detail}
        if self.not_before is not None:
            d["not_before"] = iso(self.not_before)
        return d


def reason_from_dict(d: dict) -> Reason:
    from engine.core.clock import parse_iso

    nb = d.get("not_before")
    return Reason(Code(d["code"]), d.get("detail", ""), parse_iso(nb) if nb else None)
