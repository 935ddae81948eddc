"""Readiness is computed from live evidence: change the evidence and the score and the gate respond."""
from __future__ import annotations

import json

import pytest
from sqlmodel import select

from engine.checks import run_canary, run_unsubscribe_test
from engine.errors import PhaseChangeRefused
from engine.leads_io import import_leads
from engine.models import ReviewItem
from engine.pipeline import shadow_run
from engine.readiness import readiness
from engine.review import generate, label
from tests.conftest import LIVE, deep_merge
from tests.helpers import ROOT, alpha, alpha_env

PARALLEL = deep_merge(LIVE, {"rollout_phase": {"current": "parallel"},
                             "comparison": {"min_labels": 10, "agreement_threshold": 0.75}})


def by_name(r):
    return {c["name"]: c for cat in r["categories"] for c in cat["checks"]}


def make_ready(app):
    import_leads(app.store, ROOT / "data" / "demo_leads.csv", app.clock)
    shadow_run(app, 30)
    run_canary(app)
    run_unsubscribe_test(app)
    app.control.set_kill(True, "weekly drill", "ops")
    app.control.set_kill(False, "drill over", "ops")
    set_id = generate(app, 12, seed=5)["set_id"]
    with app.store.read() as s:
        for it in s.exec(select(ReviewItem).where(ReviewItem.set_id == set_id)).all():
            label(app, it.id, it.ai_label, "ae")


def test_score_and_gate_follow_the_evidence(app_factory):
    app = app_factory(production=PARALLEL, warmup={"enabled": False})
    before = readiness(app)
    assert before["next_phase"] == "assisted" and before["next_phase_allowed"] is False
    assert {c["criterion"] for c in before["go_no_go"] if c["required"]} >= {
        "shadow validation complete", "AI vs human agreement", "unsubscribe tested", "kill switch tested",
        "templates approved", "domain health above 70", "approver identified", "config matches phase"}
    with pytest.raises(PhaseChangeRefused):
        app.control.set_phase("assisted", "too early", "ops")
    make_ready(app)
    ready = readiness(app)
    assert ready["score"] > before["score"] and ready["next_phase_allowed"] is True, ready["blocking"]
    # break one check: the domain cools -> score drops, gate closes
    app.set_domain_health("alphaswarm.example", 40, "bounce spike", "ops")
    broken = readiness(app)
    assert broken["score"] < ready["score"] and broken["next_phase_allowed"] is False
    assert not by_name(broken)["domain health above 70"]["passed"]
    assert any(b.startswith("domain health above 70") for b in broken["blocking"])
    with pytest.raises(PhaseChangeRefused, match="domain health"):
        app.control.set_phase("assisted", "go", "ops")
    r = app.control.set_phase("assisted", "exec sign-off despite the cooling domain", "cro", force=True)
    assert r["forced"] is True and app.control.state().phase == "assisted"


def test_cli_readiness_json(db_url, config_factory, tmp_path):
    env = alpha_env(db_url, config_factory(), tmp_path)
    alpha(env, "init", check=True)
    r = json.loads(alpha(env, "readiness", "--json", check=True).stdout)
    assert set(r) >= {"score", "categories", "go_no_go", "next_phase", "next_phase_allowed"}
    assert 0 <= r["score"] <= 100 and sum(c["max"] for c in r["categories"]) == 100
    assert all({"criterion", "required", "status", "evidence"} <= set(g) for g in r["go_no_go"])
    assert all(c["evidence"] for cat in r["categories"] for c in cat["checks"])


def test_showing_the_gate_uses_the_checkpoint_but_a_phase_change_walks_the_whole_chain(app_factory, monkeypatch):
    """The Kill switch page and `alpha phase show` preview the gate on every render: cheap. Moving up decides:
    it walks the whole audit chain, so an edit anywhere in the history blocks it."""
    from engine import audit

    app = app_factory()
    walks = []
    real = audit.verify
    monkeypatch.setattr(audit, "verify", lambda s, *a, **k: walks.append(1) or real(s, *a, **k))
    app.control.gate_for("parallel")  # first preview: no checkpoint yet, one full walk recorded
    n = len(walks)
    for _ in range(3):
        app.control.gate_for("parallel")
    assert len(walks) == n  # previews after that walk only the rows added since
    with pytest.raises(PhaseChangeRefused):
        app.control.set_phase("parallel", "try", "ops")
    assert len(walks) > n  # the decision walked in full
