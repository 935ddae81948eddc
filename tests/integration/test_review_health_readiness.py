"""Review of issue 13 item 5: the readiness evidence and the phase gates pass only on current evidence.

Seen in review:
- the go/no-go table marks "AI vs human agreement" as required for autonomous, but the autonomous gate never
  checked it: readiness said the next phase was allowed (and `alpha phase set autonomous` went through) with that
  required row failing;
- a domain health score recorded months ago passed "domain health above 70" (the playbook asks for the current
  reputation score);
- evidence dated in the future (a host whose clock runs ahead) counted as fresh: a canary "passed -720 h ago"."""
from __future__ import annotations

from datetime import timedelta

from engine.adapters.models import CheckRun, VerifyRun
from engine.services.readiness import GO_NO_GO, evidence, readiness
from tests.conftest import LIVE, deep_merge

ASSISTED = deep_merge(LIVE, {"rollout_phase": {"current": "assisted"}})


def test_every_required_criterion_of_the_next_phase_is_checked_by_its_gate(app_factory):
    app = app_factory(production=ASSISTED, warmup={"enabled": False})
    assert app.control.state().phase == "assisted"
    r = readiness(app)
    assert r["next_phase"] == "autonomous"
    required_failing = [g["criterion"] for g in r["go_no_go"] if g["required"] and g["status"] == "fail"]
    assert "AI vs human agreement" in required_failing  # no blind review at all
    for crit in required_failing:
        assert any(b.startswith(f"{crit}: ") for b in r["blocking"]), (crit, r["blocking"])
    assert r["next_phase_allowed"] is False
    names = {c.name for c in app.control.gate_for("autonomous")}
    assert "AI vs human agreement" in names, names
    assert set(GO_NO_GO["autonomous"]) - {"breakers closed"} <= names  # "circuit breakers closed" there


def test_a_domain_health_score_recorded_long_ago_is_not_current(app_factory):
    app = app_factory(production=deep_merge(LIVE, {"rollout_phase": {"current": "parallel"}}))
    app.set_domain_health("alphaswarm.example", 92, "provider dashboard", "ops")
    ok, why, _ = evidence(app)["domain health above 70"]
    assert ok is True, why
    app.clock.advance(days=30)
    ok, why, at = evidence(app)["domain health above 70"]
    assert ok is False, why
    assert "alphaswarm.example" in why and "30 days" in why and "alpha domains set" in why, why
    assert any(b.startswith("domain health above 70") for b in readiness(app)["blocking"])
    app.set_domain_health("alphaswarm.example", 92, "provider dashboard again", "ops")
    assert evidence(app)["domain health above 70"][0] is True


def test_domain_health_dated_in_the_future_is_not_evidence(app_factory):
    app = app_factory(production=deep_merge(LIVE, {"rollout_phase": {"current": "parallel"}}))
    real = app.clock.now
    app.clock.advance(days=40)
    app.set_domain_health("alphaswarm.example", 92, "written by a host whose clock is ahead", "ops")
    app.clock.now = real
    ok, why, _ = evidence(app)["domain health above 70"]
    assert ok is False and "future" in why, why


def test_a_canary_dated_in_the_future_is_not_a_recent_pass(app_factory):
    app = app_factory()
    with app.store.write_plain() as s:
        s.add(CheckRun(kind="canary", at=app.clock() + timedelta(days=30), ok=True, results=[]))
        s.add(CheckRun(kind="unsubscribe_test", at=app.clock() + timedelta(days=30), ok=True, results=[]))
    ev = evidence(app)
    for name in ("canary passing", "unsubscribe tested"):
        ok, why, _ = ev[name]
        assert ok is False and "future" in why, (name, why)


def test_a_verify_run_dated_in_the_future_is_not_fresh(app_factory):
    app = app_factory()
    checks = [{"name": n, "status": "pass", "reason": "ok"} for n in ("ghl", "slack", "webhooks", "breakers")]
    with app.store.write_plain() as s:
        s.add(VerifyRun(at=app.clock() + timedelta(days=3), ok=True, results=checks))
    ok, why, _ = evidence(app)["integrations verified"]
    assert ok is False and "future" in why, why


def test_a_future_dated_passing_canary_does_not_hide_a_failure_for_parallel(app_factory):
    """The step into parallel needs "no failed canary": a pass dated ahead of the clock (ordered newest) must not
    stand in front of the failure recorded after it."""
    app = app_factory()
    with app.store.write_plain() as s:
        s.add(CheckRun(kind="canary", at=app.clock() + timedelta(hours=6), ok=True, results=[]))
        s.add(CheckRun(kind="canary", at=app.clock(), ok=False,
                       results=[{"name": "kill switch obeyed", "passed": False, "expected": "KILL_SWITCH",
                                 "got": "x"}]))
    ok, why, _ = evidence(app)["no failed canary"]
    assert ok is False and "future" in why, why
    gate = {c.name: c for c in app.control.gate_for("parallel")}
    assert gate["no failed canary"].passed is False
