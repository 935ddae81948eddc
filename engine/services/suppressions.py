"""Adding an address to the suppression list: one function for every path that does it.

The console and the CLI (``App.suppress``), GHL webhooks (DND, bounces, complaints, unsubscribe replies), the
one-click unsubscribe link and the GHL executor all suppress addresses. They used to write the row in two places
that disagreed: the manual path did not see another spelling of a suppressed mailbox as already suppressed (it added
a second row), kept the whole detail, cleaned the address differently and audited without the canonical key.
``add_suppression`` is now the only writer of ``Suppression`` rows:

- the address is stored as ``engine.core.identity.normalise_address`` writes it, keyed by ``canonical_address``
  (``engine/adapters/models.py`` also sets the key on every ORM write);
- it is idempotent by mailbox: an address already suppressed under any spelling is not added again (False);
- each addition is audited as ``suppression.add`` with its source, detail and canonical key, in the caller's
  transaction.
"""
from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, select

from engine.adapters import audit
from engine.adapters.models import Suppression
from engine.core.errors import InvalidRequest
from engine.core.identity import Rules, canonical_address, normalise_address
from engine.core.statuses import SuppressionReason
from engine.rules.guardrails.recipients import syntax_problem

SUPPRESSION_REASONS = tuple(SuppressionReason)
_DETAIL = 500   # characters of detail kept (the row and its audit entry)


def checked_request(email: str, reason: str) -> str:
    """``email`` in its stored form, for a person's request to suppress it (console, CLI). Raises InvalidRequest
    naming the bad reason or address, where a webhook's bad address is only skipped."""
    if reason not in SUPPRESSION_REASONS:
        raise InvalidRequest(f"reason must be one of {', '.join(SUPPRESSION_REASONS)}, not {reason!r}")
    address = normalise_address(email)
    problem = syntax_problem(address)
    if problem:
        raise InvalidRequest(f"{address!r} is not an email address: {problem}")
    return address


def add_suppression(s: Session, email: str | None, reason: str, source: str, detail: str, now: datetime, actor: str,
                    rules: Rules | None = None) -> bool:
    """Suppress ``email`` in the caller's transaction; False when it, or another spelling of the same mailbox, is
    already suppressed, or it is not an email address. ``rules``: the address rules (default: the process's)."""
    address = normalise_address(email)[:320]
    if not address or syntax_problem(address):
        return False
    if s.get(Suppression, address) is not None:
        return False
    key = canonical_address(address, rules)[:320] or None
    if key and s.exec(select(Suppression.email).where(Suppression.address_key == key).limit(1)).first() is not None:
        return False
    detail = (detail or "")[:_DETAIL]
    s.add(Suppression(email=address, address_key=key, reason=str(reason), source=source, detail=detail,
                      created_at=now))
    audit.append(s, event="suppression.add", actor=actor, now=now, ref=address, status=str(reason),
                 data={"source": source, "detail": detail, "address_key": key})
    return True
