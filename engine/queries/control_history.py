"""Read-only views of the audit trail for people: the last control changes, newest first."""
from __future__ import annotations

import json
from typing import Iterable

from sqlmodel import col, select

from engine.adapters.ports import Stored
from engine.adapters.models import AuditEntry

CONTROL_EVENTS = ("control.kill_switch", "control.phase", "control.maintenance", "control.warmup", "breaker.forced")


def _loads(text: str | None):
    try:
        return json.loads(text or "{}")
    except ValueError:
        return {}


def recent_changes(app: Stored, events: Iterable[str] = CONTROL_EVENTS, limit: int = 20) -> list[dict]:
    """The newest ``limit`` audit rows whose event is one of ``events``, as plain dicts
    (seq, at, event, status, actor, reason, before, after, forced)."""
    events = list(events)
    limit = max(1, min(int(limit), 500))
    with app.store.read() as s:
        q = select(AuditEntry)
        if events:
            q = q.where(col(AuditEntry.event).in_(events))
        rows = s.exec(q.order_by(col(AuditEntry.seq).desc()).limit(limit)).all()
    out = []
    for r in rows:
        data = _loads(r.data)
        data = data if isinstance(data, dict) else {}
        out.append({"seq": r.seq, "at": r.at, "event": r.event, "status": r.status, "actor": r.actor,
                    "ref": r.ref, "reason": data.get("reason"), "before": data.get("before"),
                    "after": data.get("after"), "forced": bool(data.get("forced", False))})
    return out
