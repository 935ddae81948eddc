"""The lead pipeline: score -> exclusions -> route -> draft -> gateway, with a typed envelope handed from
stage to stage and stored with the lead.

``shadow_run`` takes N leads through every stage with the gateway in forced shadow: every rule decides, the
would-be email is stored with its full decision, and nothing leaves, whatever the rollout phase.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Protocol

import sqlalchemy as sa
from sqlmodel import col, select

from engine.adapters.ports import Configured
from engine.rules import handoff
from engine.adapters.db import insert_many
from engine.core.clock import UTC, as_utc, iso
from engine.rules.geo import country_timezone
from engine.adapters.models import Draft, Envelope, Lead, OutboxItem, ShadowRun, stored_id, table_of
from engine.services.control import ControlPlane
from engine.services.gateway import Gateway

AGENT = "GHL_MASTER"


class PipelineEngine(Configured, Protocol):
    """What the pipeline uses of the engine (engine.app.App, which a service cannot import): the store, settings
    and clock, the unsubscribe secret, the gateway, the control plane, the LLM chain, ICP scoring and lead import."""

    @property
    def secret(self) -> bytes: ...

    @property
    def gateway(self) -> Gateway: ...

    @property
    def control(self) -> ControlPlane: ...

    @property
    def llm(self) -> Any: ...

    def rescore(self, lead: Any) -> Any: ...

    def import_leads(self, path: str | Path) -> dict: ...


@dataclass
class LeadOutcome:
    lead_id: int
    email: str
    tier: int | None
    stage: str              # where it stopped: disqualified | stopped | gateway
    status: str             # disqualified | stopped | shadowed | denied | deferred | ...
    reasons: list[str] = field(default_factory=list)
    sequence: str | None = None
    step: int | None = None
    outbox_id: int | None = None


def _facts(lead: Lead) -> dict:
    src = f"lead {lead.id} ({lead.source or 'import'})"
    return {
        "email": (lead.email, src),
        "company": (lead.company, src),
        "title": (lead.title, src),
        "employee_count": (lead.employee_count, src),
        "industry": (lead.industry, src),
        "country": (lead.country, src),
        "timezone": (lead.timezone, src),
        "consent": ("legitimate interest (B2B)", "policy"),
    }


def lead_action(app: PipelineEngine, lead: Lead, fit, draft, now, **extra) -> dict:
    """The gateway action that sends ``draft`` to ``lead``. Its grounding evidence is the lead record (the facts
    behind the tier and the draft), as of its last update."""
    action = {"agent": AGENT, "action": "send_email", "to": lead.email,
              "from": app.settings.production.sender.from_addresses[0], "subject": draft.subject,
              "html": draft.html, "text": draft.text, "lead_id": lead.id, "tier": fit.tier, "company": lead.company,
              "evidence": [{"source": f"lead record {lead.id} ({lead.source or 'import'})",
                            "retrieved_at": iso(lead.updated_at or lead.created_at or now),
                            "claim": fit.explain()[:300]}], **extra}
    if lead.timezone and lead.timezone.strip():
        action["timezone"] = lead.timezone  # as stored: the gateway refuses a zone it cannot load
    else:
        zone = country_timezone(lead.country)  # no zone of its own: its country's (None when unknown)
        if zone:
            action["timezone"] = zone
    return action


@dataclass
class _Plan:
    """One lead on its way through the stages."""

    lead: Lead
    trail: list[handoff.Envelope]
    fit: Any = None
    sequence: str | None = None
    step: int | None = None
    route_reason: str = ""
    outcome: LeadOutcome | None = None   # set where it stops
    draft: Any = None                    # the DraftResult
    action: dict | None = None

    def touch(self) -> tuple[str, int]:
        """The (sequence, step) the lead is drafted for: set by ``_route`` unless the lead stopped there."""
        if self.sequence is None or self.step is None:
            raise ValueError(f"lead {self.lead.id} has no sequence step: it was not routed")
        return self.sequence, self.step

    def send_action(self) -> dict:
        """The gateway action of a drafted lead: set by ``_drafted`` with its draft."""
        if self.action is None:
            raise ValueError(f"lead {self.lead.id} has no action: it was not drafted")
        return self.action

    def final(self) -> LeadOutcome:
        """The outcome, set where the lead stopped or when the gateway decided."""
        if self.outcome is None:
            raise ValueError(f"lead {self.lead.id} has no outcome: it did not reach the gateway")
        return self.outcome


class Pipeline:
    def __init__(self, app: PipelineEngine, use_llm: bool = False, shadow: bool = True):
        from engine.rules.messaging import load_pack

        self.app = app
        self.pack = load_pack(app.settings.config_dir)
        self.use_llm = use_llm
        self.shadow = shadow

    # the stages, split where the slow parts (the LLM, the database) can be done for many leads at once

    def _route(self, lead: Lead, now) -> _Plan:
        """Score, exclude and route one lead (pure; no I/O)."""
        from engine.rules.router import route

        app = self.app
        env = handoff.start(lead.id, _facts(lead))
        plan = _Plan(lead, [env])
        fit = plan.fit = app.rescore(lead)
        env = handoff.hand_off(env, "ENRICHER", "found", "lead in the territory", now)
        env = handoff.hand_off(env, "SEGMENTOR", "enriched", "facts from the lead record", now)
        env = handoff.hand_off(
            env, "CRAFTER", "disqualified" if fit.disqualified else f"tier {fit.tier}", fit.explain(), now,
            {"tier": (fit.tier, "icp"), "exclusions": (fit.reason if fit.disqualified else "none", "icp + exclusions"),
             "suppression": ("checked by the gateway", "gateway")})
        plan.trail.append(env)
        if fit.disqualified:
            plan.outcome = LeadOutcome(stored_id(lead), lead.email, None, "disqualified", "disqualified",
                                       [fit.disqualifier or ""])
            return plan
        r = route(lead, now, self.pack.routing)
        lead.route = plan.sequence = r.sequence
        if r.stopped:
            plan.outcome = LeadOutcome(stored_id(lead), lead.email, fit.tier, "stopped", "stopped", [r.reason])
            return plan
        plan.step = self.pack.sequence(r.sequence).steps[0].step  # the first touch
        plan.route_reason = r.reason
        return plan

    def _drafted(self, plan: _Plan, d: Any, now) -> None:
        """Record the draft (or why there is none) on the plan and build the gateway action."""
        from engine.services.drafting import NoTemplate

        lead = plan.lead
        if isinstance(d, NoTemplate):
            plan.outcome = LeadOutcome(stored_id(lead), lead.email, plan.fit.tier, "draft", "no_template",
                                       [str(d)[:120]], plan.sequence, plan.step)
            return
        if isinstance(d, Exception):
            raise d
        plan.draft = d
        plan.trail.append(handoff.hand_off(plan.trail[-1], "GATEKEEPER",
                                           f"drafted {d.template_id} v{d.template_version}",
                                           f"{plan.sequence} sequence ({plan.route_reason})", now))
        plan.action = lead_action(self.app, lead, plan.fit, d, now)

    def _decided(self, plan: _Plan, res, now) -> None:
        lead = plan.lead
        plan.outcome = LeadOutcome(stored_id(lead), lead.email, plan.fit.tier, "gateway", res.status, res.codes,
                                   plan.sequence, plan.step, res.outbox_id)
        plan.trail.append(handoff.hand_off(plan.trail[-1], "GHL_MASTER", res.status, ", ".join(res.codes) or "allowed",
                                           now))

    @property
    def _llm(self):
        return self.app.llm if self.use_llm else None

    def prepare(self, lead: Lead, now) -> tuple[LeadOutcome | None, dict | None, list[handoff.Envelope]]:
        """Score, exclude, route and draft one lead. Returns (final outcome if it stops here, the action to submit,
        the envelopes)."""
        from engine.services.drafting import DraftResult, NoTemplate, draft_for, save_draft

        plan = self._route(lead, now)
        if plan.outcome is None:
            d: DraftResult | NoTemplate
            try:
                # only approved templates are used outside shadow
                d = draft_for(lead, (plan.sequence, plan.step), self.pack, self.app.settings, self.app.secret,
                              llm=self._llm, now=now, approved_only=not self.shadow)
            except NoTemplate as e:
                d = e
            self._drafted(plan, d, now)
            if plan.draft is not None:
                save_draft(self.app.store, stored_id(lead), *plan.touch(), plan.draft, now)
        if plan.outcome is not None:
            return plan.outcome, None, plan.trail
        return None, {"action": plan.action, "sequence": plan.sequence, "step": plan.step,
                      "tier": plan.fit.tier}, plan.trail

    def _store(self, plans: list[_Plan], now, leads_only: bool = False) -> None:
        """The leads' new score, tier and route, and every envelope: one transaction, two bulk statements
        (``leads_only``: the leads alone, before the gateway decides on their stored tier)."""
        lead_t, env_t = table_of(Lead), table_of(Envelope)
        cols = ("score", "tier", "icp", "disqualified_reason", "route")
        update = (sa.update(lead_t).where(lead_t.c.id == sa.bindparam("lead_pk"))
                  .values({c: sa.bindparam(f"new_{c}") for c in cols}))
        leads = [{"lead_pk": p.lead.id, **{f"new_{c}": getattr(p.lead, c) for c in cols}} for p in plans]
        envelopes = [] if leads_only else [
            {"lead_id": p.lead.id, "stage": env.stage, "envelope": env.to_dict(), "created_at": now}
            for p in plans for env in p.trail]
        with self.app.store.write_plain() as s:
            conn = s.connection()
            if leads:
                conn.execute(update, leads)
            insert_many(conn, env_t, envelopes)

    def run_one(self, lead: Lead, key: str) -> LeadOutcome:
        return self.run_many([lead], [key])[0]

    def run_many(self, leads: list[Lead], keys: list[str]) -> list[LeadOutcome]:
        """Take ``leads`` through every stage, ``keys[i]`` being the idempotency key of lead i's send.

        Per lead, exactly what ``prepare`` + ``gateway.submit`` do, with the bulk work done once for all of them:
        the drafts (LLM calls in flight together when an LLM is used), one transaction for the drafts, one for
        the leads and envelopes, and the decisions through ``gateway.submit_many`` (the results of one submit
        after the other: order, idempotency, audit chain and limits are the same)."""
        from engine.services.drafting import draft_many, save_drafts

        app = self.app
        now = app.clock()
        plans = [self._route(lead, now) for lead in leads]
        todo = [p for p in plans if p.outcome is None]
        drafts = draft_many([(p.lead, (p.sequence, p.step)) for p in todo], self.pack, app.settings, app.secret,
                            llm=self._llm, now=now, approved_only=not self.shadow)  # approved only outside shadow
        for p, d in zip(todo, drafts):
            self._drafted(p, d, now)
        ready = [p for p in todo if p.draft is not None]
        save_drafts(app.store, [(stored_id(p.lead), *p.touch(), p.draft) for p in ready], now)
        key_of = {id(lead): key for lead, key in zip(leads, keys)}
        self._store(ready, now, leads_only=True)  # the gateway decides on the stored tier: the fresh one
        results = app.gateway.submit_many([{**p.send_action(), "idempotency_key": key_of[id(p.lead)]} for p in ready],
                                          shadow=self.shadow)
        for p, res in zip(ready, results):
            self._decided(p, res, now)
        self._store(plans, now)
        return [p.final() for p in plans]


SHADOW_BATCH = 200  # leads per batch: the drafts and envelopes of a batch are written in one transaction


def shadow_run(app: PipelineEngine, contacts: int, progress: Callable[[int, int], None] | None = None,
               use_llm: bool = False, batch: int = SHADOW_BATCH) -> dict:
    """Take the first ``contacts`` leads through every stage; nothing leaves. Returns the stored summary."""
    pipe = Pipeline(app, use_llm=use_llm, shadow=True)
    started = app.clock()
    with app.store.write_plain() as s:
        run = ShadowRun(started_at=started, contacts=0)
        s.add(run)
        s.flush()
        run_id = run.id
    with app.store.read() as s:
        total = min(max(0, contacts), s.exec(select(sa.func.count()).select_from(Lead)).one())
    outcomes: list[LeadOutcome] = []
    last_id = None
    while len(outcomes) < total:
        q = select(Lead).order_by(col(Lead.id)).limit(min(batch, total - len(outcomes)))
        if last_id is not None:
            q = q.where(col(Lead.id) > last_id)
        with app.store.read() as s:
            leads = list(s.exec(q).all())
        if not leads:
            break  # leads were deleted meanwhile
        last_id = leads[-1].id
        outcomes += pipe.run_many(leads, [f"shadow-{run_id}-{lead.id}" for lead in leads])
        if progress:
            progress(len(outcomes), total)
    summary = summarise(outcomes)
    summary.update({"run_id": run_id, "started_at": iso(started), "finished_at": iso(app.clock())})
    with app.store.write_plain() as s:
        done = s.get(ShadowRun, run_id)
        assert done is not None, f"shadow run {run_id} vanished while it ran"
        done.finished_at, done.contacts, done.summary = app.clock(), len(outcomes), summary
        s.add(done)
    return summary


def score_leads(app: PipelineEngine, batch: int = 2000, progress: Callable[[int, int], None] | None = None) -> dict:
    """Score every lead against the ICP and store score, tier, explanation and disqualification (``rescore``),
    reading only the columns scoring needs and writing only the leads whose result changed, ``batch`` leads per
    transaction. Returns {"leads", "changed", "disqualified", "by_tier"}."""
    t = table_of(Lead)
    inputs = ("id", "email", "title", "company", "company_domain", "employee_count", "industry", "country")
    outputs = ("score", "tier", "icp", "disqualified_reason")
    update = (sa.update(t).where(t.c.id == sa.bindparam("lead_pk"))
              .values({c: sa.bindparam(f"new_{c}") for c in outputs}))
    with app.store.read() as s:
        total = s.exec(select(sa.func.count()).select_from(Lead)).one()
    done = changed = disqualified = 0
    tiers: Counter = Counter()
    last_id = 0
    if progress:
        progress(0, total)
    while True:
        with app.store.write_plain() as s:
            conn = s.connection()
            rows = conn.execute(sa.select(*(t.c[c] for c in inputs + outputs)).where(t.c.id > last_id)
                                .order_by(t.c.id).limit(batch)).mappings().all()
            if not rows:
                break
            new = []
            for row in rows:
                lead = SimpleNamespace(**row)
                fit = app.rescore(lead)
                disqualified += fit.disqualified
                tiers["disqualified" if fit.disqualified else f"tier {fit.tier}"] += 1
                if any(getattr(lead, c) != row[c] for c in outputs):
                    new.append({"lead_pk": row["id"], **{f"new_{c}": getattr(lead, c) for c in outputs}})
            if new:
                conn.execute(update, new)
        changed += len(new)
        done += len(rows)
        last_id = rows[-1]["id"]
        if progress:
            progress(done, max(total, done))
    return {"leads": done, "changed": changed, "disqualified": disqualified, "by_tier": dict(tiers)}


def summarise(outcomes: list[LeadOutcome]) -> dict:
    by_status = Counter(o.status for o in outcomes)
    by_tier = Counter("disqualified" if o.status == "disqualified" else f"tier {o.tier}" for o in outcomes)
    by_reason = Counter(code for o in outcomes for code in o.reasons if code)
    by_sequence = Counter(o.sequence for o in outcomes if o.sequence)
    return {"leads": len(outcomes), "by_status": dict(by_status), "by_tier": dict(by_tier),
            "by_reason": dict(by_reason.most_common()), "by_sequence": dict(by_sequence)}


def export_shadow(app: PipelineEngine, path: str | Path, run_id: int | None = None) -> int:
    """Write the shadow emails (of one run, default the newest) to CSV; returns the number of rows."""
    from engine.adapters.leads_csv import write_safe_csv

    with app.store.read() as s:
        if run_id is None:
            run = s.exec(select(ShadowRun).order_by(col(ShadowRun.id).desc())).first()
            run_id = run.id if run else None
        if run_id is None:
            rows = []
        else:
            rows = list(s.exec(select(OutboxItem).where(col(OutboxItem.idempotency_key).like(f"shadow-{run_id}-%"))
                               .order_by(col(OutboxItem.id))).all())
    cols = ["outbox_id", "lead_id", "to", "tier", "status", "reasons", "subject", "text", "html", "list_unsubscribe"]
    return write_safe_csv(path, cols, (["" if v is None else str(v) for v in (
        r.id, r.lead_id, r.to_email, r.tier, r.status, " ".join(x["code"] for x in (r.reasons or [])),
        r.subject, r.text, r.html, (r.headers or {}).get("List-Unsubscribe"))] for r in rows))


# ------------------------------------------------------------------------------------------- daily cycle

def _progress_all(app: PipelineEngine) -> dict[str, tuple[str, int, datetime | None]]:
    """Every lead's sequence, the last step that went out and when (from the outbox, the source of truth), by
    lead id (as the outbox stores it): one query, the newest sent sequence step of each lead (a lead with no
    such step is absent). On equal send times the newer outbox row wins."""
    o = table_of(OutboxItem)
    newest = sa.func.row_number().over(partition_by=o.c.lead_id,
                                       order_by=(o.c.sent_at.desc().nulls_last(), o.c.id.desc())).label("n")
    ranked = (sa.select(o.c.lead_id, o.c.idempotency_key, o.c.sent_at, newest)
              .where(o.c.status == "sent", o.c.idempotency_key.like("seq-%"), o.c.lead_id.is_not(None))
              .subquery())
    with app.store.read() as s:
        rows = s.execute(sa.select(ranked.c.lead_id, ranked.c.idempotency_key, ranked.c.sent_at)
                         .where(ranked.c.n == 1)).all()
    out = {}
    for lead_id, key, sent_at in rows:
        _, _, seq, step = key.split("-", 3)
        out[lead_id] = (seq, int(step), sent_at)
    return out


_NO_PROGRESS: tuple[str | None, int, datetime | None] = (None, 0, None)
_LAST = datetime.max.replace(tzinfo=UTC)  # after any due time
_DAILY_COLS = ("score", "tier", "icp", "disqualified_reason", "route")  # what the daily run changes on a lead
DAILY_WRITE_BATCH = 500  # changed leads per write transaction


@dataclass
class _Due:
    """One lead of the daily run, scored and routed, and where it stands in the day's order."""

    lead: Lead
    fit: Any
    status: str | None = None   # set when nothing is to be sent: disqualified | stopped | finished | waiting
    sequence: str | None = None
    step: Any = None            # the router's NextStep when one is due
    key: tuple = ()
    changed: bool = False       # score, tier, explanation or route differ from the stored ones

    def due_step(self) -> tuple[str, Any]:
        """(sequence, NextStep) of a lead with a step due (its status is None)."""
        if self.sequence is None or self.step is None:
            raise ValueError(f"lead {self.lead.id} has no step due")
        return self.sequence, self.step


