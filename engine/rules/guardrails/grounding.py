"""Grounding: a high-risk action must cite evidence with a source that is fresh."""
from __future__ import annotations

from datetime import datetime, timedelta

from engine.core.clock import parse_iso
from engine.core.reasons import Code, Reason


def check_grounding(evidence: tuple[dict, ...], high_risk: bool, max_age_hours: float, now: datetime) -> list[Reason]:
    if not high_risk:
        return []
    if not evidence:
        return [Reason(Code.UNGROUNDED, "high-risk action without evidence (give evidence: [{source, retrieved_at}])")]
    fresh = []
    problems = []
    for i, ev in enumerate(evidence):
        src = str(ev.get("source") or "").strip()
        if not src:
            problems.append(f"evidence[{i}] has no source")
            continue
        try:
            at = parse_iso(str(ev.get("retrieved_at", "")))
        except ValueError:
            problems.append(f"evidence[{i}].retrieved_at is not an ISO-8601 time")
            continue
        if at > now + timedelta(minutes=5):
            problems.append(f"evidence[{i}].retrieved_at is in the future")
        elif now - at > timedelta(hours=max_age_hours):
            problems.append(f"evidence[{i}] from {src} is {(now - at).days} days old (max {max_age_hours:g} hours)")
        else:
            fresh.append(src)
    if fresh:
        return []
    return [Reason(Code.UNGROUNDED, "; ".join(problems) or "no usable evidence")]
