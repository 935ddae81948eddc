"""Guardrails: pure functions of (action, state, config, clock) returning reasons with stable codes.

Nothing in this package performs I/O; the gateway loads the state and wires the result to the database.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from engine.core.actions import Action
from engine.core.config import Settings
from engine.core.reasons import Reason
from engine.rules.guardrails.content import ContentRules, check_content
from engine.rules.guardrails.domain_health import DomainState, check_domain_health
from engine.rules.guardrails.grounding import check_grounding
from engine.rules.guardrails.hours import check_working_hours
from engine.rules.guardrails.limits import Usage, check_limits
from engine.rules.guardrails.recipients import Suppressed, check_exclusions, check_suppression, check_syntax

__all__ = [
    "SendState", "Usage", "Suppressed", "DomainState", "ContentRules",
    "is_high_risk", "check_message", "static_reasons", "evaluate",
]


@dataclass(frozen=True)
class SendState:
    """Everything the rules need to know about the world, loaded by the gateway in its transaction."""

    usage: Usage = field(default_factory=Usage)
    suppression: Suppressed | None = None
    sender_domain: DomainState | None = None
    first_touch: bool = True


def is_high_risk(action: Action, settings: Settings) -> bool:
    pol = settings.production.approval
    spec = action.spec
    return bool(
        (spec is not None and spec.high_risk)
        or action.action in pol.high_risk_actions
        or (action.tier is not None and action.tier in pol.high_risk_tiers)
    )


def static_reasons(action: Action, settings: Settings, first_touch: bool = True,
                   secret: bytes | None = None) -> list[Reason]:
    """The rules that need no database: recipient syntax, exclusions and content. With ``secret`` (the
    unsubscribe secret) the email's unsubscribe link must carry the recipient's own token."""
    out = check_syntax(action.to)
    out += check_exclusions(action.recipient_domain, action.company,
                            settings.customer_exclusions, settings.competitor_exclusions)
    spec = action.spec
    if spec is not None and spec.kind == "email":
        out += check_content(action.subject, action.html, action.text, ContentRules.from_settings(settings),
                             first_touch=first_touch, recipient=action.to, secret=secret)
    return out


def check_message(action: Action, settings: Settings, suppression: Suppressed | None,
                  first_touch: bool = True, secret: bytes | None = None) -> list[Reason]:
    """Content and recipient rules only: consumes no quota, needs no clock."""
    return check_suppression(suppression) + static_reasons(action, settings, first_touch, secret)


def evaluate(action: Action, state: SendState, settings: Settings, now: datetime,
             message_reasons: list[Reason] | None = None) -> list[Reason]:
    """Every guardrail for one outbound action. Permanent reasons come first."""
    prod = settings.production
    out = list(message_reasons) if message_reasons is not None else check_message(
        action, settings, state.suppression, state.first_touch)
    out += check_grounding(action.evidence, is_high_risk(action, settings), prod.grounding.max_age_hours, now)
    spec = action.spec
    if spec is not None and spec.kind == "email":
        out += check_working_hours(action.timezone, prod.working_hours, now)
        out += check_limits(state.usage, settings, now)
        out += check_domain_health(state.sender_domain, prod.domain_health, now)
    return out
