"""The approval queue on SQLite and PostgreSQL: SLAs, expiry, four-eyes, restarts, exactly-once execution."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlmodel import select

from engine.app import App
from engine.core.errors import ConfigError, InvalidRequest
from engine.adapters.models import Approval, OutboxItem, SandboxMessage
from tests.conftest import FORCE_INIT, LIVE, deep_merge
from tests.helpers import alpha, alpha_env, email

ASSISTED = deep_merge(LIVE, {"rollout_phase": {"current": "assisted"}})


APPROVERS = {"alice": "approver", "bob": "approver", "carol": "approver", "olga": "ops", "adam": "admin",
             "eve": "ae"}


def add_users(config_dir, users=APPROVERS):
    """The roster's groups are console roles: approvers must be users in the users file."""
    import engine.adapters.users as u

    rounds, u.BCRYPT_ROUNDS = u.BCRYPT_ROUNDS, 4
    try:
        for name, role in users.items():
            u.add_user(name, name.title(), f"{name}@example.com", role, "a-long-test-password-1",
                       path=Path(config_dir) / "users.yaml")
    finally:
        u.BCRYPT_ROUNDS = rounds


@pytest.fixture(autouse=True)
def _no_users_env(monkeypatch):
    for var in ("ALPHA_USERS_FILE", "ALPHA_DEMO"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def app(app_factory):
    app = app_factory(production=ASSISTED, warmup={"enabled": False})
    add_users(app.settings.config_dir)
    return app


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
    # expiry counts coverage hours only (Mon-Fri 08:00-18:00 New York): 4320 minutes are 7.2 working days
    app.clock.advance(minutes=4320)
    assert app.approvals.sweep()["expired"] == []
    assert appr.expires_at.astimezone(__import__("zoneinfo").ZoneInfo("America/New_York")).strftime(
        "%a %Y-%m-%d %H:%M") == "Thu 2026-12-03 12:00"
    app.clock.now = appr.expires_at
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
    from engine.services.suppressions import add_suppression

    appr, _ = pending_one(app, to="late@acme.io")
    app.approvals.approve(appr.id, "bob")
    with app.store.write() as s:  # after approval, before execution; the bare list writer cancels nothing
        add_suppression(s, "late@acme.io", "unsubscribed", "import", "", app.clock(), "recipient")
    [res] = app.approvals.process()["results"]
    assert res["status"] == "denied" and res["reasons"] == ["SUPPRESSED_RECIPIENT"] and sent(app) == []
    appr0, row0 = pending_one(app, key="k0", to="later@acme.io")
    app.approvals.approve(appr0.id, "bob")
    app.suppress("later@acme.io", "unsubscribed", "recipient")  # a person's no: the approved send is cancelled
    assert app.approvals.process()["results"] == [] and sent(app) == []
    with app.store.read() as s:
        assert s.get(OutboxItem, row0.id).status == "cancelled"
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
    from engine.services.approvals import load_roster

    with pytest.raises(ConfigError) as e:
        load_roster(cfg)
    msg = str(e.value)
    assert "lacks hot_lead" in msg and "action_types.tier1_email.backup" in msg


def test_cli_list_approve_process(db_url, config_factory, tmp_path):
    cfg = config_factory(production=ASSISTED, warmup={"enabled": False})
    add_users(cfg)
    env = alpha_env(db_url, cfg, tmp_path)
    alpha(env, "init", *FORCE_INIT, check=True)
    alpha(env, "submit", "-", input=json.dumps(email("c1")) + "\n", check=True)
    [item] = json.loads(alpha(env, "approvals", "list", "--json", check=True).stdout)
    assert item["to"] == "jane@acme.io" and item["breached"] is False
    p = alpha(env, "approvals", "approve", str(item["id"]), "--actor", "GHL_MASTER")
    assert p.returncode == 1 and "four-eyes" in p.stderr
    alpha(env, "approvals", "approve", str(item["id"]), "--actor", "bob", check=True)
    out = json.loads(alpha(env, "approvals", "process", "--json", check=True).stdout)
    assert [r["status"] for r in out["results"]] == ["sent"]


# ------------------------------------------------------------------------------------------ roster groups

def test_only_the_rosters_group_admins_or_the_named_backup_decide(app):
    appr, _ = pending_one(app, tier=2)  # tier2_email: group approver, backup admin
    with pytest.raises(InvalidRequest, match="needs the group 'approver'") as e:
        app.approvals.approve(appr.id, "eve")  # an AE
    assert "eve has ae" in str(e.value)
    with pytest.raises(InvalidRequest, match="not a user"):
        app.approvals.approve(appr.id, "mallory")
    with pytest.raises(InvalidRequest, match="needs the group"):
        app.approvals.reject(appr.id, "olga", "ops is not in the tier-2 group")
    with pytest.raises(InvalidRequest, match="needs the group"):
        app.approvals.edit(appr.id, "eve", subject="sneaky")
    app.approvals.approve(appr.id, "console:adam")  # admin
    appr2, _ = pending_one(app, key="k2", to="second@acme.io", tier=2)
    add_users(app.settings.config_dir, {"bea": "ops"})
    data = json.loads((Path(app.settings.config_dir) / "approvers.json").read_text())
    data["action_types"]["tier2_email"]["backup"] = "bea"
    (Path(app.settings.config_dir) / "approvers.json").write_text(json.dumps(data))
    app.approvals._roster = None
    app.approvals.approve(appr2.id, "bea")  # the named backup, outside the group


def test_four_eyes_compares_people_not_tools(app):
    appr, _ = pending_one(app)
    app.approvals.edit(appr.id, "console:alice", subject="Edited in the console")
    with pytest.raises(InvalidRequest, match="four-eyes"):
        app.approvals.approve(appr.id, "cli:alice")
    with pytest.raises(InvalidRequest, match="four-eyes"):
        app.approvals.approve(appr.id, "ALICE")


def test_no_users_file_means_nobody_approves(app_factory):
    app = app_factory(production=ASSISTED, warmup={"enabled": False})
    appr, _ = pending_one(app)
    with pytest.raises(InvalidRequest, match="users"):
        app.approvals.approve(appr.id, "bob")
    assert app.approvals.process()["results"] == []


# ------------------------------------------------------------------------------------------ hot leads

def hot_lead(app, email_="hot@acme.io"):
    from engine.adapters.models import Lead

    now = app.clock()
    with app.store.write() as s:
        lead = Lead(email=email_, company="Acme", status="hot")
        s.add(lead)
        s.flush()
        appr = app.approvals.raise_hot_lead(s, lead, f"Reply from {email_}", "call me", "webhook:ghl", now)
        return appr.id, lead.id


def test_hot_lead_escalation_has_a_five_minute_sla_escalates_and_expires(app):
    aid, lead_id = hot_lead(app)
    [row] = app.approvals.queue(kind="hot_lead")["rows"]
    assert row["id"] == aid and row["lead_id"] == lead_id and row["sla_minutes_left"] == 5.0
    assert row["to"] is None and row["summary"] == "Reply from hot@acme.io: call me"
    app.clock.advance(minutes=6)
    assert app.approvals.sweep() == {"escalated": [aid], "expired": []}
    [row] = app.approvals.queue(kind="hot_lead", breached_only=True)["rows"]
    assert row["breached"] and row["escalated_to"] == "ops" and row["status"] == "pending"
    app.clock.advance(minutes=1440)  # a day later, but only 16 of its 24 coverage hours (07:00-20:00) have passed
    assert app.approvals.sweep()["expired"] == []
    app.clock.advance(hours=22)  # Thursday 08:06 in New York: 24 covered hours since Tuesday 10:00
    assert app.approvals.sweep()["expired"] == [aid]
    assert app.approvals.queue(status="expired")["rows"][0]["decided_by"] is None
    assert app.approvals.process()["results"] == []  # nothing to execute, nothing sent
    assert sent(app) == []


def test_hot_lead_taken_or_dismissed_is_audited_and_cannot_be_edited(app):
    from engine.adapters.models import AuditEntry

    a1, _ = hot_lead(app, "one@acme.io")
    a2, _ = hot_lead(app, "two@acme.io")
    with pytest.raises(InvalidRequest, match="no message to edit"):
        app.approvals.edit(a1, "bob", subject="x")
    with pytest.raises(InvalidRequest, match="four-eyes"):
        app.approvals.approve(a1, "webhook:ghl")
    app.approvals.approve(a1, "carol")
    with pytest.raises(InvalidRequest, match="reason"):
        app.approvals.reject(a2, "bob", " ")
    app.approvals.reject(a2, "bob", "existing customer, not a lead")
    with app.store.read() as s:
        events = [e.event for e in s.exec(select(AuditEntry).order_by(AuditEntry.seq)).all()]
    assert events[-4:] == ["approval.hot_lead", "approval.hot_lead", "approval.hot_lead_taken",
                           "approval.hot_lead_dismissed"]
    assert app.approvals.queue()["total"] == 0


def test_queue_mixes_sends_and_hot_leads_most_urgent_first_and_pages_in_sql(app):
    pending_one(app, key="s1", tier=2)  # 240-minute SLA
    aid, _ = hot_lead(app)  # 5 minutes: first
    q = app.approvals.queue(limit=1)
    assert q["total"] == 2 and [r["id"] for r in q["rows"]] == [aid]
    [second] = app.approvals.queue(limit=1, offset=1)["rows"]
    assert second["kind"] == "send" and second["to"] == "jane@acme.io" and second["lead_email"] is None
    assert app.approvals.queue(kind="send")["total"] == 1


def test_cli_lists_hot_leads(app, db_url, tmp_path):
    env = alpha_env(db_url, app.settings.config_dir, tmp_path)
    hot_lead(app, "cli-hot@acme.io")
    [item] = json.loads(alpha(env, "approvals", "list", "--json", "--kind", "hot_lead", check=True).stdout)
    assert item["kind"] == "hot_lead" and item["lead_email"] == "cli-hot@acme.io" and item["to"] is None
    assert "HOT LEAD cli-hot@acme.io" in alpha(env, "approvals", "list", check=True).stdout
    bad = alpha(env, "approvals", "list", "--kind", "sms")
    assert bad.returncode != 0 and "--kind 'sms'" in bad.stderr


# ------------------------------------------------------------------------------------------ edits re-checked, bulk

def _audit_events(app, ref):
    from engine.adapters.models import AuditEntry

    with app.store.read() as s:
        return [e.event for e in s.exec(select(AuditEntry).where(AuditEntry.ref == str(ref))).all()]


@pytest.mark.parametrize("edit,code,term", [
    ({"subject": "100% free: a question about your sales team"}, "SPAM_CONTENT", "100% free"),
    ({"text": "We promise guaranteed results within a month."}, "FORBIDDEN_CLAIM", "guaranteed results"),
])
def test_an_edit_the_gate_would_refuse_is_refused_and_nothing_is_saved(app, edit, code, term):
    """Seen: "Save edit and approve" approved an edit with a spam term; the gate refused it later. The edit is
    re-checked with the gate's own rules and refused, naming each finding and the matched text."""
    from engine.services.approvals import EditRefused

    appr, row = pending_one(app)
    html = row.html.replace("a short note about pipeline reviews", "guaranteed results, 100% free") \
        if "text" in edit else None
    with pytest.raises(EditRefused) as e:
        app.approvals.edit(appr.id, "alice", html=html, **edit)
    assert code in str(e.value) and term in str(e.value) and "Nothing was saved" in str(e.value)
    assert code in [f["code"] for f in e.value.findings]
    with app.store.read() as s:
        a, r = s.get(Approval, appr.id), s.get(OutboxItem, row.id)
    assert (r.subject, r.html, r.text, r.record) == (row.subject, row.html, row.text, row.record)
    assert a.edited_by is None and a.status == "pending"
    assert "approval.edited" not in _audit_events(app, appr.id)
    app.approvals.approve(appr.id, "alice")  # not an editor: still free to approve the unchanged message


def test_an_edit_that_drops_the_recipients_unsubscribe_link_is_refused(app):
    appr, row = pending_one(app)
    with pytest.raises(InvalidRequest, match="MISSING_UNSUBSCRIBE"):
        app.approvals.edit(appr.id, "alice", html="<p>Hi, a short note.</p>")
    app.approvals.edit(appr.id, "alice", subject="A clean new subject")  # a clean edit is saved
    with app.store.read() as s:
        assert s.get(OutboxItem, row.id).subject == "A clean new subject"


def test_approve_many_reports_each_item(app):
    """Bulk approve at volume: each item on its own, four-eyes and the roster per item, a refusal never stops
    the rest, and an item decided already says so."""
    items = [pending_one(app, key=f"m{i}", to=f"p{i}@acme.io")[0].id for i in range(4)]
    app.approvals.edit(items[1], "alice", subject="Edited by alice")
    app.approvals.reject(items[2], "bob", "wrong persona")
    out = app.approvals.approve_many(items + [items[0], 999999], "console:alice")
    by = {o["id"]: o for o in out}
    assert [o["id"] for o in out] == [*items, 999999]  # once each, in order
    assert by[items[0]]["ok"] and by[items[0]]["status"] == "approved"
    assert not by[items[1]]["ok"] and "four-eyes" in by[items[1]]["error"] and "edited" in by[items[1]]["error"]
    assert not by[items[2]]["ok"] and "rejected, not pending" in by[items[2]]["error"]
    assert by[items[3]]["ok"] and "does not exist" in by[999999]["error"]
    with app.store.read() as s:
        assert [s.get(Approval, i).status for i in items] == ["approved", "pending", "rejected", "approved"]
    # the roster per item: an ae may decide nothing
    out = app.approvals.approve_many([items[1]], "eve")
    assert not out[0]["ok"] and "needs the group" in out[0]["error"]
    with pytest.raises(InvalidRequest, match="reason"):
        app.approvals.reject_many([items[1]], "bob", " ")
    [r] = app.approvals.reject_many([items[1]], "bob", "tone")
    assert r["ok"] and r["status"] == "rejected"


def test_queue_filters_by_text_tier_and_age_and_lists_every_matching_id(app):
    a1 = pending_one(app, key="f1", to="ann@northwind.io", tier=3)[0].id
    a2 = pending_one(app, key="f2", to="bo@southwind.io", tier=2)[0].id
    a3 = pending_one(app, key="f3", to="cy@other.io", tier=2, subject="Northwind question")[0].id
    q = app.approvals.queue(search="NORTHWIND")
    assert sorted(q["ids"]) == sorted([a1, a3]) and q["total"] == 2
    assert sorted(app.approvals.queue(tier=2)["ids"]) == sorted([a2, a3])
    assert app.approvals.queue(search="southwind", tier=2)["ids"] == [a2]
    assert app.approvals.queue(search="northwind", tier=3)["ids"] == [a1]
    q = app.approvals.queue(limit=1, offset=1)
    assert q["total"] == 3 and len(q["rows"]) == 1 and q["rows"][0]["id"] == q["ids"][1]
    assert app.approvals.queue(older_than_minutes=5)["ids"] == []
    app.clock.advance(minutes=10)
    assert app.approvals.queue(older_than_minutes=5)["total"] == 3
    assert app.approvals.queue(search="100%_x")["ids"] == []  # LIKE wildcards are literal


def test_detail_has_the_message_the_findings_and_the_leads_facts(app):
    from engine.adapters.models import Lead

    with app.store.write() as s:
        s.add(Lead(email="jane@acme.io", email_key="jane@acme.io", company="Acme Inc.", tier=2, score=81,
                   country="Germany", timezone="Europe/Berlin", reply_class="interested"))
    appr, row = pending_one(app)
    d = app.approvals.detail(appr.id)
    assert d["to"] == "jane@acme.io" and d["html"] == row.html and d["findings"] == []
    assert all(isinstance(r.get("code"), str) for r in d["gate_reasons"])
    assert d["lead"]["company"] == "Acme Inc." and d["lead"]["score"] == 81 and d["lead"]["tier"] == 2
    assert d["lead"]["timezone"] == "Europe/Berlin" and d["lead"]["reply_class"] == "interested"
    assert d["touches"] == []


def test_in_demo_mode_the_roster_checks_read_the_demo_users_file_like_the_console(app, monkeypatch, tmp_path):
    """The console reads the demo users file in demo mode whatever ALPHA_USERS_FILE says; the four-eyes and roster
    checks must read the same file, or a demo approver is judged by the production roles."""
    from engine.adapters.users import users_file

    monkeypatch.setenv("ALPHA_USERS_FILE", str(tmp_path / "production-users.yaml"))
    assert app.approvals.users_path() == tmp_path / "production-users.yaml"
    monkeypatch.setenv("ALPHA_DEMO", "1")
    assert app.approvals.users_path() == users_file(demo=True) != tmp_path / "production-users.yaml"
