"""Approvals page: the queue with SLA countdowns, detail, approve / reject / edit, bulk approve, four-eyes."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from engine.models import Approval, Lead, OutboxItem
from tests.conftest import LIVE, deep_merge
from tests.helpers import email
from tests.console.conftest import ok, text

PAGE = "pages/approvals.py"
ASSISTED = deep_merge(LIVE, {"rollout_phase": {"current": "assisted"}})
XSS = "<img src=x onerror=alert(1)>"


@pytest.fixture
def q(ctx, app_factory, monkeypatch):
    """An assisted-phase engine on the console's database with two pending sends and one hot lead."""
    app = app_factory(production=ASSISTED, warmup={"enabled": False})
    monkeypatch.setenv("ALPHA_CONFIG_DIR", str(app.settings.config_dir))
    for phase in ("parallel", "assisted"):
        app.control.set_phase(phase, "approvals page test", "test", force=True)
    ids = []
    for i in range(2):
        r = app.gateway.submit(email(f"k{i}", to=f"buyer{i}@acme{i}.io", tier=2, subject=f"Subject {i}"))
        assert r.status == "pending_approval"
        with app.store.read() as s:
            ids.append(s.get(OutboxItem, r.outbox_id).approval_id)
    with app.store.write() as s:
        lead = Lead(email="hot@target.io", company=XSS, title="VP Sales")
        s.add(lead)
        s.flush()
        hot = app.approvals.raise_hot_lead(s, lead, "Reply from hot@target.io", "call me Tuesday", "webhook:ghl",
                                           app.clock())
    due(app, hot.id, minutes=5)  # the console's engine runs on the real clock: SLAs relative to it
    for i in ids:
        due(app, i, minutes=240)
    ctx.eng = app
    ctx.sends, ctx.hot = ids, hot.id
    return ctx


def due(app, approval_id, minutes, escalated_to=None):
    now = datetime.now(timezone.utc)
    with app.store.write() as s:
        a = s.get(Approval, approval_id)
        a.sla_due_at, a.expires_at = now + timedelta(minutes=minutes, seconds=20), now + timedelta(days=2)
        a.escalated_to = escalated_to
        s.add(a)


def status_of(app, approval_id):
    with app.store.read() as s:
        return s.get(Approval, approval_id).status


@pytest.mark.parametrize("user,allowed", [("ae", False), ("ops", False), ("approver", True), ("admin", True)])
def test_roles(q, user, allowed):
    at = ok(q.page(PAGE, user))
    if allowed:
        assert [t.value for t in at.title] == ["Approvals"]
    else:
        assert "Access refused" in text(at.error) and not at.title


def test_queue_shows_sla_countdowns_most_urgent_first_and_the_hot_lead_as_text(q):
    at = ok(q.page(PAGE, "approver"))
    [df] = at.dataframe
    data = df.value
    assert list(data["id"]) == [q.hot, *q.sends]  # 5-minute SLA first
    assert list(data["kind"]) == ["HOT LEAD", "send", "send"]
    assert data["SLA"][0] == "5 min left" and data["SLA"][1] == "4 h 0 min left"
    assert data["company"][0] == XSS  # a dataframe cell: text, never HTML
    assert XSS not in "".join(m.value for m in at.markdown)  # not in any markdown element either
    assert XSS in text(at.text)  # the detail (first item open) shows it as plain text


def test_breach_marker_after_the_sla(q):
    due(q.eng, q.hot, minutes=-7, escalated_to="ops")
    at = ok(q.page(PAGE, "approver"))
    data = at.dataframe[0].value
    assert data["SLA"][0].startswith("🔴 BREACHED") and "escalated to ops" in data["SLA"][0]
    at.toggle(key="appr_breached").set_value(True).run()
    assert list(ok(at).dataframe[0].value["id"]) == [q.hot]


def test_approve_from_the_detail_and_four_eyes_is_enforced(q):
    at = ok(q.page(PAGE, "approver"))
    at.selectbox(key="appr_open").set_value(q.sends[0]).run()
    body = text(ok(at).text)
    assert f"buyer0@acme0.io" in body and "Subject 0" in body
    at.button(key=f"approve_{q.sends[0]}").click().run()
    ok(at)
    assert status_of(q.eng, q.sends[0]) == "approved"
    # edit by admin, then admin cannot approve it (four-eyes): the refusal is shown, nothing changes
    at = ok(q.page(PAGE, "admin"))
    at.selectbox(key="appr_open").set_value(q.sends[1]).run()
    at.text_input(key=f"edit_subject_{q.sends[1]}").input("A sharper subject").run()
    at.button(key=f"edit_{q.sends[1]}").click().run()
    with q.eng.store.read() as s:
        assert s.exec(__import__("sqlmodel").select(OutboxItem).where(
            OutboxItem.approval_id == q.sends[1])).one().subject == "A sharper subject"
    at = ok(q.page(PAGE, "admin"))
    at.selectbox(key="appr_open").set_value(q.sends[1]).run()
    at.button(key=f"approve_{q.sends[1]}").click().run()
    assert "four-eyes" in text(ok(at).error) and status_of(q.eng, q.sends[1]) == "pending"


def test_reject_needs_a_reason(q):
    at = ok(q.page(PAGE, "approver"))
    at.selectbox(key="appr_open").set_value(q.sends[0]).run()
    at.button(key=f"reject_{q.sends[0]}").click().run()
    assert "reason is required" in text(ok(at).error) and status_of(q.eng, q.sends[0]) == "pending"
    at.text_input(key=f"reason_{q.sends[0]}").input("wrong persona").run()
    at.button(key=f"reject_{q.sends[0]}").click().run()
    ok(at)
    assert status_of(q.eng, q.sends[0]) == "rejected"


def test_take_a_hot_lead(q):
    at = ok(q.page(PAGE, "approver"))
    at.selectbox(key="appr_open").set_value(q.hot).run()
    assert "call me Tuesday" in text(at.text)
    at.button(key=f"approve_{q.hot}").click().run()
    ok(at)
    assert status_of(q.eng, q.hot) == "approved"


def test_bulk_approve_behind_a_confirmation(q):
    at = ok(q.page(PAGE, "approver"))
    at.multiselect(key="appr_bulk_ids").set_value(q.sends).run()
    at.button(key="appr_bulk_open").click().run()
    ok(at)
    assert [status_of(q.eng, i) for i in q.sends] == ["pending", "pending"]  # nothing until confirmed
    at.button(key="bulk_confirm").click().run()
    ok(at)
    assert [status_of(q.eng, i) for i in q.sends] == ["approved", "approved"]
    assert status_of(q.eng, q.hot) == "pending"


def test_roster_group_refusal_is_shown(q):
    import json
    from pathlib import Path

    cfg = Path(q.eng.settings.config_dir) / "approvers.json"
    data = json.loads(cfg.read_text())
    data["action_types"]["tier2_email"].update(group="ops", primary="ops", backup="admin")  # now ops' job
    cfg.write_text(json.dumps(data))
    at = ok(q.page(PAGE, "approver"))
    at.selectbox(key="appr_open").set_value(q.sends[0]).run()
    at.button(key=f"approve_{q.sends[0]}").click().run()
    assert "needs the group 'ops'" in text(ok(at).error) and status_of(q.eng, q.sends[0]) == "pending"


def test_empty_queue(ctx):
    at = ok(ctx.page(PAGE, "approver"))
    assert "Nothing is waiting for approval" in text(at.success)