def _tier_rank(tier: Any) -> int:
    return tier - 1 if tier in (1, 2, 3) else 3  # tier 1, 2, 3, then unscored and disqualified


def daily_run(app: PipelineEngine, import_path: str | Path | None = None,
              progress: Callable[[int, int], None] | None = None,
              use_llm: bool = False) -> dict:
    """The day's work, once: import (optional), score, route, draft the next due step of each lead, and queue it
    through the gateway (the phase decides: shadowed, pending approval, deferred or sent). Safe to run twice
    the same day: each (lead, sequence, step) has one idempotency key, so a second run replays, never resends.

    The leads go to the gateway best first, so that under a daily or warm-up cap the best leads are the ones
    sent: highest tier first (1, 2, 3, unscored last), then the step that has been due longest (the last sent
    step's time plus the next step's delay; for a first touch, when the lead was created), then lead id. The
    order needs each lead's fresh score and its progress through its sequence: one read of the leads and one
    grouped read of the outbox, then an in-memory sort. The leads whose score or route changed are written
    (only those columns) ``DAILY_WRITE_BATCH`` at a time before the first submission, so that the gateway,
    which decides on the stored tier, sees the tier the lead was ranked and drafted with."""
    from engine.services.drafting import NoTemplate, draft_for, save_draft
    from engine.rules.router import next_step, route

    started = app.clock()
    imported = app.import_leads(import_path) if import_path else None
    pipe = Pipeline(app, use_llm=use_llm, shadow=False)
    with app.store.read() as s:
        leads = list(s.exec(select(Lead).order_by(col(Lead.id))).all())
    done = _progress_all(app)
    plans: list[_Due] = []
    for lead in leads:
        now = app.clock()
        stored = [getattr(lead, c) for c in _DAILY_COLS]
        p = _Due(lead, app.rescore(lead))
        due_at = _LAST
        if p.fit.disqualified:
            p.status = "disqualified"
        else:
            r = route(lead, now, pipe.pack.routing)
            seq, last, last_at = done.get(str(lead.id), _NO_PROGRESS)
            seq = p.sequence = seq or r.sequence
            lead.route = seq
            nxt = None if r.stopped else next_step(lead, pipe.pack.sequence(seq), last, last_at, now)
            if r.stopped or nxt is None:
                p.status = "stopped" if r.stopped else "finished"
            elif not nxt.due:
                p.status = "waiting"
            else:
                p.step = nxt
                due_at = nxt.due_at if last else as_utc(lead.created_at or now)
        p.key = (_tier_rank(p.fit.tier), due_at, lead.id or 0)
        p.changed = [getattr(lead, c) for c in _DAILY_COLS] != stored
        plans.append(p)
    plans.sort(key=lambda p: p.key)
    lead_t = table_of(Lead)
    update = (sa.update(lead_t).where(lead_t.c.id == sa.bindparam("lead_pk"))
              .values({c: sa.bindparam(f"new_{c}") for c in _DAILY_COLS}))
    changed = [{"lead_pk": p.lead.id, **{f"new_{c}": getattr(p.lead, c) for c in _DAILY_COLS}}
               for p in plans if p.changed]
    for at in range(0, len(changed), DAILY_WRITE_BATCH):
        with app.store.write_plain() as s:
            s.connection().execute(update, changed[at:at + DAILY_WRITE_BATCH])
    counts: Counter = Counter()
    for i, p in enumerate(plans, 1):
        lead, fit, status = p.lead, p.fit, p.status
        if status is None:
            now = app.clock()
            seq, nxt = p.due_step()
            try:
                d = draft_for(lead, (seq, nxt.step), pipe.pack, app.settings, app.secret,
                              llm=app.llm if use_llm else None, now=now, approved_only=True)
            except NoTemplate:
                status = "no_template"
            else:
                save_draft(app.store, stored_id(lead), seq, nxt.step, d, now)
                res = app.gateway.submit(lead_action(
                    app, lead, fit, d, now, idempotency_key=f"seq-{lead.id}-{seq}-{nxt.step}",
                    first_touch=nxt.step == pipe.pack.sequence(seq).steps[0].step))
                status = res.status
        counts[status] += 1
        if progress:
            progress(i, len(plans))
    from engine.adapters.models import CheckRun

    summary = {"day": iso(started)[:10], "leads": len(leads), "by_status": dict(counts),
               "imported": imported and {k: imported[k] for k in ("imported", "updated", "rejected")}}
    with app.store.write_plain() as s:
        s.add(CheckRun(kind="daily", at=started, ok=True, results=[summary]))
    return summary


