"""The bulk paths behind the benchmarks (SQLite and PostgreSQL): many drafts stored in one transaction with the
same outcome as one save_draft after the other, drafting many leads with the LLM calls in flight together (order
kept, bounded, failures in place), scoring every lead in batches, and a shadow run whose batch size changes
nothing but speed; the LLM chain's limits from the environment."""
from __future__ import annotations

import threading
import time
from dataclasses import replace
from types import SimpleNamespace

import pytest
from sqlmodel import func, select

from engine.services.drafting import NoTemplate, draft_for, draft_many, save_draft, save_drafts
from engine.adapters.llm import from_env
from engine.adapters.leads_csv import import_leads
from engine.rules.messaging import load_pack
from engine.adapters.models import AuditEntry, Draft, Envelope, Lead, OutboxItem
from engine.services.pipeline import score_leads, shadow_run
from tests.conftest import CONFIG, ROOT

PACK = load_pack(CONFIG)
SECRET = b"test-unsubscribe-secret-0123456789"
DEMO = ROOT / "data" / "demo_leads.csv"


def lead(i: int, **kw) -> Lead:
    base = dict(email=f"pat{i}@northwind{i}.example", first_name=f"Pat{i}", title="VP Sales",
                company=f"Northwind {i}", industry="B2B SaaS", country="US", tier=1, status="new")
    return Lead(**{**base, **kw})


def insert_leads(app, n: int) -> list[Lead]:
    with app.store.write_plain() as s:
        rows = [lead(i) for i in range(n)]
        s.add_all(rows)
        s.flush()
        return rows


def drafts(app) -> list[Draft]:
    with app.store.read() as s:
        return list(s.exec(select(Draft).order_by(Draft.id)).all())


class SlowLLM:
    """complete() takes ``delay`` seconds; records how many calls were in flight at once."""

    def __init__(self, delay: float = 0.05, concurrency: int = 4):
        self.delay, self.concurrency = delay, concurrency
        self.in_flight = self.max_in_flight = self.calls = 0
        self._lock = threading.Lock()

    def complete(self, prompt, system=None, max_tokens=300, fallback_context=None, *, fallback_template=None):
        with self._lock:
            self.calls += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        time.sleep(self.delay)
        with self._lock:
            self.in_flight -= 1
        name = (fallback_context or {}).get("first_name", "there")
        return SimpleNamespace(text=f"Hope the week is going well, {name}.", provider="fake", model="f", cached=False)


def test_save_drafts_has_the_outcomes_of_one_save_draft_after_the_other(app_factory):
    app = app_factory()
    leads = insert_leads(app, 4)
    now = app.clock()
    results = [draft_for(x, ("cold", 1), PACK, app.settings, SECRET, now=now) for x in leads]
    approved = save_draft(app.store, leads[3].id, "cold", 1, results[3], now).draft
    with app.store.write_plain() as s:
        row = s.get(Draft, approved.id)
        row.status = "approved"
        s.add(row)
    changed = replace(results[0], subject="Another subject")
    items = [(leads[0].id, "cold", 1, results[0]), (leads[1].id, "cold", 1, results[1]),
             (leads[0].id, "cold", 1, results[0]),        # the same again in the same batch: unchanged
             (leads[0].id, "cold", 1, changed),           # then changed: updates the row inserted above
             (leads[3].id, "cold", 1, changed)]           # approved: never rewritten
    assert save_drafts(app.store, items, now) == ["inserted", "inserted", "unchanged", "updated", "kept"]
    rows = {(d.lead_id, d.step): d for d in drafts(app)}
    assert len(rows) == 3
    assert rows[(leads[0].id, 1)].subject == "Another subject" and rows[(leads[0].id, 1)].status == "draft"
    assert rows[(leads[3].id, 1)].subject == results[3].subject and rows[(leads[3].id, 1)].status == "approved"
    assert rows[(leads[1].id, 1)].provenance == results[1].provenance and rows[(leads[1].id, 1)].created_at == now
    # a second batch with the stored content changes nothing; one later update goes through
    again = [(leads[1].id, "cold", 1, results[1]), (leads[0].id, "cold", 1, results[0])]
    assert save_drafts(app.store, again, now) == ["unchanged", "updated"]
    assert save_draft(app.store, leads[0].id, "cold", 1, results[0], now).outcome == "unchanged"
    with pytest.raises(ValueError, match="made for sequence 'cold' step 1"):
        save_drafts(app.store, [(leads[2].id, "warm", 1, results[2])], now)
    assert save_drafts(app.store, [], now) == []


