"""Readiness is computed from live evidence: change the evidence and the score and the gate respond."""
from __future__ import annotations

import json

import pytest
from sqlmodel import select

from engine.entrypoints.webhooks import one_click_post
from engine.services.canary import run_canary, run_unsubscribe_test
from engine.core.errors import PhaseChangeRefused
from engine.adapters.leads_csv import import_leads
from engine.adapters.models import ReviewItem
from engine.services.pipeline import shadow_run
from engine.services.readiness import readiness
from engine.services.blind_review import generate, label
from tests.conftest import LIVE, deep_merge
from tests.helpers import ROOT, alpha, alpha_env

PARALLEL = deep_merge(LIVE, {"rollout_phase": {"current": "parallel"},
                             "comparison": {"min_labels": 10, "agreement_threshold": 0.75}})


def by_name(r):
    return {c["name"]: c for cat in r["categories"] for c in cat["checks"]}


def verify_against(app, monkeypatch, real: bool = True) -> dict:
    """`alpha verify` with every integration configured and answering: the GHL sandbox, a Slack fake and the
    receiver. ``real``: the GHL sandbox stands in for the real GHL (as if GHL_BASE_URL were the provider);
    otherwise it is what it is, the local sandbox."""
    import engine.services.verify as verify
    from engine.adapters.ghl_sandbox import DEFAULT_LOCATION, start_sandbox
    from engine.entrypoints.webhooks import SignatureKeys, create_app
    from tests.fake_servers import SlackWebhookFake
    from tests.integration.test_webhooks import ServerThread

    sandbox, ghl_url = start_sandbox()
    receiver = ServerThread(create_app(app, keys=SignatureKeys()))
    slack = SlackWebhookFake().start()
    try:
        with monkeypatch.context() as m:
            for k, v in {"GHL_API_KEY": "token-123456", "GHL_LOCATION_ID": DEFAULT_LOCATION, "GHL_BASE_URL": ghl_url,
                         "SLACK_WEBHOOK_URL": slack.url, "ANTHROPIC_API_KEY": "", "OPENAI_API_KEY": ""}.items():
                m.setenv(k, v)
            if real:
                m.setattr(verify, "is_sandbox_url", lambda url: False)
                m.setattr(verify, "is_sandbox_location", lambda loc: False)
            app._alerter = None
            return verify.run_verify(app, send_slack=True, webhook_url=receiver.url)
    finally:
        app._alerter = None
        slack.stop()
        receiver.stop()
        sandbox.shutdown()


def make_ready(app, monkeypatch):
    import_leads(app.store, ROOT / "data" / "demo_leads.csv", app.clock)
    shadow_run(app, 30)
    assert run_canary(app)["ok"]
    run_unsubscribe_test(app, one_click_post)
    app.control.set_kill(True, "weekly drill", "ops")
    app.control.set_kill(False, "drill over", "ops")
    set_id = generate(app, 12, seed=5)["set_id"]
    with app.store.read() as s:
        for it in s.exec(select(ReviewItem).where(ReviewItem.set_id == set_id)).all():
            label(app, it.id, it.ai_label, "ae")
    app.set_domain_health("alphaswarm.example", 92, "provider dashboard", "ops")
    assert verify_against(app, monkeypatch)["ready_for_live"]


def test_score_and_gate_follow_the_evidence(app_factory, monkeypatch):
    app = app_factory(production=PARALLEL, warmup={"enabled": False})
    before = readiness(app)
    assert before["next_phase"] == "assisted" and before["next_phase_allowed"] is False
    assert {c["criterion"] for c in before["go_no_go"] if c["required"]} >= {
        "shadow validation complete", "AI vs human agreement", "unsubscribe tested", "kill switch tested",
        "templates approved", "domain health above 70", "approver identified", "config matches phase",
        "canary passing", "integrations verified"}
    with pytest.raises(PhaseChangeRefused):
        app.control.set_phase("assisted", "too early", "ops")
    make_ready(app, monkeypatch)
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
    from engine.adapters import audit

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


# ------------------------------------------------------------------------------------------ no false green

def test_domain_health_with_no_data_fails(app_factory):
    """Seen: "domain health above 70" passed with no domain data."""
    app = app_factory(production=PARALLEL)
    ok, why, _ = readiness_evidence(app)["domain health above 70"]
    assert ok is False and "no domain health data for alphaswarm.example" in why
    assert any(b.startswith("domain health above 70: no domain health data") for b in readiness(app)["blocking"])
    app.set_domain_health("alphaswarm.example", 85, "provider dashboard", "ops")
    ok, why, _ = readiness_evidence(app)["domain health above 70"]
    assert ok is True and "alphaswarm.example 85" in why