# ------------------------------------------------------------------------------------------- drafts

def set_draft_status(app: Configured, draft_id: int, status: str, actor: str, reason: str = "") -> Draft:
    """Approve or reject a draft (audited; the CLI's ``alpha shadow approve|reject``). Only approved drafts are
    used for internal-only sends. One definition with the review pages: ``shadow_emails.decide_draft`` (a draft
    already in that status, queued or sent is refused, naming its status)."""
    from engine.services.shadow_emails import decide_draft

    return decide_draft(app, draft_id, status, actor, reason)


def send_internal(app: PipelineEngine, limit: int) -> list[dict]:
    """First live sends: approved drafts, each sent ONLY to the internal addresses in config, through the
    gateway, in the assisted phase (so each still needs a human approval before it executes)."""
    from engine.core.errors import InvalidRequest
    from engine.adapters.models import Draft

    phase = app.control.state().phase
    if phase != "assisted":
        raise InvalidRequest(f"internal-only sends run in the assisted phase; the phase is {phase}")
    internal = app.settings.production.sender.internal_addresses
    if not internal:
        raise InvalidRequest("sender.internal_addresses is empty in production.json: nowhere safe to send")
    sender = app.settings.production.sender
    with app.store.read() as s:
        drafts = list(s.exec(select(Draft).where(Draft.status == "approved").order_by(col(Draft.id))
                             .limit(limit)).all())
        ids = sorted({d.lead_id for d in drafts if d.lead_id is not None})
        lead_email = dict(s.exec(select(Lead.id, Lead.email).where(col(Lead.id).in_(ids))).all()) if ids else {}
    from engine.rules.unsubscribe import unsubscribe_url

    out = []
    for i, d in enumerate(drafts):
        to = internal[i % len(internal)]
        if to not in internal:  # by construction; kept as the rule this command exists to enforce
            raise InvalidRequest(f"refusing to send to {to}: not an internal address")
        # the draft's unsubscribe link names its lead: the internal reader gets their own (the gate checks the
        # link carries the recipient's token, and a click must never unsubscribe the lead)
        html: str | None = d.html
        text: str | None = d.text
        if lead_email.get(d.lead_id):
            theirs = unsubscribe_url(sender.unsubscribe_base_url, lead_email[d.lead_id], app.secret)
            ours = unsubscribe_url(sender.unsubscribe_base_url, to, app.secret)
            html, text = (html or "").replace(theirs, ours) or None, (text or "").replace(theirs, ours) or None
        res = app.gateway.submit({"agent": AGENT, "action": "send_email", "idempotency_key": f"internal-{d.id}-{to}",
                                  "to": to, "from": sender.from_addresses[0], "subject": d.subject, "html": html,
                                  "text": text, "first_touch": False})
        out.append({"draft_id": d.id, "to": to, **res.to_dict()})
    return out
