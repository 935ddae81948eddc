"""Approval decisions against what the gate will decide when the item executes (issue 13, item 3).

A person's "no" wins at once: a send whose recipient was suppressed (by hand, from the console or the CLI) or
whose lead stopped after the request was raised is refused when someone approves it, with the reason, instead of
being approved with a green banner and denied later by the worker. The queue and the item's detail show it as
a finding, so the table says so before anyone clicks. An approval or an edit acts on the message the person saw:
when someone else edited it in between, the decision is refused and nothing changes.
"""
from __future__ import annotations

import pytest
from sqlmodel import select

from engine.adapters.models import Approval, Lead, OutboxItem
from engine.core.errors import InvalidRequest
from tests.integration.test_approvals import ASSISTED, add_users, pending_one, sent


@pytest.fixture(autouse=True)
def _no_users_env(monkeypatch):
    for var in ("ALPHA_USERS_FILE", "ALPHA_DEMO"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def app(app_factory):
    app = app_factory(production=ASSISTED, warmup={"enabled": False})
    add_users(app.settings.config_dir)
    return app


def status(app, approval_id):
    with app.store.read() as s:
        return s.get(Approval, approval_id).status


def test_a_person_suppressing_an_address_cancels_its_pending_approval_at_once(app):
    """A person's "no" wins at once: suppressing an address by hand (console, CLI) cancels the queued send to
    it and its pending approval in the same transaction, as the webhook and one-click paths do."""
    appr, row = pending_one(app, to="late@acme.io")
    # another spelling of the same mailbox, suppressed by a person after the request was raised
    assert app.suppress("Late@ACME.io", "unsubscribed", "console:olga", detail="asked on the phone")
    assert status(app, appr.id) == "cancelled"
    with app.store.read() as s:
        assert s.get(OutboxItem, row.id).status == "cancelled"
    assert appr.id not in [r["id"] for r in app.approvals.queue()["rows"]]
    with pytest.raises(InvalidRequest):
        app.approvals.approve(appr.id, "bob")
    app.approvals.process()
    assert sent(app) == []


def test_approving_a_send_to_an_address_suppressed_since_is_refused_at_once(app):
    """A suppression row that reached the list without cancelling the queue (written by another tool, an older
    version): the approval shows it as a finding and is refused, never approved to be denied by the worker."""
    appr, _ = pending_one(app, to="late@acme.io")
    from engine.services.suppressions import add_suppression

    with app.store.write() as s:  # the bare writer: the list only, nothing cancelled
        assert add_suppression(s, "Late@ACME.io", "unsubscribed", "import", "old list", app.clock(), "import")
    q = app.approvals.queue()
    [row] = [r for r in q["rows"] if r["id"] == appr.id]
    assert "SUPPRESSED_RECIPIENT" in [f["code"] for f in row["findings"]]  # the table's findings column says so
    assert "SUPPRESSED_RECIPIENT" in [f["code"] for f in app.approvals.detail(appr.id)["findings"]]
    with pytest.raises(InvalidRequest, match="SUPPRESSED"):
        app.approvals.approve(appr.id, "bob")
    assert status(app, appr.id) == "pending"  # not approved: reject it (with a reason) or let it expire
    [out] = app.approvals.approve_many([appr.id], "bob")
    assert not out["ok"] and "SUPPRESSED" in out["error"]
    app.approvals.reject(appr.id, "bob", "suppressed meanwhile")
    assert status(app, appr.id) == "rejected"
    app.approvals.process()
    assert sent(app) == []


def test_approving_a_send_to_a_lead_stopped_since_is_refused(app):
    appr, _ = pending_one(app, to="stop@acme.io")
    with app.store.write() as s:
        s.add(Lead(email="stop@acme.io", company="Acme", status="unsubscribed", stop_reason="asked by phone",
                   sequence_stopped_at=app.clock()))
    with pytest.raises(InvalidRequest, match="SEQUENCE_STOPPED"):
        app.approvals.approve(appr.id, "bob")
    assert status(app, appr.id) == "pending"


def test_an_approval_the_gate_would_refuse_for_its_content_is_refused(app):
    """The content rules tightened after the request was raised (a new forbidden claim): approving it would only
    be denied by the worker; it is refused now with the finding, and an edit that removes it makes it approvable."""
    appr, row = pending_one(app)
    with app.store.write() as s:
        r = s.get(OutboxItem, row.id)
        record = dict(r.record)
        record["html"] = record["html"].replace("a short note about pipeline reviews",
                                                "guaranteed results for pipeline reviews")
        r.record, r.html = record, record["html"]
        s.add(r)
    with pytest.raises(InvalidRequest, match="FORBIDDEN_CLAIM"):
        app.approvals.approve(appr.id, "bob")
    app.approvals.edit(appr.id, "alice", html=row.html)
    app.approvals.approve(appr.id, "bob")
    assert status(app, appr.id) == "approved"


def test_hot_leads_and_clean_sends_are_approved_as_before(app):
    appr, _ = pending_one(app)
    assert app.approvals.detail(appr.id)["findings"] == []
    app.approvals.approve(appr.id, "bob")
    app.approvals.process()
    assert len(sent(app)) == 1


def test_an_approval_acts_on_the_message_the_approver_saw(app):
    """Bob opens the item and reads subject A; meanwhile Alice edits it to subject B. Bob's approval names the
    version he saw, so it is refused (he must read the edited message) rather than approving B unseen."""
    appr, _ = pending_one(app)
    seen = app.approvals.detail(appr.id)["version"]
    app.approvals.edit(appr.id, "alice", subject="A subject bob never read")
    with pytest.raises(InvalidRequest, match="changed"):
        app.approvals.approve(appr.id, "bob", seen=seen)
    [out] = app.approvals.approve_many([appr.id], "bob", seen={appr.id: seen})
    assert not out["ok"] and "changed" in out["error"]
    assert status(app, appr.id) == "pending"
    now_seen = app.approvals.detail(appr.id)["version"]
    assert now_seen != seen
    app.approvals.approve(appr.id, "bob", seen=now_seen)
    app.approvals.process()
    [msg] = sent(app)
    assert msg.subject == "A subject bob never read"


def test_an_edit_made_on_a_stale_copy_does_not_overwrite_another_edit(app):
    appr, _ = pending_one(app)
    seen = app.approvals.detail(appr.id)["version"]
    app.approvals.edit(appr.id, "alice", subject="Alice's subject", seen=seen)
    with pytest.raises(InvalidRequest, match="changed"):
        app.approvals.edit(appr.id, "carol", subject="Carol's subject", seen=seen)
    with app.store.read() as s:
        row = s.exec(select(OutboxItem).where(OutboxItem.approval_id == appr.id)).one()
    assert row.subject == "Alice's subject"
