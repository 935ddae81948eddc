"""The approval queue on SQLite and PostgreSQL: SLAs, expiry, four-eyes, restarts, exactly-once execution."""
from __future__ import annotations

import json

import pytest
from sqlmodel import select

from engine.app import App
from engine.errors import ConfigError, InvalidRequest
from engine.models import Approval, OutboxItem, SandboxMessage
from tests.conftest import LIVE, deep_merge
from tests.helpers import alpha, alpha_env, email

ASSISTED = deep_merge(LIVE, {"rollout_phase": {"current": "assisted"}})


@pytest.fixture
def app(app_factory):
    return app_factory(production=ASSISTED, warmup={"enabled": False})


def pending_one(app, key="k1", **kw):
    r = app.gateway.submit(email(key, **kw))
    assert r.status == "pending_approval"
    [(appr, row)] = [(a, o) for a, o in app.approvals.pending() if o.id == r.outbox_id]
    return appr, row


def sent(app):
    with app.store.read() as s:
        return s.exec(select(SandboxMessage)).all()


def test_request_carries_roster_type_sla_and_expiry(app):
    appr, row = pending_one(app, tier=2)
    assert appr.action_type == "tier2_email" and appr.requested_by == "GHL_MASTER"
    assert appr.sla_due_at == app.clock() + __import__("datetime").timedelta(minutes=240)
    assert appr.expires_at > appr.sla_due_at and row.to_email == "jane@acme.io"


def test_sla_breach_escalates_and_does_not_approve_then_expiry_is_expired(app):
    appr, row = pending_one(app, tier=3)
    app.clock.advance(minutes=481)
    out = app.approvals.sweep()
    assert out == {"escalated": [appr.id], "expired": []}
    with app.store.read() as s:
        a = s.get(Approval, appr.id)
    assert a.status == "pending" and a.escalated_to == "admin"
    assert app.approvals.sweep()["escalated"] == []  # escalated once
    app.clock.advance(minutes=4320)
    assert app.approvals.sweep()["expired"] == [appr.id]
    with app.store.read() as s:
        a, r = s.get(Approval, appr.id), s.get(OutboxItem, row.id)
    assert a.status == "expired" and a.decided_by is None  # never approved, never a human rejection
    assert r.status == "denied" and r.reasons[0]["code"] == "APPROVAL_EXPIRED"
    assert app.approvals.process()["results"] == [] and sent(app) == []


def test_four_eyes(app):
    appr, _ = pending_one(app)
    with pytest.raises(InvalidRequest, match="four-eyes"):
        app.approvals.approve(appr.id, "GHL_MASTER")  # the requester
    app.approvals.edit(appr.id, "alice", subject="A sharper subject")
    with pytest.raises(InvalidRequest, match="edited"):
        app.approvals.approve(appr.id, "alice")
    app.approvals.approve(appr.id, "bob")
    app.approvals.process()
    [msg] = sent(app)
    assert msg.subject == "A sharper subject"


def test_reject_needs_a_reason_and_is_final(app):
    appr, row = pending_one(app)
    with pytest.raises(InvalidRequest, match="reason"):
        app.approvals.reject(appr.id, "bob", "")
    app.approvals.reject(appr.id, "bob", "wrong persona")
    with app.store.read() as s:
        r = s.get(OutboxItem, row.id)
    assert r.status == "denied" and r.reasons[0]["code"] == "APPROVAL_REJECTED" and "bob" in r.reasons[0]["detail"]
    with pytest.raises(InvalidRequest, match="not pending"):
        app.approvals.approve(appr.id, "carol")


def test_restart_loses_nothing_and_approving_twice_executes_once(app, app_factory):
    appr, _ = pending_one(app)
    restarted = App(settings=app.settings, store=type(app.store)(app.store.url), clock=app.clock)
    assert [a.id for a, _ in restarted.approvals.pending()] == [appr.id]
    restarted.approvals.approve(appr.id, "bob")
    with pytest.raises(InvalidRequest, match="not pending"):
        app.approvals.approve(appr.id, "carol")
    first, second = app.approvals.process(), restarted.approvals.process()
    assert [r["status"] for r in first["results"]] == ["sent"] and second["results"] == []
    assert len(sent(app)) == 1
    restarted.store.dispose()


def test_execution_rechecks_everything_at_that_moment(app):
    appr, _ = pending_one(app, to="late@acme.io")
    app.approvals.approve(appr.id, "bob")
    app.suppress("late@acme.io", "unsubscribed", "recipient")  # after approval, before execution
    [res] = app.approvals.process()["results"]
    assert res["status"] == "denied" and res["reasons"] == ["SUPPRESSED_RECIPIENT"] and sent(app) == []
    appr2, _ = pending_one(app, key="k2", to="ok@acme.io")
    app.approvals.approve(appr2.id, "bob")
    app.control.set_kill(True, "incident", "ops")
    [res] = app.approvals.process()["results"]
    assert res["reasons"] == ["KILL_SWITCH"] and sent(app) == []
    app.control.set_kill(False, "over", "ops")
    assert [r["status"] for r in app.approvals.process()["results"]] == ["sent"]


def test_bad_roster_refuses_with_a_clear_message(app_factory, config_factory, settings_factory):
    import json as _json
    from pathlib import Path

    cfg = config_factory(production=ASSISTED)
    data = _json.loads((Path(cfg) / "approvers.json").read_text())
    data["action_types"]["tier1_email"]["backup"] = data["action_types"]["tier1_email"]["primary"]
    del data["action_types"]["hot_lead"]
    (Path(cfg) / "approvers.json").write_text(_json.dumps(data))
    from engine.approvals import load_roster

    with pytest.raises(ConfigError) as e:
        load_roster(cfg)
    msg = str(e.value)
    assert "lacks hot_lead" in msg and "action_types.tier1_email.backup" in msg


def test_cli_list_approve_process(db_url, config_factory, tmp_path):
    env = alpha_env(db_url, config_factory(production=ASSISTED, warmup={"enabled": False}), tmp_path)
    alpha(env, "init", check=True)
    alpha(env, "submit", "-", input=json.dumps(email("c1")) + "\n", check=True)
    [item] = json.loads(alpha(env, "approvals", "list", "--json", check=True).stdout)
    assert item["to"] == "jane@acme.io" and item["breached"] is False
    p = alpha(env, "approvals", "approve", str(item["id"]), "--actor", "GHL_MASTER")
    assert p.returncode == 1 and "four-eyes" in p.stderr
    alpha(env, "approvals", "approve", str(item["id"]), "--actor", "bob", check=True)
    out = json.loads(alpha(env, "approvals", "process", "--json", check=True).stdout)
    assert [r["status"] for r in out["results"]] == ["sent"]
