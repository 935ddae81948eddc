"""The audit trail for people: filtered, newest first, one page at a time, and the chain check on demand.

Every query filters and pages in SQL (keyset on ``seq``, the primary key), so a page costs the same with 100
rows or 100,000. Rows come back as plain dicts; ``reasons`` and ``data`` are decoded JSON. Values were
redacted when the rows were written (engine/adapters/audit.py), nothing here un-redacts or re-reads secrets.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Iterable

from sqlmodel import col, func, literal, select, union_all

from engine.adapters.ports import Stored
from engine.adapters import audit
from engine.core.clock import iso
from engine.adapters.models import AuditEntry

MAX_PAGE = 500
FACET_LIMIT = 200
FACETS = ("actor", "agent", "event", "action", "status")


@dataclass(frozen=True)
class AuditFilter:
    """What to show. Empty fields do not filter; ``events`` and ``statuses`` match any of their values;
    ``since`` is inclusive and ``until`` exclusive."""

    actor: str | None = None
    agent: str | None = None
    events: tuple[str, ...] = ()
    action: str | None = None
    statuses: tuple[str, ...] = ()
    ref: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    @classmethod
    def of(cls, *, actor: str | None = None, agent: str | None = None, events: Iterable[str] | str = (),
           action: str | None = None, statuses: Iterable[str] | str = (), ref: str | None = None,
           since: datetime | None = None, until: datetime | None = None) -> "AuditFilter":
        def one(v):
            v = v.strip() if isinstance(v, str) else v
            return v or None

        def many(v):
            v = (v,) if isinstance(v, str) else tuple(v or ())
            return tuple(x for x in (s.strip() for s in v) if x)

        return cls(one(actor), one(agent), many(events), one(action), many(statuses), one(ref), since, until)

    def conditions(self) -> list:
        c = []
        for column, val in ((AuditEntry.actor, self.actor), (AuditEntry.agent, self.agent),
                            (AuditEntry.action, self.action), (AuditEntry.ref, self.ref)):
            if val is not None:
                c.append(col(column) == val)
        if self.events:
            c.append(col(AuditEntry.event).in_(self.events))
        if self.statuses:
            c.append(col(AuditEntry.status).in_(self.statuses))
        # ``at`` is fixed-width ISO text in UTC (clock.iso), so text order is time order.
        if self.since is not None:
            c.append(col(AuditEntry.at) >= iso(self.since))
        if self.until is not None:
            c.append(col(AuditEntry.at) < iso(self.until))
        return c


def decode(text: str | None, default):
    """A JSON column's value, or ``default`` when it is empty, malformed or of another type."""
    try:
        out = json.loads(text) if text else default
    except ValueError:
        return default
    return out if isinstance(out, type(default)) else default


def to_dict(e: AuditEntry) -> dict:
    return {"seq": e.seq, "at": e.at, "actor": e.actor, "agent": e.agent, "event": e.event, "action": e.action,
            "status": e.status, "ref": e.ref, "outbox_id": e.outbox_id, "reasons": decode(e.reasons, []),
            "data": decode(e.data, {}), "row_hash": e.row_hash}


def search(app: Stored, flt: AuditFilter | None = None, *, before_seq: int | None = None, limit: int = 50) -> dict:
    """One page of matching rows, newest first.

    ``before_seq`` is the keyset cursor: only rows with a smaller ``seq`` (pass the previous page's
    ``next_before_seq``). Returns {"rows": [...], "next_before_seq": int | None (None on the last page)}."""
    flt = flt or AuditFilter()
    limit = max(1, min(int(limit), MAX_PAGE))
    q = select(AuditEntry).where(*flt.conditions())
    if before_seq is not None:
        q = q.where(col(AuditEntry.seq) < int(before_seq))
    with app.store.read() as s:
        rows = s.exec(q.order_by(col(AuditEntry.seq).desc()).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return {"rows": [to_dict(r) for r in rows], "next_before_seq": rows[-1].seq if more else None}


def count(app: Stored, flt: AuditFilter | None = None) -> int:
    """How many rows match (all pages)."""
    flt = flt or AuditFilter()
    with app.store.read() as s:
        return int(s.exec(select(func.count()).select_from(AuditEntry).where(*flt.conditions())).one())


def get(app: Stored, seq: int) -> dict | None:
    with app.store.read() as s:
        e = s.get(AuditEntry, int(seq))
    return to_dict(e) if e is not None else None


def facets(app: Stored, limit: int = FACET_LIMIT) -> dict[str, list[str]]:
    """The values each filter can take (distinct, sorted, at most ``limit`` each), for pick lists. One query."""
    parts = []
    for name in FACETS:
        column = getattr(AuditEntry, name)
        sub = (select(literal(name).label("facet"), column.label("value")).where(column.is_not(None), column != "")
               .distinct().order_by(column).limit(limit).subquery())
        parts.append(select(sub.c.facet, sub.c.value))
    out: dict[str, list[str]] = {name: [] for name in FACETS}
    with app.store.read() as s:
        # execute(), not exec(): sqlmodel types exec() for select()/DML only, and a UNION is a CompoundSelect
        # (exec() would make the same call underneath)
        for facet, value in s.execute(union_all(*parts)).all():
            out[facet].append(value)
    return {k: sorted(v) for k, v in out.items()}


def verify_chain(app: Stored) -> dict:
    """Walk the whole hash chain (audit.verify) once: the result, how many rows were checked and how long it
    took. Costs a few seconds at 100,000 rows: call it on request, not on every render."""
    t0 = time.perf_counter()
    with app.store.read() as s:
        r = audit.verify(s)
    out = r.to_dict()
    out["seconds"] = round(time.perf_counter() - t0, 3)
    out["checked_at"] = iso(app.clock())
    out["bad_row"] = get(app, r.first_bad_seq) if r.first_bad_seq is not None else None
    return out
