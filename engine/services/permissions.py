"""Agent permissions: fail-closed role checks, per-agent rate limits counted in the database, a decorator.

An unknown agent, an action missing from the engine's action map, an action the role does not grant or a
platform it may not use is denied and recorded as a violation in the audit trail.
"""
from __future__ import annotations

import functools
from datetime import datetime, timedelta
from typing import Callable

from sqlmodel import Session, select

from engine.adapters import audit
from engine.core.actions import ACTIONS
from engine.core.clock import Clock
from engine.core.config import AgentRateLimits, PermissionsConfig, Settings
from engine.adapters.db import Store
from engine.core.errors import PermissionDenied
from engine.rules.guardrails.limits import sliding_window
from engine.adapters.models import AgentActivity
from engine.core.reasons import Code, Reason

MINUTE, HOUR = timedelta(minutes=1), timedelta(hours=1)


def check_permission(agent: str, action: str, cfg: PermissionsConfig, platform: str | None = None) -> list[Reason]:
    spec = ACTIONS.get(action)
    if spec is None:
        return [Reason(Code.UNMAPPED_ACTION, f"action {action!r} is not in the action map")]
    role = cfg.agents.get(agent)
    if role is None:
        return [Reason(Code.UNKNOWN_AGENT, f"agent {agent!r} is not in permissions.json")]
    if action not in role.actions:
        return [Reason(Code.PERMISSION_DENIED, f"{agent} may not {action}")]
    plat = platform or spec.platform
    if plat != "internal" and plat.lower() not in {p.lower() for p in role.platforms}:
        return [Reason(Code.PLATFORM_DENIED, f"{agent} may not use platform {plat}")]
    return []


def check_agent_rate(agent: str, times: list[datetime], limits: AgentRateLimits, now: datetime) -> list[Reason]:
    for limit, window, label in ((limits.per_minute, MINUTE, "minute"), (limits.per_hour, HOUR, "hour")):
        if limit is None:
            continue
        nb = sliding_window(times, limit, window, now)
        if nb is not None:
            return [Reason(Code.AGENT_RATE_LIMIT, f"{agent} reached {limit} actions per {label}", nb)]
    return []


class Permissions:
    def __init__(self, store: Store, settings: Settings, clock: Clock):
        self.store, self.settings, self.clock = store, settings, clock

    @property
    def cfg(self) -> PermissionsConfig:
        return self.settings.permissions

    def record_violation(self, s: Session, agent: str, action: str, reasons: list[Reason], now: datetime,
                         ref: str | None = None) -> None:
        audit.append(s, event="permission.violation", actor=agent or "unknown", agent=agent, action=action,
                     status="denied", ref=ref, reasons=[r.code.value for r in reasons], now=now,
                     data={"detail": "; ".join(r.detail for r in reasons)})

    def recent(self, s: Session, agent: str, now: datetime) -> list[datetime]:
        return list(s.exec(select(AgentActivity.at).where(AgentActivity.agent == agent,
                                                          AgentActivity.at > now - HOUR)).all())

    def rate_reasons(self, s: Session, agent: str, now: datetime) -> list[Reason]:
        role = self.cfg.agents.get(agent)
        if role is None:
            return []
        return check_agent_rate(agent, self.recent(s, agent, now), role.rate_limits, now)

    def count(self, s: Session, agent: str, action: str, now: datetime) -> None:
        s.add(AgentActivity(agent=agent, action=action, at=now))

    def authorize(self, agent: str, action: str, platform: str | None = None) -> None:
        """Check, count and record one action by ``agent``; raise PermissionDenied otherwise."""
        now = self.clock()
        with self.store.write() as s:
            reasons = check_permission(agent, action, self.cfg, platform)
            if reasons:
                self.record_violation(s, agent, action, reasons, now)
            else:
                reasons = self.rate_reasons(s, agent, now)
                if not reasons:
                    self.count(s, agent, action, now)
        if reasons:
            raise PermissionDenied(reasons[0].code.value, reasons[0].detail)

    def requires(self, action: str, platform: str | None = None) -> Callable:
        """Decorator for a function performing ``action``; the caller names itself with ``agent=``."""

        def deco(fn: Callable) -> Callable:
            @functools.wraps(fn)
            def wrapper(*args, agent: str, **kwargs):
                self.authorize(agent, action, platform)
                return fn(*args, agent=agent, **kwargs)

            return wrapper

        return deco
