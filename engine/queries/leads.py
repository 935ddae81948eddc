"""Lead lookups for people: a searchable, paginated list and one lead by id (the console's Leads page).

Every query filters, counts and paginates in SQL (never loads the table), on SQLite and PostgreSQL alike.
``errors_csv`` turns an import's per-row error report into a spreadsheet-safe CSV.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Iterable

from sqlalchemy import func, or_
from sqlmodel import col, select

from engine.adapters.ports import Stored
from engine.core.errors import InvalidRequest
from engine.adapters.leads_csv import neutralise
from engine.adapters.models import Lead

TIER_FILTERS = ("all", "1", "2", "3", "disqualified", "unscored")
MAX_PER_PAGE = 500
MAX_QUERY = 200
# What the list shows per lead (no free-form data blobs: the list stays small and fast).
LIST_COLUMNS = ("id", "email", "company", "tier", "score", "status", "route", "title", "first_name", "last_name",
                "industry", "country", "employee_count", "source", "created_at")
ERROR_COLUMNS = ("row", "field", "problem")


@dataclass(frozen=True)
class LeadPage:
    rows: list[dict]   # LIST_COLUMNS per lead, newest first
    total: int         # leads matching the filter (all pages)
    page: int          # 1-based, clamped to the last page
    pages: int         # at least 1
    per_page: int


def _like(query: str) -> str:
    """A LIKE pattern matching ``query`` anywhere, with % _ and the escape character taken literally."""
    q = query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{q}%"


def _filters(query: str, tier: str) -> list:
    if tier not in TIER_FILTERS:
        raise InvalidRequest(f"unknown tier filter {tier!r}; allowed: {', '.join(TIER_FILTERS)}")
    out = []
    q = (query or "").strip()
    if len(q) > MAX_QUERY:
        raise InvalidRequest(f"the search is longer than {MAX_QUERY} characters")
    if q:
        pat = _like(q)
        out.append(or_(col(Lead.email).ilike(pat, escape="\\"), col(Lead.company).ilike(pat, escape="\\")))
    if tier in ("1", "2", "3"):
        out.append(col(Lead.tier) == int(tier))
    elif tier == "disqualified":
        out += [col(Lead.tier).is_(None), col(Lead.disqualified_reason).is_not(None)]
    elif tier == "unscored":
        out += [col(Lead.score).is_(None), col(Lead.disqualified_reason).is_(None)]
    return out


def search_leads(app: Stored, query: str = "", tier: str = "all", page: int = 1, per_page: int = 50) -> LeadPage:
    """Leads whose email or company contains ``query`` (case-insensitive), optionally of one tier
    (``TIER_FILTERS``: 1, 2, 3, disqualified = scored out, unscored = never scored), newest first, one page."""
    if not 1 <= per_page <= MAX_PER_PAGE:
        raise InvalidRequest(f"per_page must be 1..{MAX_PER_PAGE}, got {per_page}")
    where = _filters(query, str(tier))
    cols = [getattr(Lead, c) for c in LIST_COLUMNS]
    with app.store.read() as s:
        total = s.exec(select(func.count()).select_from(Lead).where(*where)).one()
        pages = max(1, -(-total // per_page))
        page = min(max(1, int(page)), pages)
        result = s.exec(select(*cols).where(*where).order_by(col(Lead.id).desc())
                        .offset((page - 1) * per_page).limit(per_page)).all()
    rows = [dict(zip(LIST_COLUMNS, r)) for r in result]
    return LeadPage(rows=rows, total=total, page=page, pages=pages, per_page=per_page)


def get_lead(app: Stored, lead_id: int) -> Lead | None:
    """One lead (detached from the session), or None when there is no such lead."""
    with app.store.read() as s:
        lead = s.get(Lead, int(lead_id))
        if lead is not None:
            s.expunge(lead)
        return lead


def errors_csv(errors: Iterable[dict]) -> str:
    """An import's error report (``{"row", "field", "error"}`` dicts) as CSV text: row, field, problem. Every cell
    is neutralised against spreadsheet formula injection (the problem quotes the file's own cells)."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(ERROR_COLUMNS)
    for e in errors:
        w.writerow([neutralise("" if v is None else str(v)) for v in (e.get("row"), e.get("field"), e.get("error"))])
    return buf.getvalue()
