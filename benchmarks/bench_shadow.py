"""(b) Shadow run: 10,000 leads end to end without an LLM (score -> exclusions -> route -> draft -> gateway in
forced shadow, envelopes and drafts stored), on SQLite. Goal: under 20 s, and within 3x of the bare cost of the
same work measured in the same run.

Bare cost: for the leads the shadow run drafted, rendering the same drafts (``draft_for``, which includes the
content check) and one bulk INSERT of the same would-be email rows into the outbox table: what any
implementation must at least do to produce these rows.
"""
from __future__ import annotations

import shutil
import sqlite3

from .common import Figure, Progress, insert_rows, make_app, median, timed_cpu, write_leads_csv

NAME = "shadow"
TITLE = "Shadow run"
GOAL_SECONDS = 20.0
GOAL_RATIO = 3.0


def _template_db(ctx, n: int):
    """A SQLite file with ``n`` imported leads, built once and copied for each run."""
    from engine.adapters.leads_csv import import_leads

    path = ctx.tmp / f"shadow_template_{n}.db"
    app = make_app(f"sqlite:///{path}")
    import_leads(app.store, write_leads_csv(ctx.tmp / f"shadow_{n}.csv", n, seed=11), app.clock)
    app.store.dispose()
    with sqlite3.connect(path) as c:
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


def _bare(app, jobs: list[tuple[int, str, int]]) -> int:
    """Render the drafts of ``jobs`` (lead id, sequence, step) and insert their rows in one statement."""
    from sqlmodel import select

    from engine.services.drafting import draft_for
    from engine.rules.messaging import load_pack
    from engine.adapters.models import Lead, OutboxItem
    from engine.rules.unsubscribe import one_click_headers

    pack = load_pack(app.settings.config_dir)
    sender = app.settings.production.sender
    now = app.clock()
    with app.store.read() as s:
        leads = {lead.id: lead for lead in s.exec(select(Lead)).all()}
    rows = []
    for lead_id, seq, step in jobs:
        lead = leads[lead_id]
        d = draft_for(lead, (seq, step), pack, app.settings, app.secret, now=now, approved_only=False)
        rows.append({"idempotency_key": f"bare-{lead_id}", "payload_hash": "", "agent": "GHL_MASTER",
                     "action": "send_email", "channel": "email", "to_email": lead.email,
                     "to_domain": lead.email.rsplit("@", 1)[-1], "from_email": sender.from_addresses[0],
                     "subject": d.subject, "html": d.html, "text": d.text, "lead_id": str(lead_id), "tier": lead.tier,
                     "headers": one_click_headers(sender.unsubscribe_base_url, lead.email, app.secret),
                     "status": "shadowed", "created_at": now, "attempts": 0})
    with app.store.write_plain() as s:
        return insert_rows(s, OutboxItem.__table__, rows)


def run(ctx) -> list[Figure]:
    from sqlmodel import select

    from engine.adapters.models import Draft
    from engine.services.pipeline import shadow_run

    n = ctx.size(60, 10_000)
    runs = ctx.runs(3)
    p = Progress(NAME)
    template = _template_db(ctx, n)
    times, bares, cpu, bare_cpu, summary = [], [], [], [], None
    for i in range(1, runs + 1):
        db = ctx.tmp / f"shadow_run_{i}.db"
        shutil.copy(template, db)
        app = make_app(f"sqlite:///{db}")
        t, c, summary = timed_cpu(lambda app=app: shadow_run(app, n))
        with app.store.read() as s:
            jobs = [(d.lead_id, d.sequence, d.step) for d in s.exec(select(Draft).order_by(Draft.lead_id)).all()]
        t_bare, c_bare, _ = timed_cpu(lambda app=app, jobs=jobs: _bare(app, jobs))
        app.store.dispose()
        db.unlink()
        times.append(t)
        bares.append(t_bare)
        cpu.append(c)
        bare_cpu.append(c_bare)
        p.run(f"{n:,} leads ({len(jobs):,} drafted), bare {t_bare:.2f} s, shadow run", i, runs, t)
    fig = Figure(f"Shadow run of {n:,} leads (SQLite)", "s", times,
                 goal=f"< {GOAL_SECONDS:g} s and <= {GOAL_RATIO:g}x bare", baseline=median(bares), cpu=cpu)
    fig.ratio = fig.median / fig.baseline
    fig.passed = fig.median < GOAL_SECONDS and fig.ratio <= GOAL_RATIO
    fig.extra = {"leads": n, "by_status": summary["by_status"], "per_lead_ms": round(1000 * fig.median / n, 2),
                 "bare_samples": [round(x, 3) for x in bares], "bare_cpu_median": round(median(bare_cpu), 3),
                 "cpu_ratio": round(median(cpu) / median(bare_cpu), 3)}
    fig.note = (f"{1000 * fig.median / n:.2f} ms per lead; bare (render the drafts + one bulk insert) "
                f"{fig.baseline:.2f} s; CPU {median(cpu):.2f} s vs bare {median(bare_cpu):.2f} s "
                f"({median(cpu) / median(bare_cpu):.2f}x)")
    return [fig]
