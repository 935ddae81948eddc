"""(e) Console: the server render time of every page in console/nav.py whose file exists, at 10,000 leads,
5,000 approval-queue items and 100,000 audit rows. Goal: under 1 s each.

The dataset is built once into a SQLite file with bulk inserts (not through the gateway): leads imported and
scored, drafts, a shadow run of 5,000 would-be emails, 5,000 pending approvals with their outbox rows, sent,
deferred and denied rows, 100,000 audit rows that form a valid hash chain, suppressions, LLM usage, alerts and
a blind review set. Each page is run by streamlit.testing.v1.AppTest (as tests/console do) with an admin signed
in: one warm-up run (imports, the cached engine), then the timed runs. A page that raises or shows an error is
reported as such.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import random
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

from .common import CONFIG, ROOT, Figure, Progress, insert_rows, make_app, timed, timed_cpu, write_leads_csv

NAME = "console"
TITLE = "Console page render time"
GOAL_SECONDS = 1.0


def build_dataset(path: Path, tmp: Path, leads: int, queue: int, audit_rows: int, progress: Progress) -> str:
    import sqlalchemy as sa
    from sqlmodel import select

    from engine.adapters import models as m
    from engine.adapters.audit import row_digest
    from engine.core.clock import iso
    from engine.services.drafting import draft_for
    from engine.adapters.leads_csv import import_leads
    from engine.rules.messaging import load_pack
    from engine.services.pipeline import score_leads
    from engine.services.blind_review import generate
    from engine.core.identity import canonical_address
    from engine.rules.unsubscribe import one_click_headers

    url = f"sqlite:///{path}"
    app = make_app(url)
    now = app.clock()
    rng = random.Random(3)
    t, _ = timed(lambda: import_leads(app.store, write_leads_csv(tmp / "console_leads.csv", int(leads * 1.03) + 5),
                                      app.clock))
    score_leads(app)
    with app.store.read() as s:
        all_leads = list(s.exec(select(m.Lead).order_by(m.Lead.id)).all())
    fit = [lead for lead in all_leads if lead.tier is not None]
    progress.note(f"dataset: {len(all_leads):,} leads imported and scored ({t:.1f} s)")

    pack = load_pack(app.settings.config_dir)
    sender = app.settings.production.sender
    samples = [draft_for(lead, ("cold", 1), pack, app.settings, app.secret, now=now, approved_only=False)
               for lead in fit[:300]]

    def content(i: int) -> dict:
        d = samples[i % len(samples)]
        return {"subject": d.subject, "html": d.html, "text": d.text}

    def outbox_row(i: int, lead, key: str, status: str, at) -> dict:
        return {"idempotency_key": key, "payload_hash": hashlib.sha256(key.encode()).hexdigest(),
                "agent": "GHL_MASTER", "action": "send_email", "channel": "email", "to_email": lead.email,
                "to_domain": lead.email.rsplit("@", 1)[1], "from_email": sender.from_addresses[0], **content(i),
                "lead_id": str(lead.id), "tier": lead.tier, "record": {"to": lead.email, "tier": lead.tier},
                "headers": one_click_headers(sender.unsubscribe_base_url, lead.email, app.secret), "status": status,
                "reasons": [{"code": "PHASE_BLOCKS_SEND", "detail": "nothing leaves: shadow run"}]
                if status == "shadowed" else [],
                "decision": {"phase": "shadow", "live": False, "high_risk": lead.tier == 1, "evaluated_at": iso(at)},
                "created_at": at, "updated_at": at, "attempts": 1 if status == "sent" else 0,
                "reserved_at": at if status == "sent" else None, "sent_at": at if status == "sent" else None,
                "not_before": at + timedelta(hours=1) if status == "deferred" else None}

    with app.store.write_plain() as s:
        insert_rows(s, m.Draft.__table__, [{"lead_id": lead.id, "sequence": "cold", "step": 1,
                                        "template_id": samples[i % len(samples)].template_id,
                                        "template_version": samples[i % len(samples)].template_version,
                                        "provider": "template", "provenance": samples[i % len(samples)].provenance,
                                        "flags": [], "status": "draft", "created_at": now, **content(i)}
                                       for i, lead in enumerate(fit)])
        run = m.ShadowRun(started_at=now - timedelta(hours=1), finished_at=now, contacts=len(all_leads))
        s.add(run)
        s.flush()
        rows = [outbox_row(i, lead, f"shadow-{run.id}-{lead.id}", "shadowed", now - timedelta(minutes=30))
                for i, lead in enumerate(fit[:5000])]
        rows += [outbox_row(i, fit[i % len(fit)], f"queue-{i}", "pending_approval", now - timedelta(minutes=i % 600))
                 for i in range(queue)]
        rows += [outbox_row(i, fit[(i * 7) % len(fit)], f"seq-sent-{i}", "sent", now - timedelta(hours=i % 700))
                 for i in range(1000)]
        rows += [outbox_row(i, fit[(i * 11) % len(fit)], f"seq-{st}-{i}", st, now - timedelta(minutes=i))
                 for st in ("deferred", "denied") for i in range(300)]
        insert_rows(s, m.OutboxItem.__table__, rows)
        run.summary = {"leads": len(all_leads), "by_status": {"shadowed": 5000}}
        s.add(run)
        queued = s.exec(select(m.OutboxItem.id, m.OutboxItem.tier).where(m.OutboxItem.status == "pending_approval")
                        .order_by(m.OutboxItem.id)).all()
        insert_rows(s, m.Approval.__table__, [
            {"kind": "send", "outbox_id": oid, "status": "pending", "risk": "high" if tier == 1 else "normal",
             "requested_by": "GHL_MASTER", "requested_at": now - timedelta(minutes=i % 600),
             "action_type": {1: "tier1_email", 2: "tier2_email"}.get(tier, "tier3_email"),
             "sla_due_at": now + timedelta(minutes=60 - i % 120), "expires_at": now + timedelta(days=2)}
            for i, (oid, tier) in enumerate(queued)])
        s.exec(sa.update(m.OutboxItem).where(m.OutboxItem.status == "pending_approval").values(
            approval_id=sa.select(m.Approval.id).where(m.Approval.outbox_id == m.OutboxItem.id).scalar_subquery()))
        insert_rows(s, m.Suppression.__table__, [{"email": e, "address_key": canonical_address(e),
                                              "reason": "unsubscribed", "source": "bench", "created_at": now}
                                             for e in sorted({lead.email for lead in fit[::30]})])
        insert_rows(s, m.DomainHealth.__table__, [{"domain": d, "score": 80.0 + i, "cooling": False, "updated_at": now}
                                              for i, d in enumerate(sorted({a.split("@")[1]
                                                                            for a in sender.from_addresses}))])
        insert_rows(s, m.LLMUsage.__table__, [{"provider": "anthropic", "model": "claude-haiku-4-5", "input_tokens": 90,
                                           "output_tokens": 20, "cached": i % 3 == 0, "latency_ms": 200,
                                           "at": now - timedelta(minutes=i)} for i in range(2000)])
        insert_rows(s, m.AlertLog.__table__, [{"kind": "hot_lead", "text": f"hot lead {i}", "status": "not_configured",
                                           "at": now - timedelta(hours=i)} for i in range(200)])
        # the audit trail: a valid chain (verify passes), oldest first
        events = ["gateway.decision"] * 90 + ["approval.approved", "approval.rejected", "suppression.add",
                                              "breaker.transition", "draft.approved", "control.phase",
                                              "permission.violation", "gateway.execution", "review.label",
                                              "control.kill_switch"]
        head = s.get(m.AuditHead, 1)
        seq, prev = head.last_seq, head.last_hash
        start = now - timedelta(days=30)
        entries = []
        for i in range(audit_rows):
            seq += 1
            ev = events[rng.randrange(len(events))]
            e = SimpleNamespace(
                seq=seq, at=iso(start + timedelta(seconds=i * 25)), actor="GHL_MASTER" if ev.startswith("gateway")
                else "console:admin", agent="GHL_MASTER" if ev.startswith("gateway") else None, event=ev,
                action="send_email" if ev.startswith("gateway") else None,
                status=rng.choice(["shadowed", "denied", "deferred", "pending_approval", "sent"]),
                ref=f"shadow-1-{i}", outbox_id=None, reasons=json.dumps(["PHASE_BLOCKS_SEND"], separators=(",", ":")),
                data=json.dumps({"to": f"p{i}@example.com", "details": []}, sort_keys=True, separators=(",", ":")),
                prev_hash=prev, row_hash="")
            e.row_hash = row_digest(e)
            prev = e.row_hash
            entries.append(vars(e))
        insert_rows(s, m.AuditEntry.__table__, entries)
        head.last_seq, head.last_hash = seq, prev
        s.add(head)
    generate(app, 200, seed=1, actor="bench")
    app.store.dispose()
    return url


def run(ctx) -> list[Figure]:
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    import engine.adapters.users as users
    from console.nav import NAV

    sizes = ctx.size((300, 100, 2000), (10_000, 5_000, 100_000))  # leads, queue items, audit rows
    runs = ctx.runs(5)
    p = Progress(NAME)
    db = ctx.tmp / "console.db"
    t, url = timed(lambda: build_dataset(db, ctx.tmp, *sizes, p))
    p.note(f"dataset built in {t:.1f} s: {sizes[0]:,} leads, {sizes[1]:,} queue items, {sizes[2]:,} audit rows")

    # AppTest drives the pages outside a server: streamlit warns "missing ScriptRunContext" for calls made
    # between runs; they are expected here and would drown the progress lines
    logging.getLogger("streamlit.runtime.scriptrunner_utils.script_run_context").addFilter(
        lambda record: "missing ScriptRunContext" not in record.getMessage())
    users.BCRYPT_ROUNDS = 4
    users_file = ctx.tmp / "users.yaml"
    env = {"DATABASE_URL": url, "ALPHA_CONFIG_DIR": str(CONFIG), "ALPHA_USERS_FILE": str(users_file)}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    users.add_user("admin", "Bench Admin", "admin@example.com", "admin", "bench-password-0123")
    figs = []
    try:
        st.cache_resource.clear()
        for spec in NAV:
            path = ROOT / "pages" / f"{spec.module}.py"
            if not path.exists():
                continue

            def render(path=path):
                at = AppTest.from_file(str(path), default_timeout=120)
                at.session_state["authentication_status"] = True
                at.session_state["username"] = "admin"
                at.session_state["name"] = "Bench Admin"
                return at.run()

            render()  # warm-up: imports and the cached engine
            samples, cpu, problems = [], [], set()
            for i in range(1, runs + 1):
                t, c, at = timed_cpu(render)
                samples.append(t)
                cpu.append(c)
                problems.update(f"exception: {str(e.value)[:150]}" for e in at.exception)
                problems.update(f"error shown: {str(e.value)[:150]}" for e in at.error)
                p.run(f"pages/{spec.module}.py", i, runs, t)
            fig = Figure(f"Page {spec.title} (pages/{spec.module}.py)", "s", samples, goal=f"< {GOAL_SECONDS:g} s",
                         cpu=cpu)
            fig.passed = fig.median < GOAL_SECONDS and not any(x.startswith("exception") for x in problems)
            fig.note = "; ".join(sorted(problems))[:400]
            figs.append(fig)
    finally:
        st.cache_resource.clear()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return figs
