"""AI-vs-human blind comparison: review sets, blind items, labels, analysis.

``generate`` draws leads stratified by the AI's tier into a review set, interleaved so the order gives nothing
away. A reviewer only ever receives ``BlindItem`` (lead facts, no tier, score, reasons or route): the AI label
stays in the database and is read only by ``analyze``.
"""
from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from sqlalchemy import func
from sqlmodel import col, select

from engine.adapters.ports import Configured, Readable, ReadableConfigured
from engine.adapters import audit
from engine.rules.agreement import analyze as analyze_pairs
from engine.rules.agreement import normalise_label
from engine.core.errors import InvalidRequest
from engine.adapters.models import Lead, ReviewItem, stored_id

LABELS = ("1", "2", "3", "disqualified")
# The only lead fields a reviewer sees. Nothing the AI derived (tier, score, icp, disqualified_reason, route).
BLIND_FIELDS = ("first_name", "last_name", "title", "company", "company_domain", "employee_count", "industry",
                "country", "region", "linkedin_url", "website_visits")


@dataclass(frozen=True)
class BlindItem:
    item_id: int
    set_id: int
    position: int
    total: int
    labeled: int
    facts: dict

    def to_dict(self) -> dict:
        return asdict(self)



class Scoring(Configured, Protocol):
    """What generating a blind set uses of the engine (engine.app.App): the store, settings and clock, and
    ``rescore`` for a lead that was never scored."""

    def rescore(self, lead: Lead) -> Any: ...


def ai_label(lead: Lead) -> str:
    return "disqualified" if lead.tier is None else str(lead.tier)


def generate(app: Scoring, n: int, seed: int | None = None, actor: str = "system") -> dict:
    """A new review set of ``n`` leads, stratified by AI tier (as even as the strata allow)."""
    if n < 1:
        raise InvalidRequest("a review set needs at least one lead")
    with app.store.read() as s:
        leads = list(s.exec(select(Lead).order_by(col(Lead.id))).all())
        last = s.exec(select(func.max(ReviewItem.set_id))).one()
    if not leads:
        raise InvalidRequest("there are no leads: import some first (alpha leads import FILE)")
    rng = random.Random(seed)
    strata = defaultdict(list)
    for lead in leads:
        if lead.score is None and lead.disqualified_reason is None:
            app.rescore(lead)  # never scored: score it now so it has an AI label
        strata[ai_label(lead)].append(lead)
    for pool in strata.values():
        rng.shuffle(pool)
    picked: list[Lead] = []
    while len(picked) < n and any(strata.values()):
        for label in LABELS:  # round-robin across tiers: rare tiers are represented
            if strata.get(label) and len(picked) < n:
                picked.append(strata[label].pop())
    rng.shuffle(picked)
    set_id = (last or 0) + 1
    now = app.clock()
    with app.store.write() as s:
        for pos, lead in enumerate(picked):
            s.add(lead)
            s.add(ReviewItem(set_id=set_id, position=pos, lead_id=stored_id(lead), ai_label=ai_label(lead),
                              created_at=now))
        audit.append(s, event="review.generated", actor=actor, now=now, ref=str(set_id), status="open",
                     data={"size": len(picked)})
    counts: defaultdict[str, int] = defaultdict(int)
    for lead in picked:
        counts[ai_label(lead)] += 1
    return {"set_id": set_id, "size": len(picked), "by_ai_tier": dict(counts)}


def latest_set(app: Readable) -> int | None:
    with app.store.read() as s:
        return s.exec(select(func.max(ReviewItem.set_id))).one()


def next_item(app: Configured, set_id: int | None = None) -> BlindItem | None:
    """The next unlabeled item of a set, as facts only; None when the set is done."""
    set_id = set_id or latest_set(app)
    if set_id is None:
        return None
    with app.store.read() as s:
        total = s.exec(select(func.count()).select_from(ReviewItem).where(ReviewItem.set_id == set_id)).one()
        labeled = s.exec(select(func.count()).select_from(ReviewItem).where(
            ReviewItem.set_id == set_id, col(ReviewItem.human_label).is_not(None))).one()
        item = s.exec(select(ReviewItem).where(ReviewItem.set_id == set_id, col(ReviewItem.human_label).is_(None))
                      .order_by(col(ReviewItem.position))).first()
        if item is None:
            return None
        lead = s.get(Lead, item.lead_id)
    facts = {f: getattr(lead, f) for f in BLIND_FIELDS}
    return BlindItem(stored_id(item), set_id, item.position, total, labeled, facts)


def label(app: Configured, item_id: int, value, actor: str, note: str | None = None) -> None:
    try:
        lab = normalise_label(value)
    except ValueError as e:
        raise InvalidRequest(str(e)) from None
    now = app.clock()
    with app.store.write() as s:
        item = s.get(ReviewItem, item_id)
        if item is None:
            raise InvalidRequest(f"review item {item_id} does not exist")
        item.human_label, item.note, item.labeled_by, item.labeled_at = lab, (note or None), actor, now
        s.add(item)
        audit.append(s, event="review.labeled", actor=actor, now=now, ref=str(item_id), status=lab)


def undo(app: Configured, set_id: int, actor: str) -> int | None:
    """Clear the reviewer's most recent label in the set; returns the item id (None if nothing to undo)."""
    now = app.clock()
    with app.store.write() as s:
        item = s.exec(select(ReviewItem).where(ReviewItem.set_id == set_id, ReviewItem.labeled_by == actor,
                                               col(ReviewItem.human_label).is_not(None))
                      .order_by(col(ReviewItem.labeled_at).desc(), col(ReviewItem.id).desc())).first()
        if item is None:
            return None
        item.human_label = item.note = item.labeled_by = item.labeled_at = None
        s.add(item)
        audit.append(s, event="review.undo", actor=actor, now=now, ref=str(item.id), status="unlabeled")
        return item.id


def analyze(app: ReadableConfigured, set_id: int | None = None) -> dict:
    """Agreement, Cohen's kappa, confusion, per-tier precision/recall over the labeled items of a set
    (default: the newest), with the pass rule from production.json's ``comparison``."""
    set_id = set_id or latest_set(app)
    with app.store.read() as s:
        rows = s.exec(select(ReviewItem, Lead).join(Lead, col(Lead.id) == ReviewItem.lead_id).where(
            ReviewItem.set_id == set_id, col(ReviewItem.human_label).is_not(None))
            .order_by(col(ReviewItem.position))).all()
    cfg = app.settings.production.comparison
    result = analyze_pairs([(i.ai_label, i.human_label) for i, _ in rows], min_labels=cfg.min_labels,
                           threshold=cfg.agreement_threshold, notes=[i.note for i, _ in rows])
    for d in result.get("disagreements", []):
        item, lead = rows[d["index"]]
        d.update({"item_id": item.id, "lead_id": lead.id, "email": lead.email, "company": lead.company,
                  "title": lead.title})
    result["set_id"] = set_id
    return result
