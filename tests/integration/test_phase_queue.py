"""A phase step-down holds queued sends (resumable), never shadows them; a step up releases them at once.

On SQLite and PostgreSQL: in assisted one send is approved and another deferred by working hours; the phase goes
down (to parallel or to shadow); the worker runs and nothing leaves and nothing becomes final; the phase goes back
up and the held sends go out, each exactly once.
"""
from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta

import pytest
from sqlmodel import select

from engine.core.config import PHASES
from engine.adapters.models import Approval, AuditEntry, OutboxItem, SandboxMessage
from tests.conftest import LIVE, deep_merge
from tests.helpers import email
from tests.integration.test_approvals import add_users

ASSISTED = deep_merge(LIVE, {"rollout_phase": {"current": "assisted"},
                             "working_hours": {"start": "08:00", "end": "18:00",
                                               "days": ["mon", "tue", "wed", "thu", "fri"]}})
FINAL = {"sent", "shadowed", "denied", "failed", "duplicate", "reconcile", "sending"}


@pytest.fixture(autouse=True)
def _no_users_env(monkeypatch):
    for var in ("ALPHA_USERS_FILE", "ALPHA_DEMO"):
        monkeypatch.delenv(var, raising=False)


def climb_to(app, target: str) -> list[dict]:
    """Step up one phase at a time (the go/no-go gates cannot pass on a test database: break glass)."""
    out = []
    while PHASES.index(app.control.state().phase) < PHASES.index(target):
        nxt = PHASES[PHASES.index(app.control.state().phase) + 1]
        out.append(app.control.set_phase(nxt, "test: back up", "cto", force=True))
    return out


def rows(app) -> dict[str, OutboxItem]:
    with app.store.read() as s:
        return {r.idempotency_key: r for r in s.exec(select(OutboxItem)).all()}


def sandbox(app) -> list[SandboxMessage]:
    with app.store.read() as s:
        return s.exec(select(SandboxMessage)).all()


def codes(row: OutboxItem) -> list[str]:
    return [r["code"] for r in row.reasons or []]


@pytest.mark.parametrize("down_to", ["parallel", "shadow"])
def test_step_down_holds_queued_sends_and_step_up_sends_them_once(app_factory, down_to):
    app = app_factory(production=ASSISTED, warmup={"enabled": False})
    climb_to(app, "assisted")
    assert app.control.state().phase == "assisted"
    add_users(app.settings.config_dir)

    # Tue 10:00 in New York: the first is approved; the second goes to Honolulu, where it is 05:00
    approved = app.gateway.submit(email("approved", to="ny@acme.io"))
    assert approved.status == "pending_approval", approved.to_dict(True)
    with app.store.read() as s:
        appr = s.exec(select(Approval).where(Approval.outbox_id == approved.outbox_id)).one()
    app.approvals.approve(appr.id, "alice")
    night = app.gateway.submit(email("night", to="hnl@acme.io", timezone="Pacific/Honolulu"))
    assert night.status == "deferred" and night.codes == ["OUTSIDE_WORKING_HOURS"], night.to_dict(True)

    down = app.control.set_phase(down_to, "incident: stop sending", "ops")
    assert down["queue"]["held"] == 2 and down["queue"]["released"] == 0
    assert {k: r.status for k, r in rows(app).items()} == {"approved": "pending_approval", "night": "deferred"}

    # the worker runs while nothing may leave: now, and after Honolulu's working hours opened (Tue 14:00 in NY)
    for _ in range(2):
        app.gateway.process_due()
        app.clock.advance(hours=2)
    app.gateway.process_due()
    held = rows(app)
    assert sandbox(app) == []
    assert {k: r.status for k, r in held.items()} == {"approved": "deferred", "night": "deferred"}
    assert all(codes(r) == ["PHASE_HELD"] for r in held.values()), {k: r.reasons for k, r in held.items()}
    assert not any(r.status in FINAL for r in held.values())
    now = app.clock()
    assert all(now < r.not_before <= now + timedelta(minutes=15) for r in held.values())

    # back up: the held rows are released at once (not after their hold), then each goes out exactly once
    ups = climb_to(app, "assisted")
    assert ups[-1]["after"] == "assisted" and ups[-1]["queue"]["released"] == 2
    assert all(u["queue"]["released"] == 0 for u in ups[:-1])  # parallel sends nothing: nothing to release into
    released = rows(app)
    assert all(r.not_before == now for r in released.values())
    results = {r.idempotency_key: r.status for r in app.gateway.process_due()}
    # the approved one goes; the other was never approved and assisted asks a human first
    assert results == {"approved": "sent", "night": "pending_approval"}
    with app.store.read() as s:
        appr2 = s.exec(select(Approval).where(Approval.outbox_id == night.outbox_id)).one()
    app.approvals.approve(appr2.id, "bob")
    assert [r.status for r in app.gateway.process_due()] == ["sent"]
    assert app.gateway.process_due() == []
    assert Counter(m.to_email for m in sandbox(app)) == {"ny@acme.io": 1, "hnl@acme.io": 1}
    assert {k: r.status for k, r in rows(app).items()} == {"approved": "sent", "night": "sent"}

    with app.store.read() as s:
        phase_rows = s.exec(select(AuditEntry).where(AuditEntry.event == "control.phase")
                            .order_by(AuditEntry.seq)).all()
    by_status = [(e.status, json.loads(e.data).get("queue")) for e in phase_rows]
    assert (down_to, {"held": 2, "released": 0, "released_ids": []}) in by_status
    assert ("assisted", {"held": 0, "released": 2,
                         "released_ids": sorted([approved.outbox_id, night.outbox_id])}) == by_status[-1]


