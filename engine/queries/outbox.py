"""Outbox queries: usage against the limits (derived from the rows themselves, never from memory),
first-touch detection, reconciliation.

Lifecycle of a row: ``deferred``/``pending_approval`` (waiting) -> ``sending`` (committed before the API call)
-> ``sent`` | ``failed`` | ``reconcile`` (the call may have gone out: a person decides). ``denied`` and
``shadowed`` are final. Quota is consumed by rows in ``sending``, ``sent`` and ``reconcile``.
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import case, or_
from sqlmodel import Session, col, func, select

from engine.core.actions import Action
from engine.core.clock import iso
from engine.core.config import Settings
from engine.rules.guardrails.limits import HOUR, Usage, calendar_windows
from engine.core.identity import address_domain
from engine.core.statuses import OutboxStatus
from engine.adapters.models import OutboxItem

STATUSES = tuple(OutboxStatus)  # every outbox row status (engine/core/statuses); the CLI and /metrics list them
COUNTED = (OutboxStatus.SENDING, OutboxStatus.SENT, OutboxStatus.RECONCILE)   # consume quota
WAITING = (OutboxStatus.DEFERRED, OutboxStatus.PENDING_APPROVAL)
FINAL = (OutboxStatus.SENT, OutboxStatus.FAILED, OutboxStatus.DENIED, OutboxStatus.SHADOWED, OutboxStatus.CANCELLED)


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


def quota_rows(*where) -> tuple:
    """The WHERE clauses of the rows that consume sending quota: e-mail outbox rows in a COUNTED status (the call
    went, or may have gone, out). The one definition the limits, ``usage_summary`` and the deliverability report
    count."""
    return (col(OutboxItem.status).in_(COUNTED), OutboxItem.channel == "email", *where)


def _last_hour(now: datetime):
    return col(OutboxItem.reserved_at) > now - HOUR  # the sliding window of the hourly limits


def month_day_counts(s: Session, settings: Settings, now: datetime) -> tuple[int, int]:
    """(sends reserved this calendar month, today), in the limits' time zone, over every mailbox: one query."""
    win = calendar_windows(now, settings.limits.limits_timezone)
    today = case((col(OutboxItem.reserved_at) >= win["day_start"], 1), else_=0)
    month, day = s.exec(select(func.count(), func.coalesce(func.sum(today), 0))
                        .where(*quota_rows(col(OutboxItem.reserved_at) >= win["month_start"]))).one()
    return int(month or 0), int(day or 0)


def global_usage(s: Session, settings: Settings, now: datetime) -> tuple[int, int, tuple[datetime, ...]]:
    """(sends reserved this month, today, the newest reservation times of the last 60 minutes ascending), over
    every mailbox. The sliding-window rule needs only the newest `limit` times (when the limit-th newest leaves
    the window, one more fits): those are fetched, not the whole hour."""
    month, day = month_day_counts(s, settings, now)
    hour_times = s.exec(select(OutboxItem.reserved_at).where(*quota_rows(_last_hour(now)))
                        .order_by(col(OutboxItem.reserved_at).desc())
                        .limit(max(1, settings.limits.hourly_limit))).all()
    return month, day, tuple(sorted(_aware(t) for t in hour_times))


def usage_summary(s: Session, settings: Settings, now: datetime, warmup_phase: int) -> dict:
    """Usage against every limit, for people (``App.usage``: the CLI, the console, /status): counted by the same
    ``quota_rows`` and windows as the limits the gateway enforces (``global_usage``), so the numbers shown are the
    numbers decided on."""
    lim = settings.limits
    month, day = month_day_counts(s, settings, now)
    hour = int(s.exec(select(func.count()).select_from(OutboxItem).where(*quota_rows(_last_hour(now)))).one())
    domains = s.exec(select(OutboxItem.to_domain, func.count()).where(*quota_rows(_last_hour(now)))
                     .group_by(OutboxItem.to_domain).order_by(func.count().desc()).limit(5)).all()
    mailboxes = s.exec(select(OutboxItem.from_email, func.max(OutboxItem.reserved_at)).where(*quota_rows())
                       .group_by(OutboxItem.from_email)).all()
    cap, binding = settings.effective_daily_cap(warmup_phase)
    return {
        "monthly": {"used": month, "limit": lim.monthly_limit},
        "daily": {"used": day, "limit": cap, "binding": binding, "daily_limit": lim.daily_limit,
                  "warmup_phase": warmup_phase, "warmup_enabled": settings.warmup.enabled},
        "hourly": {"used": hour, "limit": lim.hourly_limit, "window": "last 60 minutes"},
        "per_domain_hourly": {"limit": lim.per_domain_hourly_limit,
                              "busiest": [{"domain": d, "used": n} for d, n in domains]},
        "min_delay_seconds": {"limit": lim.min_delay_seconds,
                              "mailboxes": [{"from": f, "last_send": iso(t)} for f, t in mailboxes]},
    }


