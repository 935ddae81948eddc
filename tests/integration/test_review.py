"""Blind AI-vs-human review: stratified sets, facts-only items, labels and undo, analysis and the CLI."""
from __future__ import annotations

import json

import pytest
from sqlmodel import select

from engine.core.errors import InvalidRequest
from engine.adapters.models import Lead
from engine.services.blind_review import BLIND_FIELDS, analyze, generate, label, next_item, undo
from tests.helpers import alpha, alpha_env

FORBIDDEN = {"tier", "score", "icp", "disqualified_reason", "route", "ai_label", "sequence", "status"}


def seed(app):
    rows = [("vp", "VP Sales", 120, "B2B SaaS"), ("dir", "Director of Sales", 700, "Software"),
            ("mgr", "Marketing Coordinator", 120, "Retail"), ("tiny", "CEO", 5, "B2B SaaS")]
    with app.store.write_plain() as s:
        for i in range(10):
            for key, title, size, ind in rows:
                s.add(Lead(email=f"{key}{i}@co{key}{i}.example", first_name=key.title(), title=title,
                           company=f"Co {key} {i}", employee_count=size, industry=ind, country="US",
                           created_at=app.clock()))


def test_set_is_stratified_blind_and_labels_round_trip(app_factory):
    app = app_factory()
    seed(app)
    r = generate(app, 12, seed=7, actor="ae-lead")
    assert r["size"] == 12 and len(r["by_ai_tier"]) >= 3 and max(r["by_ai_tier"].values()) <= 4
    item = next_item(app, r["set_id"])
    assert set(item.facts) == set(BLIND_FIELDS) and not FORBIDDEN & set(item.to_dict()) and not FORBIDDEN & set(
        item.facts)
    with pytest.raises(InvalidRequest, match="unrecognised label .maybe.: expected 1, 2 or 3"):
        label(app, item.item_id, "maybe", "ae")
    label(app, item.item_id, "Tier 2", "ae", note="looks mid-market")
    assert next_item(app, r["set_id"]).item_id != item.item_id
    assert undo(app, r["set_id"], "ae") == item.item_id
    assert next_item(app, r["set_id"]).item_id == item.item_id


def test_analysis_uses_the_ai_labels_and_the_configured_rule(app_factory):
    app = app_factory(production={"comparison": {"min_labels": 10, "agreement_threshold": 0.75}})
    seed(app)
    set_id = generate(app, 40, seed=1)["set_id"]
    from engine.adapters.models import ReviewItem

    with app.store.read() as s:
        items = s.exec(select(ReviewItem).where(ReviewItem.set_id == set_id)).all()
    for i, it in enumerate(items):  # agree on all but 8 of 40 -> 80%
        label(app, it.id, it.ai_label if i >= 8 else ("3" if it.ai_label != "3" else "1"), "ae", note=f"n{i}")
    res = analyze(app, set_id)
    assert res["n"] == 40 and res["agreement"] == pytest.approx(0.8) and res["passed"] is True
    assert len(res["disagreements"]) == 8 and res["disagreements"][0]["email"]
    app2 = app_factory(production={"comparison": {"min_labels": 50, "agreement_threshold": 0.75}}, init=False,
                       clock=app.clock)
    app2.store = app.store
    assert analyze(app2, set_id)["passed"] is False


def test_cli_analyze_from_csv(db_url, config_factory, tmp_path):
    env = alpha_env(db_url, config_factory(), tmp_path)
    alpha(env, "init", check=True)
    csv = tmp_path / "labels.csv"
    csv.write_text("ai_label,human_label\n" + "1,1\n" * 40 + "2,3\n" * 10 + "3,3\n" * 10)
    p = alpha(env, "compare", "analyze", "--from-csv", str(csv), "--json")
    out = json.loads(p.stdout)
    assert p.returncode == 0 and out["n"] == 60 and out["passed"] is True
    assert out["confusion"]["2"]["3"] == 10 and {"n", "agreement", "kappa", "confusion", "passed"} <= set(out)
    bad = tmp_path / "bad.csv"
    bad.write_text("ai,human\n1,1\n")
    p = alpha(env, "compare", "analyze", "--from-csv", str(bad))
    assert p.returncode == 1 and "ai_label" in p.stderr and "Traceback" not in p.stderr


def test_assisted_gate_needs_a_passing_blind_review(app_factory):
    from engine.core.errors import PhaseChangeRefused
    from engine.adapters.models import ReviewItem
    from tests.conftest import LIVE

    app = app_factory(production={**LIVE, "rollout_phase": {"current": "parallel"},
                                  "comparison": {"min_labels": 10, "agreement_threshold": 0.75}})
    with pytest.raises(PhaseChangeRefused, match="no blind review yet"):
        app.control.set_phase("assisted", "go", "ops")
    seed(app)
    set_id = generate(app, 12, seed=3)["set_id"]
    with app.store.read() as s:
        items = s.exec(select(ReviewItem).where(ReviewItem.set_id == set_id)).all()
    for it in items:
        label(app, it.id, it.ai_label, "ae")
    blocking = [c.name for c in app.control.gate_for("assisted") if not c.passed]
    assert "AI vs human agreement" not in blocking
    assert set(blocking) == {"shadow validation complete", "unsubscribe tested", "kill switch tested",
                             "domain health above 70", "canary passing", "integrations verified"}