def test_step_up_releases_only_phase_held_rows(app_factory):
    app = app_factory(production=ASSISTED, warmup={"enabled": False})
    climb_to(app, "assisted")
    add_users(app.settings.config_dir)
    r = app.gateway.submit(email("ok", to="ny@acme.io"))
    with app.store.read() as s:
        appr = s.exec(select(Approval).where(Approval.outbox_id == r.outbox_id)).one()
    app.approvals.approve(appr.id, "alice")
    night = app.gateway.submit(email("night", to="tokyo@acme.io", timezone="Asia/Tokyo"))
    app.control.set_phase("parallel", "pause", "ops")
    app.gateway.process_due()  # the approved one is held; the Tokyo one is not due yet
    before = rows(app)
    assert codes(before["ok"]) == ["PHASE_HELD"] and codes(before["night"]) == ["OUTSIDE_WORKING_HOURS"]
    out = climb_to(app, "assisted")[-1]
    assert out["queue"]["released"] == 1
    after = rows(app)
    assert after["ok"].not_before == app.clock()
    assert after["night"].not_before == before["night"].not_before  # its working-hours wait stands
    assert [x.status for x in app.gateway.process_due()] == ["sent"]
    assert rows(app)["night"].status == "deferred" and night.outbox_id == after["night"].id


def test_step_down_within_live_phases_holds_nothing(app_factory):
    app = app_factory(production=deep_merge(ASSISTED, {"rollout_phase": {"current": "autonomous"}}),
                      warmup={"enabled": False})
    climb_to(app, "autonomous")
    app.gateway.submit(email("night", to="tokyo@acme.io", timezone="Asia/Tokyo"))
    out = app.control.set_phase("assisted", "more oversight", "ops")
    assert out["queue"] == {"held": 0, "released": 0}


# ------------------------------------------------------------------------------ `alpha init` seeds through the gates

AUTONOMOUS = deep_merge(LIVE, {"rollout_phase": {"current": "autonomous"}})


def seed_audit(app) -> dict:
    with app.store.read() as s:
        [e] = s.exec(select(AuditEntry).where(AuditEntry.event == "control.phase")).all()
    return {"status": e.status, **json.loads(e.data)}


def test_init_on_a_fresh_database_seeds_shadow_when_a_gate_fails(app_factory):
    app = app_factory(production=AUTONOMOUS, init=False)
    r = app.init("ops")
    seeded = r["phase_seeded"]
    assert app.control.state().phase == "shadow"
    assert seeded["phase"] == "shadow" and seeded["configured"] == "autonomous" and seeded["forced"] is False
    assert seeded["failed"]["phase"] == "parallel"  # the first step up, so nothing above it is looked at
    assert "shadow validation complete" in {c["name"] for c in seeded["failed"]["checks"]}
    assert list(seeded["gate"]) == ["parallel"]
    data = seed_audit(app)
    assert data["status"] == "shadow" and data["configured"] == "autonomous" and data["forced"] is False
    assert data["failed"] == seeded["failed"]
    assert app.init("ops")["phase_seeded"] is None  # seeded once; then the database is authoritative
    # nothing leaves: a send is shadowed
    assert app.gateway.submit(email("x")).status == "shadowed"