def test_draft_many_keeps_order_bounds_concurrency_and_returns_failures_in_place(settings):
    leads = [lead(i) for i in range(12)]
    jobs = [(x, ("cold", 1)) for x in leads]
    jobs.insert(5, (lead(99), ("nosuch", 1)))
    llm = SlowLLM(delay=0.05, concurrency=4)
    out = draft_many(jobs, PACK, settings, SECRET, llm=llm, approved_only=False)
    assert isinstance(out[5], NoTemplate)
    good = out[:5] + out[6:]
    assert [d.html.count(f"Pat{i}.") for i, d in enumerate(good)] == [1] * 12  # each lead's own opening, in order
    assert all(d.provenance["opening"]["source"] == "llm" for d in good)
    assert llm.calls == 12 and 1 < llm.max_in_flight <= 4
    plain = draft_many(jobs[:3], PACK, settings, SECRET)  # no LLM: the template's opening, one thread
    assert [d.provider for d in plain] == ["template"] * 3
    assert plain[0].html == draft_for(leads[0], ("cold", 1), PACK, settings, SECRET).html


def test_score_leads_matches_rescore_and_writes_only_what_changed(app_factory):
    app = app_factory()
    import_leads(app.store, DEMO, app.clock)
    first = score_leads(app, batch=97)
    with app.store.read() as s:
        stored = list(s.exec(select(Lead).order_by(Lead.id)).all())
        n = s.exec(select(func.count()).select_from(Lead)).one()
    assert first["leads"] == n == first["changed"] and sum(first["by_tier"].values()) == n
    for x in stored[:60]:
        fit = app.score(x)
        assert (x.score, x.tier, x.disqualified_reason) == (fit.score, fit.tier,
                                                           fit.reason if fit.disqualified else None)
        assert x.icp == {"explain": fit.explain(), "reason": fit.reason}
    assert first["disqualified"] == sum(1 for x in stored if x.disqualified_reason)
    assert score_leads(app)["changed"] == 0


def test_shadow_run_batch_size_changes_nothing_but_speed(app_factory):
    app = app_factory()
    import_leads(app.store, DEMO, app.clock)
    one = shadow_run(app, 41, batch=200)
    two = shadow_run(app, 41, batch=4)
    strip = ("run_id", "started_at", "finished_at")
    assert {k: v for k, v in one.items() if k not in strip} == {k: v for k, v in two.items() if k not in strip}
    with app.store.read() as s:
        rows = s.exec(select(OutboxItem.idempotency_key, OutboxItem.status).order_by(OutboxItem.id)).all()
        keys = [k for k, _ in rows]
        decisions = s.exec(select(AuditEntry.ref).where(AuditEntry.event == "gateway.decision")
                           .order_by(AuditEntry.seq)).all()
        envelopes = s.exec(select(func.count()).select_from(Envelope)).one()
        routed = s.exec(select(func.count()).select_from(Lead).where(Lead.route.is_not(None))).one()
    per_run = one["leads"] - one["by_status"].get("disqualified", 0) - one["by_status"].get("stopped", 0)
    assert len(keys) == 2 * per_run and len(set(keys)) == len(keys)
    assert keys[per_run:] == [k.replace(f"shadow-{one['run_id']}-", f"shadow-{two['run_id']}-")
                              for k in keys[:per_run]]  # the same leads, in the same order
    assert list(decisions) == keys  # one audit row per decision, in decision order
    assert envelopes >= 2 * 2 * one["leads"] and routed > 0
    assert all(status in ("shadowed", "denied") for _, status in rows)


def test_llm_limits_come_from_the_environment(app_factory, monkeypatch, caplog):
    app = app_factory()
    monkeypatch.setenv("ANTHROPIC_RPM", "3000")
    monkeypatch.setenv("OPENAI_RPM", "")
    monkeypatch.setenv("ALPHA_LLM_CONCURRENCY", "24")
    ch = from_env(app.store, app.clock)
    assert ch.concurrency == 24 and set(ch._limiters) == {"anthropic"}
    assert ch._limiters["anthropic"].interval == pytest.approx(0.02)
    monkeypatch.setenv("ANTHROPIC_RPM", "lots")
    monkeypatch.delenv("ALPHA_LLM_CONCURRENCY")
    ch = from_env(app.store, app.clock)
    assert ch.concurrency == 8 and ch._limiters == {}
    assert "ANTHROPIC_RPM='lots' is not a positive whole number" in caplog.text
    assert from_env(app.store, app.clock, requests_per_minute=60, concurrency=2).concurrency == 2
