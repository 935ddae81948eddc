"""Deliverability for people: sends per day against the effective daily cap and the warm-up plan, bounce and
complaint rates against the domain-health thresholds, health per sending domain, and the cooling and pause
events of the audit trail.

Everything is bounded to a window of calendar days in ``email_limits.limits_timezone`` (the days the daily
cap counts) and aggregated in SQL: each row is put in its day by comparing its timestamp with the days' UTC
boundaries (a CASE expression, exact across DST changes and on SQLite and PostgreSQL alike), then grouped.

What counts, and why:
- *sends per day*: outbox rows in ``sending``/``sent``/``reconcile`` by ``reserved_at``, e-mail only: exactly
  what the daily cap counts (engine/queries/outbox.py quota_rows).
- *rates*: bounces and complaints (suppressions recorded in the window) over messages ``sent`` in the window
  (by ``sent_at``), per sending domain as the domain-health score computes them (engine/services/events.py); bounces
  that GHL did not attribute to a sending domain count in the total only.
- *effective cap* of a day: ``Settings.effective_daily_cap`` for the warm-up phase in force at the end of that
  day, replayed from the ``control.warmup`` audit rows (today's daily_limit and plan apply to every day).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, distinct
from sqlmodel import col, func, select

from engine.adapters.ports import Configured
from engine.queries.audit_log import decode
from engine.core.clock import UTC, as_utc, iso
from engine.core.errors import InvalidRequest
from engine.adapters.models import AuditEntry, ControlState, DomainHealth, OutboxItem, Suppression
from engine.queries.outbox import quota_rows

DEFAULT_DAYS = 30
MAX_DAYS = 366
BOUNCE_SOURCE = "ghl:LCEmailStats:"  # + sending domain (engine/services/events.py)
EVENTS = ("domain.health", "control.kill_switch", "control.maintenance", "control.warmup")
MAX_EVENTS = 500


@dataclass(frozen=True)
class Window:
    """Calendar days ``start``..``end`` (both included) in time zone ``tz``."""

    start: date
    end: date
    tz: str

    @property
    def days(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range((self.end - self.start).days + 1)]

    def midnight(self, d: date) -> datetime:
        return datetime.combine(d, time(0), tzinfo=ZoneInfo(self.tz)).astimezone(UTC)

    @property
    def bounds(self) -> list[datetime]:
        """len(days) + 1 UTC instants: day i is [bounds[i], bounds[i + 1])."""
        return [self.midnight(d) for d in self.days] + [self.midnight(self.end + timedelta(days=1))]

    @property
    def since(self) -> datetime:
        return self.midnight(self.start)

    @property
    def until(self) -> datetime:
        return self.midnight(self.end + timedelta(days=1))



class _WarmupStatus(Protocol):
    def warmup_status(self) -> dict: ...


class WithWarmup(Configured, Protocol):
    """What the report reads of the engine: the store, settings and clock, and the control plane's warm-up status
    (engine.services.control.ControlPlane, which a query cannot import)."""

    @property
    def control(self) -> _WarmupStatus: ...


def window(app: Configured, days: int = DEFAULT_DAYS, start: date | None = None, end: date | None = None) -> Window:
    """The last ``days`` days up to today (in the limits' time zone), or ``start``..``end``."""
    tz = app.settings.limits.limits_timezone
    today = as_utc(app.clock()).astimezone(ZoneInfo(tz)).date()
    end = end or today
    start = start or end - timedelta(days=max(1, int(days)) - 1)
    if start > end:
        raise InvalidRequest(f"the window starts ({start}) after it ends ({end})")
    if (end - start).days + 1 > MAX_DAYS:
        raise InvalidRequest(f"the window is {(end - start).days + 1} days; at most {MAX_DAYS} days at a time")
    return Window(start, end, tz)


def _day_of(col, bounds: list):
    """SQL: the index of the day ``col`` falls in (NULL outside the window)."""
    return case(*[(and_(col >= lo, col < hi), i) for i, (lo, hi) in enumerate(zip(bounds, bounds[1:]))],
                else_=None)


def _per_day(s, col, bounds, *where, measure=None, by=None) -> list[tuple]:
    """Rows of (day index, [by,] measure) grouped in SQL. ``measure`` defaults to count(*)."""
    cols = [_day_of(col, bounds).label("day")] + ([by.label("by")] if by is not None else [])
    sub = select(*cols, *([measure.label("m")] if measure is not None else [])).where(
        col >= bounds[0], col < bounds[-1], *where).subquery()
    keys = [sub.c.day] + ([sub.c.by] if by is not None else [])
    agg = func.count(distinct(sub.c.m)) if measure is not None else func.count()
    selected = [*keys, agg]  # one starred list: sqlmodel's select() overloads cannot type `*keys, agg`
    return s.exec(select(*selected).group_by(*keys)).all()


def _rate(n: int, d: int) -> float | None:
    return n / d if d else None


# ------------------------------------------------------------------------------------------------ warm-up

def warmup_phases(app: Configured, win: Window, s=None) -> list[int]:
    """The warm-up phase in force at the end of each day of the window, replayed from the audit trail."""
    def run(s):
        ends = [iso(b) for b in win.bounds[1:]]
        last_before = s.exec(select(AuditEntry).where(AuditEntry.event == "control.warmup",
                                                      col(AuditEntry.at) < iso(win.since))
                             .order_by(col(AuditEntry.seq).desc()).limit(1)).first()
        changes = s.exec(select(AuditEntry).where(AuditEntry.event == "control.warmup",
                                                  col(AuditEntry.at) >= iso(win.since), col(AuditEntry.at) < ends[-1])
                         .order_by(col(AuditEntry.seq)).limit(MAX_EVENTS)).all()
        ctl = s.get(ControlState, 1)
        return last_before, changes, (ctl.warmup_phase if ctl else 1)

    if s is None:
        with app.store.read() as s:
            last_before, changes, current = run(s)
    else:
        last_before, changes, current = run(s)

    def phase_of(e: AuditEntry, key: str) -> int | None:
        try:
            return int(decode(e.data, {})[key]["warmup_phase"])
        except (ValueError, KeyError, TypeError):
            return None

    if last_before is not None:
        phase = phase_of(last_before, "after")
    elif changes:
        phase = phase_of(changes[0], "before")
    else:
        phase = current
    phase = phase or current
    out, i = [], 0
    for end in (iso(b) for b in win.bounds[1:]):
        while i < len(changes) and changes[i].at < end:
            phase = phase_of(changes[i], "after") or phase
            i += 1
        out.append(phase)
    return out


# ------------------------------------------------------------------------------------------------ queries

def daily(app: Configured, win: Window) -> list[dict]:
    """One row per day of the window: sends counted against the cap (by status), bounces, complaints, sends
    held by a cooling sending domain, the warm-up phase and the effective daily cap."""
    b = win.bounds
    bt = [iso(x) for x in b]
    with app.store.read() as s:
        sends = _per_day(s, OutboxItem.reserved_at, b, *quota_rows(), by=OutboxItem.status)
        supp = _per_day(s, Suppression.created_at, b, col(Suppression.reason).in_(("bounced", "complained")),
                        by=Suppression.reason)
        held = _per_day(s, AuditEntry.at, bt, AuditEntry.event == "gateway.decision",
                        AuditEntry.status == "deferred", col(AuditEntry.reasons).like('%"DOMAIN_COOLING"%'),
                        measure=AuditEntry.ref)
        phases = warmup_phases(app, win, s)
    rows: list[dict[str, Any]] = []
    for i, d in enumerate(win.days):
        cap, binding = app.settings.effective_daily_cap(phases[i])
        rows.append({"day": d.isoformat(), "sent": 0, "sending": 0, "reconcile": 0, "counted": 0, "bounced": 0,
                     "complained": 0, "held_cooling": 0, "warmup_phase": phases[i], "cap": cap,
                     "binding": binding})
    for day, status, n in sends:
        if day is not None:
            rows[day][status] += int(n)
            rows[day]["counted"] += int(n)
    for day, reason, n in supp:
        if day is not None:
            rows[day][reason] += int(n)
    for day, n in held:
        if day is not None:
            rows[day]["held_cooling"] = int(n)
    for r in rows:
        r["over_cap"] = r["counted"] > r["cap"]
        r["bounce_rate"] = _rate(r["bounced"], r["sent"])
        r["complaint_rate"] = _rate(r["complained"], r["sent"])
    return rows


def _domain(email: str | None) -> str:
    return email.rsplit("@", 1)[1].lower() if email and "@" in email else ""


def rates(app: Configured, win: Window) -> dict:
    """Bounce and complaint rates over the window, in total and per sending domain, with the domain-health
    guardrail's thresholds: {"total": {...}, "domains": [...], "max_bounce_rate", "max_complaint_rate"}."""
    cfg = app.settings.production.domain_health
    with app.store.read() as s:
        by_mailbox = s.exec(select(OutboxItem.from_email, func.count()).where(
            OutboxItem.status == "sent", OutboxItem.channel == "email", col(OutboxItem.sent_at) >= win.since,
            col(OutboxItem.sent_at) < win.until).group_by(col(OutboxItem.from_email))).all()
        supp = s.exec(select(Suppression.source, Suppression.reason, func.count()).where(
            col(Suppression.reason).in_(("bounced", "complained")), col(Suppression.created_at) >= win.since,
            col(Suppression.created_at) < win.until).group_by(col(Suppression.source), col(Suppression.reason))).all()
    doms: dict[str, dict] = {}

    def dom(name: str) -> dict:
        return doms.setdefault(name, {"domain": name, "sent": 0, "bounced": 0, "complained": 0})

    total: dict[str, Any] = {"domain": "all", "sent": 0, "bounced": 0, "complained": 0}
    for mailbox, n in by_mailbox:
        dom(_domain(mailbox) or "(no sender)")["sent"] += int(n)
        total["sent"] += int(n)
    for source, reason, n in supp:
        total[reason] += int(n)
        if source and source.startswith(BOUNCE_SOURCE) and source[len(BOUNCE_SOURCE):]:
            dom(source[len(BOUNCE_SOURCE):].lower())[reason] += int(n)
    out = []
    for r in [total, *sorted(doms.values(), key=lambda r: r["domain"])]:
        r["bounce_rate"] = _rate(r["bounced"], r["sent"])
        r["complaint_rate"] = _rate(r["complained"], r["sent"])
        r["bounce_over"] = r["bounce_rate"] is not None and r["bounce_rate"] > cfg.max_bounce_rate
        r["complaint_over"] = r["complaint_rate"] is not None and r["complaint_rate"] > cfg.max_complaint_rate
        out.append(r)
    return {"total": out[0], "domains": out[1:], "max_bounce_rate": cfg.max_bounce_rate,
            "max_complaint_rate": cfg.max_complaint_rate}


def domain_health(app: Configured) -> list[dict]:
    """Health of every sending domain: the configured from-addresses' domains and every domain with a recorded
    score (a domain without one counts as healthy, score 100)."""
    cfg = app.settings.production.domain_health
    configured = {_domain(a) for a in app.settings.production.sender.from_addresses if _domain(a)}
    with app.store.read() as s:
        rows = {r.domain: r for r in s.exec(select(DomainHealth)).all()}
    out = []
    for d in sorted(configured | set(rows)):
        r = rows.get(d)
        cooling = bool(r and r.cooling)
        out.append({"domain": d, "score": r.score if r else 100.0, "cooling": cooling,
                    "state": "COOLING: sends defer" if cooling else "healthy",
                    "reason": (r.reason if r else None) or ("no bounces or complaints recorded" if not r else ""),
                    "updated_at": iso(r.updated_at) if r else None, "configured": d in configured,
                    "cooling_threshold": cfg.cooling_threshold, "recovery_threshold": cfg.recovery_threshold})
    return out


def _what(e: AuditEntry, data: dict) -> str:
    before, after = data.get("before") or {}, data.get("after") or {}
    before = before if isinstance(before, dict) else {}
    after = after if isinstance(after, dict) else {}
    if e.event == "domain.health":
        if after.get("cooling") and not before.get("cooling"):
            return "cooling started"
        if before.get("cooling") and not after.get("cooling"):
            return "cooling ended"
        return "still cooling" if after.get("cooling") else "health updated"
    if e.event == "control.kill_switch":
        return "kill switch ON: all sending paused" if e.status == "on" else "kill switch off"
    if e.event == "control.maintenance":
        return "maintenance ON: sending paused" if e.status == "on" else "maintenance off"
    if e.event == "control.warmup":
        return f"warm-up phase {before.get('warmup_phase', '?')} -> {after.get('warmup_phase', e.status)}"
    return e.event


def events(app: Configured, win: Window, limit: int = 200) -> list[dict]:
    """Cooling and pause events in the window, newest first: domain health changes, kill switch and maintenance
    (the pauses), warm-up phase changes. Plain dicts (seq, at, event, what, ref, actor, score, reason)."""
    limit = max(1, min(int(limit), MAX_EVENTS))
    with app.store.read() as s:
        rows = s.exec(select(AuditEntry).where(col(AuditEntry.event).in_(EVENTS),
                                               col(AuditEntry.at) >= iso(win.since),
                                               col(AuditEntry.at) < iso(win.until))
                      .order_by(col(AuditEntry.seq).desc()).limit(limit)).all()
    out = []
    for e in rows:
        data = decode(e.data, {})
        after = data.get("after") if isinstance(data.get("after"), dict) else {}
        out.append({"seq": e.seq, "at": e.at, "event": e.event, "what": _what(e, data), "ref": e.ref,
                    "actor": e.actor, "score": after.get("score"), "reason": data.get("reason")})
    return out


def report(app: WithWarmup, days: int = DEFAULT_DAYS, start: date | None = None, end: date | None = None) -> dict:
    """Everything the deliverability page shows, for one window."""
    win = window(app, days, start, end)
    return {"window": {"start": win.start.isoformat(), "end": win.end.isoformat(), "tz": win.tz,
                       "days": len(win.days)},
            "daily": daily(app, win), "rates": rates(app, win), "domains": domain_health(app),
            "events": events(app, win), "warmup": app.control.warmup_status(),
            "warmup_plan": [{"phase": p.phase, "daily_cap": p.daily_cap, **p.criteria.model_dump()}
                            for p in app.settings.warmup.phases],
            "daily_limit": app.settings.limits.daily_limit}
