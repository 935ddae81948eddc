"""Sending-domain health: a domain cools below the threshold and sends defer until it recovers."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from engine.core.config import DomainHealthConfig
from engine.core.reasons import Code, Reason


@dataclass(frozen=True)
class DomainState:
    domain: str
    score: float
    cooling: bool


def next_cooling(score: float, was_cooling: bool, cfg: DomainHealthConfig) -> bool:
    """Hysteresis: cool below cooling_threshold; stay cooling until recovery_threshold is reached."""
    if score < cfg.cooling_threshold:
        return True
    if was_cooling and score < cfg.recovery_threshold:
        return True
    return False


def check_domain_health(state: DomainState | None, cfg: DomainHealthConfig, now: datetime) -> list[Reason]:
    if state is None or not state.cooling:
        return []
    return [Reason(Code.DOMAIN_COOLING,
                   f"sending domain {state.domain} health {state.score:g} (cools below {cfg.cooling_threshold:g}, "
                   f"resumes at {cfg.recovery_threshold:g})",
                   now + timedelta(seconds=cfg.recheck_seconds))]
