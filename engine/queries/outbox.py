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

from engine.core.actions import Action
from engine.core.config import Settings
from engine.rules.guardrails.limits import HOUR, Usage, calendar_windows
from engine.core.identity import address_domain
from engine.adapters.models import OutboxItem

COUNTED = ("sending", "sent", "reconcile")
WAITING = ("deferred", "pending_approval")
FINAL = ("sent", "failed", "denied", "shadowed", "cancelled")
STATUSES = ("deferred", "pending_approval", "sending", "sent", "failed", "reconcile", "denied", "shadowed",
            "cancelled")


def load_usage(s: Session, action: Action, settings: Settings, now: datetime, warmup_phase: int,
               domain: str | None = None) -> Usage:
    """What the limits need to know for one action, read in the decision's transaction. ``domain`` is the
    recipient's canonical domain (engine/core/identity), the key of the per-domain limit."""
    domain = domain if domain is not None else address_domain(action.to)
    dom = domain_hour_times(s, [domain], settings, now) if domain else {}
    month, day, hour = global_usage(s, settings, now)
    return Usage(month_count=month, day_count=day, hour_times=hour,
                 domain_hour_times=dom.get(domain, ()),
                 mailbox_last=mailbox_last(s, action.from_), warmup_phase=warmup_phase)


def global_usage(s: Session, settings: Settings, now: datetime) -> tuple[int, int, tuple[datetime, ...]]:
    """(sends reserved this month, today, the newest reservation times of the last 60 minutes ascending), over
    every mailbox. The sliding-window rule needs only the newest `limit` times (when the limit-th newest leaves
    the window, one more fits): those are fetched, not the whole hour."""
    win = calendar_windows(now, settings.limits.limits_timezone)
    counted = OutboxItem.status.in_(COUNTED)
    month, day = s.exec(
        select(func.count(), func.coalesce(func.sum(case((OutboxItem.reserved_at >= win["day_start"], 1), else_=0)), 0))
        .where(counted, OutboxItem.reserved_at >= win["month_start"], OutboxItem.channel == "email")
    ).one()
    hour_times = s.exec(select(OutboxItem.reserved_at).where(
        counted, OutboxItem.reserved_at > now - HOUR, OutboxItem.channel == "email")
        .order_by(OutboxItem.reserved_at.desc()).limit(max(1, settings.limits.hourly_limit))).all()
    return int(month or 0), int(day or 0), tuple(sorted(_aware(t) for t in hour_times))


def domain_hour_times(s: Session, domains: list[str], settings: Settings,
                      now: datetime) -> dict[str, tuple[datetime, ...]]:
    """For each recipient domain, the newest `per_domain_hourly_limit` reservation times of the last 60 minutes,
    ascending (domains without any are absent). Several domains are read in one query per 500."""
    limit = max(1, settings.limits.per_domain_hourly_limit)
    found: dict[str, list] = {}
    for i in range(0, len(domains), 500):
        part = domains[i:i + 500]
        if len(part) == 1:  # one domain: newest `limit` rows down its index
            rows = [(part[0], t) for t in s.exec(select(OutboxItem.reserved_at).where(
                OutboxItem.status.in_(COUNTED), OutboxItem.to_domain == part[0], OutboxItem.reserved_at > now - HOUR,
                OutboxItem.channel == "email").order_by(OutboxItem.reserved_at.desc()).limit(limit)).all()]
        else:  # bounded by what the hourly limit let through in the last hour
            rows = s.exec(select(OutboxItem.to_domain, OutboxItem.reserved_at).where(
                OutboxItem.status.in_(COUNTED), OutboxItem.to_domain.in_(part), OutboxItem.reserved_at > now - HOUR,
                OutboxItem.channel == "email")).all()
        for dom, t in rows:
            found.setdefault(dom, []).append(_aware(t))
    return {d: tuple(sorted(ts)[-limit:]) for d, ts in found.items()}


def mailbox_last(s: Session, from_email: str | None) -> datetime | None:
    """The sending mailbox's newest reservation, read down ix_outbox_from_reserved (one row; max() walked every
    row the mailbox ever had)."""
    if not from_email:
        return None
    return _aware(s.exec(select(OutboxItem.reserved_at).where(
        OutboxItem.status.in_(COUNTED), OutboxItem.from_email == from_email, OutboxItem.channel == "email",
        OutboxItem.reserved_at.is_not(None)).order_by(OutboxItem.reserved_at.desc()).limit(1)).first())


def _aware(v):
    if v is None:
        return None
    if isinstance(v, str):
        v = datetime.fromisoformat(v)
    from engine.core.clock import as_utc

    return as_utc(v)


def has_prior_send(s: Session, to_key: str | None) -> bool:
    """Whether an email went (or may have gone) to this recipient before: by its canonical address
    (engine/core/identity), so no spelling of the address makes a follow-up look like a first touch or the reverse."""
    if not to_key:
        return False
    return s.exec(select(OutboxItem.id).where(OutboxItem.to_key == to_key, OutboxItem.channel == "email",
                                              OutboxItem.status.in_(COUNTED)).limit(1)).first() is not None


def prior_send_keys(s: Session, to_keys: list[str]) -> set[str]:
    """The recipients (canonical keys) among ``to_keys`` that an email went (or may have gone) to before."""
    found: set[str] = set()
    for i in range(0, len(to_keys), 500):
        found.update(s.exec(select(OutboxItem.to_key).where(
            OutboxItem.to_key.in_(to_keys[i:i + 500]), OutboxItem.channel == "email",
            OutboxItem.status.in_(COUNTED)).distinct()).all())
    return found


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
