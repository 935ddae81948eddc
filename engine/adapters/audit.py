"""Tamper-evident audit trail.

Each row carries the hash of the previous row and the SHA-256 of its own canonical content (every column
but ``row_hash``, including its sequence number), so an edited, deleted or reordered row breaks the chain at
a place ``verify`` names. Rows are appended only inside ``Store.write()`` (the gate lock), which gives the
chain one total order across processes. Secrets are redacted before anything is written.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable, Iterator

from sqlmodel import Session, col, func, select

from engine.core.clock import iso
from engine.core.errors import DatabaseNotReady
from engine.adapters.db import insert_many
from engine.adapters.models import GENESIS_HASH, AuditEntry, AuditHead, table_of

_SECRET_KEY = re.compile(r"(api[_-]?key|token|secret|password|passwd|authorization|cookie|private[_-]?key|signature)",
                         re.I)
SECRET_ENV_VARS = (
    "GHL_API_KEY", "SLACK_WEBHOOK_URL", "ANTHROPIC_API_KEY", "OPENAI_API_KEY", "ALPHA_UNSUBSCRIBE_SECRET",
    "ALPHA_COOKIE_KEY", "RB2B_WEBHOOK_SECRET", "GHL_WEBHOOK_PUBLIC_KEY", "ALPHA_DEMO_PASSWORD",
    "ALPHA_METRICS_TOKEN",
)
REDACTED = "[REDACTED]"


def _secret_values() -> list[str]:
    vals = []
    for name in SECRET_ENV_VARS:
        v = os.environ.get(name, "")
        if len(v) >= 8:
            vals.append(v)
    return vals


def redact(obj: Any, _secrets: list[str] | None = None) -> Any:
    """Replace values under secret-looking keys, and any known secret value, with [REDACTED]."""
    secrets = _secret_values() if _secrets is None else _secrets
    if isinstance(obj, dict):
        return {k: (REDACTED if isinstance(k, str) and _SECRET_KEY.search(k) and v not in (None, "")
                    else redact(v, secrets)) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [redact(v, secrets) for v in obj]
    if isinstance(obj, str):
        for s in secrets:
            if s in obj:
                obj = obj.replace(s, REDACTED)
        return obj
    return obj


def _dumps(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


_HASHED = ("seq", "at", "actor", "agent", "event", "action", "status", "ref", "outbox_id", "reasons", "data",
           "prev_hash")
_BUFFER = "alpha.audit_rows"


def row_digest(e: AuditEntry) -> str:
    return _digest([getattr(e, k) for k in _HASHED])


def _digest(content: list) -> str:
    return hashlib.sha256(_dumps(content).encode()).hexdigest()


@contextmanager
def buffered(s: Session) -> Iterator[None]:
    """Inside: ``append`` collects its rows, and they are inserted in one statement on the way out (before the
    transaction commits; nothing on an error). The same rows, hashes and head as row by row, for a batch of
    decisions in one transaction."""
    rows: list[dict] = []
    s.info[_BUFFER] = rows
    try:
        yield
        if rows:
            insert_many(s.connection(), table_of(AuditEntry), rows)
    finally:
        s.info.pop(_BUFFER, None)


def append(s: Session, *, event: str, actor: str, now: datetime, agent: str | None = None,
           action: str | None = None, status: str | None = None, ref: str | None = None,
           outbox_id: int | None = None, reasons: Iterable[str] = (), data: dict | None = None) -> AuditEntry | None:
    """Append one row. Must run inside Store.write() (the head row is locked there)."""
    head = s.get(AuditHead, 1)
    if head is None:  # Store.write() refuses to open without it; a session from elsewhere may not have it
        raise DatabaseNotReady("the audit_head row (id 1) is missing, so no audit row can be chained: "
                               "the database was not initialised (run `alpha init`)")
    values: dict[str, Any] = {
        "seq": head.last_seq + 1,
        "at": iso(now),
        "actor": (actor or "unknown")[:200],
        "agent": agent,
        "event": event,
        "action": action,
        "status": status,
        "ref": (ref[:200] if ref else ref),
        "outbox_id": outbox_id,
        "reasons": _dumps(list(reasons)),
        "data": _dumps(redact(data or {})),
        "prev_hash": head.last_hash,
    }
    values["row_hash"] = _digest([values[k] for k in _HASHED])
    head.last_seq = values["seq"]
    head.last_hash = values["row_hash"]
    s.add(head)
    buf = s.info.get(_BUFFER)
    if buf is not None:
        buf.append(values)
        return None
    entry = AuditEntry(**values)
    s.add(entry)
    return entry


@dataclass
class VerifyResult:
    ok: bool
    rows: int
    head_seq: int
    head_hash: str
    problem: str | None = None
    first_bad_seq: int | None = None

    def to_dict(self) -> dict:
        return {"ok": self.ok, "rows": self.rows, "head_seq": self.head_seq, "head_hash": self.head_hash,
                "problem": self.problem, "first_bad_seq": self.first_bad_seq}


def verify(s: Session, batch: int = 5000) -> VerifyResult:
    """Walk the chain in order; name the first row that was edited, deleted or reordered."""
    head = s.get(AuditHead, 1)
    # the walk stops at the head as read now: rows that writers append meanwhile (each with its head, in one
    # transaction) are not part of this check, and are not mistaken for rows the head does not cover
    bound = head.last_seq if head is not None else None
    expected_seq, expected_prev, count = 1, GENESIS_HASH, 0
    last = 0
    while True:
        q = select(AuditEntry).where(col(AuditEntry.seq) > last)
        if bound is not None:
            q = q.where(col(AuditEntry.seq) <= bound)
        rows = s.exec(q.order_by(col(AuditEntry.seq)).limit(batch)).all()
        if not rows:
            break
        for e in rows:
            count += 1
            if e.seq != expected_seq:
                missing = (f"row {expected_seq}" if e.seq == expected_seq + 1
                           else f"rows {expected_seq}-{e.seq - 1}")
                return _bad(head, count, expected_seq,
                            f"{missing} deleted: the chain jumps from row {expected_seq - 1} to row {e.seq}")
            if row_digest(e) != e.row_hash:
                return _bad(head, count, e.seq,
                            f"row {e.seq} was edited (or moved here from elsewhere): its content does not match "
                            f"its hash (event {e.event}, at {e.at})")
            if e.prev_hash != expected_prev:
                return _bad(head, count, e.seq,
                            f"row {e.seq} is out of order or was replaced: it does not follow row {e.seq - 1}")
            expected_prev = e.row_hash
            expected_seq += 1
            last = e.seq
    if head is None:
        return VerifyResult(False, count, 0, "", "the audit head row is missing", None)
    if head.last_seq != expected_seq - 1 or head.last_hash != expected_prev:
        return _bad(head, count, expected_seq,
                    f"rows after {expected_seq - 1} deleted: the head records {head.last_seq} rows")
    # rows beyond every head a writer committed were added outside the chain (the newest row first, the head
    # after it: a writer commits both at once, so a row committed in between is covered by the second read)
    top = s.exec(select(func.max(AuditEntry.seq))).one() or 0
    now_head = s.exec(select(AuditHead.last_seq).where(AuditHead.id == 1)).one()
    if top > now_head:
        return _bad(head, count, now_head + 1,
                    f"rows {now_head + 1}-{top} are not covered by the head (added outside the chain)")
    return VerifyResult(True, count, head.last_seq, head.last_hash)


def _bad(head: AuditHead | None, count: int, seq: int, problem: str) -> VerifyResult:
    return VerifyResult(False, count, head.last_seq if head else 0, head.last_hash if head else "", problem, seq)
