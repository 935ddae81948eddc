"""Outbox queries: usage against the limits (derived from the rows themselves, never from memory),
first-touch detection, reconciliation.

Lifecycle of a row: ``deferred``/``pending_approval`` (waiting) -> ``sending`` (committed before the API call)
-> ``sent`` | ``failed`` | ``reconcile`` (the call may have gone out: a person decides). ``denied`` and
``shadowed`` are final. Quota is consumed by rows in ``sending``, ``sent`` and ``reconcile``.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import case, or_
from sqlmodel import Session, func, select

from .actions import Action
from .config import Settings
from .guardrails.limits import HOUR, Usage, calendar_windows
from .models import OutboxItem

COUNTED = ("sending", "sent", "reconcile")
WAITING = ("deferred", "pending_approval")
FINAL = ("sent", "failed", "denied", "shadowed")
STATUSES = ("deferred", "pending_approval", "sending", "sent", "failed", "reconcile", "denied", "shadowed")


def load_usage(s: Session, action: Action, settings: Settings, now: datetime, warmup_phase: int) -> Usage:
    win = calendar_windows(now, settings.limits.limits_timezone)
    counted = OutboxItem.status.in_(COUNTED)
    month, day = s.exec(
        select(func.count(), func.coalesce(func.sum(case((OutboxItem.reserved_at >= win["day_start"], 1), else_=0)), 0))
        .where(counted, OutboxItem.reserved_at >= win["month_start"], OutboxItem.channel == "email")
    ).one()
    since = now - HOUR
    # the sliding-window rule needs only the newest `limit` times (when the limit-th newest leaves the window, one
    # more fits): fetch those, not the whole hour
    lim = settings.limits
    hour_times = s.exec(select(OutboxItem.reserved_at).where(
        counted, OutboxItem.reserved_at > since, OutboxItem.channel == "email")
        .order_by(OutboxItem.reserved_at.desc()).limit(max(1, lim.hourly_limit))).all()
    dom_times = s.exec(select(OutboxItem.reserved_at).where(
        counted, OutboxItem.to_domain == action.recipient_domain, OutboxItem.reserved_at > since,
        OutboxItem.channel == "email").order_by(OutboxItem.reserved_at.desc())
        .limit(max(1, lim.per_domain_hourly_limit))).all() if action.recipient_domain else []
    # newest reservation down ix_outbox_from_reserved: one row, where max() walked every row the mailbox ever had
    last = s.exec(select(OutboxItem.reserved_at).where(
        counted, OutboxItem.from_email == action.from_, OutboxItem.channel == "email",
        OutboxItem.reserved_at.is_not(None)).order_by(OutboxItem.reserved_at.desc()).limit(1)
    ).first() if action.from_ else None
    return Usage(
        month_count=int(month or 0),
        day_count=int(day or 0),
        hour_times=tuple(sorted(hour_times)),
        domain_hour_times=tuple(sorted(dom_times)),
        mailbox_last=_aware(last),
        warmup_phase=warmup_phase,
    )


def _aware(v):
    if v is None:
        return None
    if isinstance(v, str):
        v = datetime.fromisoformat(v)
    from .clock import as_utc

    return as_utc(v)


def has_prior_send(s: Session, to: str | None) -> bool:
    if not to:
        return False
    return s.exec(select(OutboxItem.id).where(OutboxItem.to_email == to, OutboxItem.channel == "email",
                                              OutboxItem.status.in_(COUNTED)).limit(1)).first() is not None


def reconciliation_items(s: Session, settings: Settings, now: datetime) -> list[OutboxItem]:
    stale = now - timedelta(seconds=settings.production.reconciliation.sending_stale_seconds)
    return list(s.exec(select(OutboxItem).where(or_(
        OutboxItem.status == "reconcile",
        (OutboxItem.status == "sending") & (OutboxItem.reserved_at < stale),
    )).order_by(OutboxItem.id)).all())


def status_counts(s: Session) -> dict[str, int]:
    rows = s.exec(select(OutboxItem.status, func.count()).group_by(OutboxItem.status)).all()
    return {st: n for st, n in rows}


def list_items(s: Session, status: str | None = None, limit: int = 50) -> list[OutboxItem]:
    q = select(OutboxItem)
    if status:
        q = q.where(OutboxItem.status == status)
    return list(s.exec(q.order_by(OutboxItem.id.desc()).limit(limit)).all())