def readiness_evidence(app):
    from engine.services.readiness import evidence

    return evidence(app)


def test_a_verify_run_green_only_with_the_sandbox_is_no_evidence_for_live_phases(app_factory, monkeypatch):
    """Seen: a sandbox GHL (or nothing configured) counted as verified integrations."""
    from engine.services.verify import run_verify

    app = app_factory(production=PARALLEL, warmup={"enabled": False})
    make_ready(app, monkeypatch)
    assert readiness(app)["next_phase_allowed"] is True
    for k in ("GHL_API_KEY", "GHL_LOCATION_ID", "SLACK_WEBHOOK_URL", "ANTHROPIC_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(k, raising=False)
    r = run_verify(app, send_slack=False)  # nothing configured, no receiver: the newest run is the evidence
    assert r["ok"] is False
    r = readiness(app)
    assert r["next_phase_allowed"] is False
    assert any(b.startswith("integrations verified: ready for live phases: NO (ghl not configured; slack not "
                            "configured") for b in r["blocking"]), r["blocking"]
    sandbox_only = verify_against(app, monkeypatch, real=False)
    assert sandbox_only["ready_for_sandbox"] is True and sandbox_only["ready_for_live"] is False
    r = readiness(app)
    assert r["next_phase_allowed"] is False
    assert ("integrations verified: ready for live phases: NO (ghl is the local sandbox; slack is a local "
            "stand-in)") in r["blocking"]
    assert not by_name(r)["integrations verified"]["passed"]
    with pytest.raises(PhaseChangeRefused, match="ghl is the local sandbox"):
        app.control.set_phase("assisted", "go", "ops")
    verify_against(app, monkeypatch)  # the real thing: allowed again
    assert readiness(app)["next_phase_allowed"] is True
    app.control.set_phase("assisted", "go", "ops")


def test_a_failed_canary_blocks_moving_up(app_factory, monkeypatch):
    """Seen: a failed canary did not block moving up. A canary that cannot even start is recorded as failed."""
    import engine.services.canary as checks
    from engine.adapters.models import CheckRun

    app = app_factory(production=PARALLEL, warmup={"enabled": False})
    make_ready(app, monkeypatch)
    assert readiness(app)["next_phase_allowed"] is True

    def broken(_app):
        raise RuntimeError("scratch database unavailable")

    real = checks.Scratch
    monkeypatch.setattr(checks, "Scratch", broken)
    out = run_canary(app)
    assert out["ok"] is False and out["checks"][0]["name"] == "canary ran"
    with app.store.read() as s:
        last = s.exec(select(CheckRun).where(CheckRun.kind == "canary").order_by(CheckRun.id.desc())).first()
    assert last.ok is False
    r = readiness(app)
    assert r["next_phase_allowed"] is False
    assert any(b.startswith("canary passing: the last canary FAILED: canary ran") for b in r["blocking"]), r["blocking"]
    with pytest.raises(PhaseChangeRefused, match="the last canary FAILED: canary ran"):
        app.control.set_phase("assisted", "go", "ops")
    monkeypatch.setattr(checks, "Scratch", real)
    assert run_canary(app)["ok"] is True  # fixed and run again: the newest canary decides
    assert readiness(app)["next_phase_allowed"] is True


def test_a_failed_canary_blocks_even_the_step_into_parallel(app_factory):
    from engine.core.clock import iso
    from engine.adapters.models import CheckRun

    app = app_factory()
    names = lambda: {c.name: c for c in app.control.gate_for("parallel")}  # noqa: E731
    assert names()["no failed canary"].passed is True  # no canary yet: parallel does not need one
    with app.store.write_plain() as s:
        s.add(CheckRun(kind="canary", at=app.clock(), ok=False, results=[
            {"name": "spam word caught", "passed": False, "expected": "SPAM_CONTENT", "got": "shadowed []"},
            {"name": "kill switch obeyed", "passed": True, "expected": "KILL_SWITCH", "got": "blocked"}]))
    c = names()["no failed canary"]
    assert c.passed is False and "the last canary FAILED: spam word caught" in c.detail
    assert "kill switch obeyed" not in c.detail
    r = readiness(app)
    assert {"criterion": "no failed canary", "required": True, "status": "fail"}.items() <= next(
        g for g in r["go_no_go"] if g["criterion"] == "no failed canary").items()
    assert iso(app.clock()) == next(g for g in r["go_no_go"] if g["criterion"] == "no failed canary")["at"]