def domain_hour_times(s: Session, domains: list[str], settings: Settings,
                      now: datetime) -> dict[str, tuple[datetime, ...]]:
    """For each recipient domain, the newest `per_domain_hourly_limit` reservation times of the last 60 minutes,
    ascending (domains without any are absent). Several domains are read in one query per 500."""
    limit = max(1, settings.limits.per_domain_hourly_limit)
    found: dict[str, list] = {}
    for i in range(0, len(domains), 500):
        part = domains[i:i + 500]
        rows: Sequence[tuple[str | None, datetime | None]]
        if len(part) == 1:  # one domain: newest `limit` rows down its index
            rows = [(part[0], t) for t in s.exec(select(OutboxItem.reserved_at).where(
                *quota_rows(OutboxItem.to_domain == part[0], _last_hour(now)))
                .order_by(col(OutboxItem.reserved_at).desc()).limit(limit)).all()]
        else:  # bounded by what the hourly limit let through in the last hour
            rows = s.exec(select(OutboxItem.to_domain, OutboxItem.reserved_at).where(
                *quota_rows(col(OutboxItem.to_domain).in_(part), _last_hour(now)))).all()
        for dom, t in rows:
            if dom is not None:  # the query filtered on to_domain, so never None here
                found.setdefault(dom, []).append(_aware(t))
    return {d: tuple(sorted(ts)[-limit:]) for d, ts in found.items()}


def mailbox_last(s: Session, from_email: str | None) -> datetime | None:
    """The sending mailbox's newest reservation, read down ix_outbox_from_reserved (one row; max() walked every
    row the mailbox ever had)."""
    if not from_email:
        return None
    return _aware(s.exec(select(OutboxItem.reserved_at).where(
        *quota_rows(OutboxItem.from_email == from_email, col(OutboxItem.reserved_at).is_not(None)))
        .order_by(col(OutboxItem.reserved_at).desc()).limit(1)).first())


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
    return s.exec(select(OutboxItem.id).where(*quota_rows(OutboxItem.to_key == to_key)).limit(1)).first() is not None


def prior_send_keys(s: Session, to_keys: list[str]) -> set[str]:
    """The recipients (canonical keys) among ``to_keys`` that an email went (or may have gone) to before."""
    found: set[str] = set()
    for i in range(0, len(to_keys), 500):
        found.update(k for k in s.exec(select(OutboxItem.to_key).where(
            *quota_rows(col(OutboxItem.to_key).in_(to_keys[i:i + 500]))).distinct()).all() if k is not None)
    return found


def stale_before(settings: Settings, now: datetime) -> datetime:
    """A ``sending`` row reserved at or before this instant has waited ``sending_stale_seconds`` for its outcome:
    the worker that made the call is presumed gone, and the send is in doubt."""
    return now - timedelta(seconds=settings.production.reconciliation.sending_stale_seconds)


def is_in_doubt(row: OutboxItem, settings: Settings, now: datetime) -> bool:
    """The one definition of a send in doubt (the provider call may have gone out; a person decides, it is never
    retried): a ``reconcile`` row, or a ``sending`` row reserved at or before ``stale_before``. ``in_doubt_rows``
    is the same rule in SQL."""
    if row.status == OutboxStatus.RECONCILE:
        return True
    return (row.status == OutboxStatus.SENDING and row.reserved_at is not None
            and _aware(row.reserved_at) <= stale_before(settings, now))


def in_doubt_rows(settings: Settings, now: datetime):
    """``is_in_doubt`` as a WHERE clause."""
    return or_(col(OutboxItem.status) == OutboxStatus.RECONCILE,
               (col(OutboxItem.status) == OutboxStatus.SENDING)
               & (col(OutboxItem.reserved_at) <= stale_before(settings, now)))


def reconciliation_items(s: Session, settings: Settings, now: datetime) -> list[OutboxItem]:
    """The sends in doubt (``is_in_doubt``), oldest first."""
    return list(s.exec(select(OutboxItem).where(in_doubt_rows(settings, now)).order_by(col(OutboxItem.id))).all())


def status_counts(s: Session) -> dict[str, int]:
    rows = s.exec(select(OutboxItem.status, func.count()).group_by(OutboxItem.status)).all()
    return {st: n for st, n in rows}


def list_items(s: Session, status: str | None = None, limit: int = 50) -> list[OutboxItem]:
    q = select(OutboxItem)
    if status:
        q = q.where(OutboxItem.status == status)
    return list(s.exec(q.order_by(col(OutboxItem.id).desc()).limit(limit)).all())
