"""Every status the engine stores or returns, as one enum per concept.

Each is a ``StrEnum`` whose values are the strings stored in the database and shown in JSON, so nothing stored
changes: a member equals its string (``OutboxStatus.SENT == "sent"``), hashes like it, and is written and read
back as it. Code names a status through its enum, so a typo is an AttributeError instead of a silently different
string, and a concept with two lists of its statuses (the lead statuses that stop a sequence were two tuples that
disagreed) has one.
"""
from __future__ import annotations

from enum import StrEnum


class DecisionStatus(StrEnum):
    """What the gateway answered for one action (``engine/services/gateway.py`` ``Result.status``)."""

    SENT = "sent"
    SHADOWED = "shadowed"
    PENDING_APPROVAL = "pending_approval"
    DEFERRED = "deferred"
    DENIED = "denied"
    DUPLICATE = "duplicate"
    RECONCILE = "reconcile"


class OutboxStatus(StrEnum):
    """An outbox row's state (``OutboxItem.status``): waiting (deferred, pending_approval) -> sending (committed
    before the provider call) -> sent | failed | reconcile (the call may have gone out: a person decides);
    denied, shadowed and cancelled are final."""

    DEFERRED = "deferred"
    PENDING_APPROVAL = "pending_approval"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    RECONCILE = "reconcile"
    DENIED = "denied"
    SHADOWED = "shadowed"
    CANCELLED = "cancelled"


class TemplateStatus(StrEnum):
    """A message template's review state (``engine/rules/messaging.py``)."""

    DRAFT = "draft"
    APPROVED = "approved"


class DraftStatus(StrEnum):
    """A drafted email's review state (``Draft.status``, the shadow review)."""

    DRAFT = "draft"
    APPROVED = "approved"
    REJECTED = "rejected"
    QUEUED = "queued"
    SENT = "sent"


class LeadStatus(StrEnum):
    """A lead's state (``Lead.status``): the pipeline and the webhooks set it."""

    NEW = "new"
    COLD = "cold"
    WARM = "warm"
    HOT = "hot"                    # replied with interest: a person takes over
    REPLIED = "replied"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"


class SuppressionReason(StrEnum):
    """Why an address is on the suppression list (``Suppression.reason``)."""

    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"
    DND = "dnd"
    MANUAL = "manual"


# The lead statuses after which no automated step may go out: the router (which sequence) and the gateway (may this
# send go) used to keep two lists that disagreed on "hot" and "complained". A hot lead replied with interest and is a
# person's to answer; a complaint is the strongest opt-out. Holding mail is the safe side of a disagreement.
STOP_LEAD_STATUSES: frozenset[LeadStatus] = frozenset({
    LeadStatus.HOT, LeadStatus.REPLIED, LeadStatus.UNSUBSCRIBED, LeadStatus.BOUNCED, LeadStatus.COMPLAINED})


def stops_sequence(status: object) -> bool:
    """Whether a lead in ``status`` (any case, surrounding white space ignored) must get no further step."""
    return isinstance(status, str) and status.strip().lower() in STOP_LEAD_STATUSES