@pytest.mark.parametrize("fail_at, asked_expected, phase", [
    (None, ["parallel", "assisted", "autonomous"], "autonomous"),
    ("assisted", ["parallel", "assisted"], "shadow"),
])
def test_init_evaluates_every_gate_in_order_and_seeds_the_phase_only_if_all_pass(app_factory, monkeypatch, fail_at,
                                                                                 asked_expected, phase):
    import engine.services.control as control

    asked = []

    def evaluate(p, ctx, gates):
        asked.append(p)
        return [control.GateCheck("stub", p != fail_at, f"{p} checked")]

    monkeypatch.setattr(control, "evaluate_gate", evaluate)
    app = app_factory(production=AUTONOMOUS, init=False)
    seeded = app.init("ops")["phase_seeded"]
    assert asked == asked_expected and app.control.state().phase == phase == seeded["phase"]
    assert seeded["failed"] == (None if fail_at is None else
                                {"phase": fail_at, "checks": [{"name": "stub", "passed": False,
                                                               "detail": f"{fail_at} checked"}]})
    assert seed_audit(app)["status"] == phase


def test_shadow_in_config_needs_no_gate(app_factory, monkeypatch):
    import engine.services.control as control

    monkeypatch.setattr(control, "evaluate_gate", lambda phase, ctx, gates: pytest.fail(f"gate {phase} evaluated"))
    app = app_factory(init=False)
    seeded = app.init("ops")["phase_seeded"]
    assert seeded == {"phase": "shadow", "configured": "shadow", "forced": False, "failed": None, "gate": {}}


def test_cli_init_prints_the_failing_gate(db_url, config_factory, tmp_path):
    from tests.helpers import alpha, alpha_env

    env = alpha_env(db_url, config_factory(production=AUTONOMOUS, warmup={"enabled": False}), tmp_path)
    p = alpha(env, "init", check=True)
    assert "rollout phase seeded: shadow, not autonomous" in p.stdout
    assert "go/no-go gate for parallel fails" in p.stdout and "shadow validation complete" in p.stdout
    assert json.loads(alpha(env, "status", "--json", check=True).stdout)["phase"] == "shadow"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the CLI's options, not storage
def test_cli_init_force_needs_a_reason_and_is_recorded_as_forced(db_url, config_factory, tmp_path):
    from engine.app import App
    from engine.core.config import load_settings
    from engine.adapters.db import Store
    from tests.helpers import alpha, alpha_env

    cfg = config_factory(production=AUTONOMOUS, warmup={"enabled": False})
    env = alpha_env(db_url, cfg, tmp_path)
    p = alpha(env, "init", "--force")
    assert p.returncode != 0 and "--reason" in p.stderr and "Traceback" not in p.stderr
    p = alpha(env, "init", "--force", "--reason", "drill: staging box", check=True)
    assert "rollout phase seeded from config: autonomous (FORCED past the failing go/no-go gate for parallel" \
        in p.stdout
    assert json.loads(alpha(env, "status", "--json", check=True).stdout)["phase"] == "autonomous"
    app = App(settings=load_settings(cfg), store=Store(db_url))
    try:
        data = seed_audit(app)
    finally:
        app.store.dispose()
    assert data["status"] == "autonomous" and data["forced"] is True and "drill: staging box" in data["reason"]
    assert data["failed"]["phase"] == "parallel"


def test_alpha_phase_set_says_how_many_sends_it_held_and_released(app_factory, monkeypatch):
    """Seen before: the held and released counts were only in the audit row and the alert, not in the CLI's answer."""
    from typer.testing import CliRunner

    import engine.entrypoints.cli as cli

    app = app_factory(production=ASSISTED, warmup={"enabled": False})
    climb_to(app, "assisted")
    add_users(app.settings.config_dir)
    r = app.gateway.submit(email("ok", to="ny@acme.io"))
    with app.store.read() as s:
        appr = s.exec(select(Approval).where(Approval.outbox_id == r.outbox_id)).one()
    app.approvals.approve(appr.id, "alice")
    monkeypatch.setattr("engine.entrypoints.cli.common.open_app", lambda ready=True: app)
    down = CliRunner().invoke(cli.cli, ["phase", "set", "parallel", "--reason", "pause", "--actor", "ops"])
    assert down.exit_code == 0, down.output
    assert "phase assisted -> parallel" in down.output and "1 queued send(s) will be held" in down.output
    app.gateway.process_due()
    up = CliRunner().invoke(cli.cli, ["phase", "set", "assisted", "--reason", "resume", "--actor", "ops", "--force"])
    assert up.exit_code == 0, up.output
    assert "1 held send(s) released: due now" in up.output
