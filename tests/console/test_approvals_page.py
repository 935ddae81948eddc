"""Approvals page: the queue with SLA countdowns, detail, approve / reject / edit, bulk approve, four-eyes."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from engine.adapters.models import Approval, Lead, OutboxItem
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


def button(at, label):
    return next(b for b in at.button if b.label == label)


def bulk_list(at) -> dict[int, str]:
    """The confirmation's list of the items it acts on: id -> its line."""
    [block] = [t.value for t in at.text if __import__("re").match(r"#\d+ +(send|hot lead) ", t.value)]
    return {int(line.split()[0][1:]): line for line in block.split("\n")}


def select_rows(at, *positions):
    """Tick rows of the queue table as a person would (the dataframe's selection state)."""
    at.session_state["appr_table"] = {"selection": {"rows": list(positions), "columns": [], "cells": []}}
    return ok(at.run())


def test_queue_shows_sla_countdowns_most_urgent_first_and_the_hot_lead_as_text(q):
    at = ok(q.page(PAGE, "approver"))
    data = at.dataframe(key="appr_table").value
    assert list(data["id"]) == [q.hot, *q.sends]  # 5-minute SLA first
    assert list(data["kind"]) == ["HOT LEAD", "send", "send"]
    assert data["SLA"][0] == "5 min left" and data["SLA"][1] == "4 h 0 min left"
    assert list(data["findings"]) == [0, 0, 0] and list(data["requested by"])[1] == "GHL_MASTER"
    assert data["company"][0] == XSS  # a dataframe cell: text, never HTML
    assert XSS not in "".join(m.value for m in at.markdown)  # not in any markdown element either
    assert XSS in text(at.text)  # the detail (first item open) shows it as plain text
    at = select_rows(at, 0, 2)
    assert not at.warning  # no widget-state warnings from the selection bookkeeping
    assert at.metric[2].value == "2"


def test_breach_marker_after_the_sla_and_the_age_filter(q):
    due(q.eng, q.hot, minutes=-7, escalated_to="ops")
    at = ok(q.page(PAGE, "approver"))
    data = at.dataframe(key="appr_table").value
    assert data["SLA"][0].startswith("BREACHED") and "escalated to ops" in data["SLA"][0]  # words, no emoji
    at.selectbox(key="appr_age").set_value("SLA breached").run()
    assert list(ok(at).dataframe(key="appr_table").value["id"]) == [q.hot]


def test_filter_by_recipient_or_company_text(q):
    at = ok(q.page(PAGE, "approver"))
    at.text_input(key="appr_search").input("ACME1.io").run()
    assert list(ok(at).dataframe(key="appr_table").value["id"]) == [q.sends[1]]
    at.text_input(key="appr_search").input("nobody-matches").run()
    assert "No items match these filters." in text(ok(at).info)


def test_the_item_in_focus_shows_the_email_the_gates_findings_and_the_leads_facts(q):
    at = ok(q.page(PAGE, "approver"))
    at = select_rows(at, 1)  # one ticked row is the item in focus
    assert at.selectbox(key="appr_open").value == q.sends[0]
    [h] = [h for h in at.get("html")]
    assert "a short note about pipeline reviews" in h.proto.body and not h.proto.unsafe_allow_javascript
    body = text(at.text)
    assert "buyer0@acme0.io" in body and "Subject 0" in body
    assert "https://" in body and "unsubscribe" in body  # the plain text: addresses as text
    assert not any("https://" in m.value for m in at.markdown)  # never a markdown (live) link
    assert "Content rules: nothing found" in text(at.caption)
    # the buttons name the item and carry the shortcuts
    assert at.button(key=f"approve_{q.sends[0]}").label == f"Approve #{q.sends[0]}"
    assert at.button(key=f"reject_{q.sends[0]}").label == f"Reject #{q.sends[0]}"
    assert {b.proto.shortcut.lower() for b in at.button if b.proto.shortcut} >= {"a", "x", "j", "k", "e"}
    assert "J" in text(at.caption) and "next" in text(at.caption)
    at.button(key="appr_next").click().run()  # J: the next item
    assert ok(at).selectbox(key="appr_open").value == q.sends[1]
    at.button(key="appr_prev").click().run()  # K: back
    assert ok(at).selectbox(key="appr_open").value == q.sends[0]


def test_approve_from_the_detail_and_four_eyes_is_enforced(q):
    at = ok(q.page(PAGE, "approver"))
    at.selectbox(key="appr_open").set_value(q.sends[0]).run()
    at.button(key=f"approve_{q.sends[0]}").click().run()
    ok(at)
    assert status_of(q.eng, q.sends[0]) == "approved"
    assert f"Approved: #{q.sends[0]}." in text(at.success)
    # edit by admin, then admin cannot approve it (four-eyes): the refusal is shown, nothing changes
    at = ok(q.page(PAGE, "admin"))
    at.selectbox(key="appr_open").set_value(q.sends[1]).run()
    at.text_input(key=f"edit_subject_{q.sends[1]}").input("A sharper subject").run()
    at.button(key=f"edit_{q.sends[1]}").click().run()
    assert "the gate's rules find nothing" in text(ok(at).success)
    with q.eng.store.read() as s:
        assert s.exec(__import__("sqlmodel").select(OutboxItem).where(
            OutboxItem.approval_id == q.sends[1])).one().subject == "A sharper subject"
    at = ok(q.page(PAGE, "admin"))
    at.selectbox(key="appr_open").set_value(q.sends[1]).run()
    at.button(key=f"approve_{q.sends[1]}").click().run()
    assert "four-eyes" in text(ok(at).error) and status_of(q.eng, q.sends[1]) == "pending"


@pytest.mark.parametrize("field,value,code,term", [
    ("subject", "100% free: a question", "SPAM_CONTENT", "100% free"),
    ("html", None, "FORBIDDEN_CLAIM", "guaranteed results"),
])
def test_an_edit_with_findings_is_refused_listing_them_and_nothing_is_saved(q, field, value, code, term):
    """Seen: an edit that broke the content rules was saved (and approved) with a green banner."""
    i = q.sends[0]
    at = ok(q.page(PAGE, "admin"))
    at.selectbox(key="appr_open").set_value(i).run()
    with q.eng.store.read() as s:
        before = s.exec(__import__("sqlmodel").select(OutboxItem).where(OutboxItem.approval_id == i)).one()
    if field == "html":
        value = before.html.replace("a short note about pipeline reviews", "guaranteed results in a month")
    at.text_input(key=f"edit_subject_{i}").input(value) if field == "subject" else \
        at.text_area(key=f"edit_html_{i}").input(value)
    at.button(key=f"edit_{i}").click().run()
    ok(at)
    err = text(at.error)
    assert "Not saved" in err and code in err and term in err
    assert not at.success
    with q.eng.store.read() as s:
        after = s.exec(__import__("sqlmodel").select(OutboxItem).where(OutboxItem.approval_id == i)).one()
        appr = s.get(Approval, i)
    assert (after.subject, after.html) == (before.subject, before.html) and appr.edited_by is None
    assert appr.status == "pending"


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
    assert at.button(key=f"approve_{q.hot}").label == f"Take #{q.hot}"
    at.button(key=f"approve_{q.hot}").click().run()
    ok(at)
    assert status_of(q.eng, q.hot) == "approved"


def test_bulk_approve_ticked_rows_behind_one_confirmation_listing_them(q):
    """Seen: bulk approve meant typing ids into a multiselect. Rows are ticked in the table; one confirmation
    lists exactly the items it acts on; the summary says what was approved and what was refused, and why."""
    at = ok(q.page(PAGE, "approver"))
    assert button(at, "Approve 0 selected").disabled
    at = select_rows(at, 1, 2)
    assert at.metric[2].value == "2"
    button(at, "Approve 2 selected").click().run()
    ok(at)
    assert [status_of(q.eng, i) for i in q.sends] == ["pending", "pending"]  # nothing until confirmed
    listed = bulk_list(at)
    assert list(listed) == q.sends and "buyer0@acme0.io" in listed[q.sends[0]] and "Subject 1" in listed[q.sends[1]]
    at.button(key="bulk_confirm").click().run()
    ok(at)
    assert [status_of(q.eng, i) for i in q.sends] == ["approved", "approved"]
    assert status_of(q.eng, q.hot) == "pending"
    assert f"Approved 2 (#{q.sends[0]}, #{q.sends[1]})." in text(at.success)


def test_select_all_on_the_page_then_bulk_approve_reports_four_eyes_refusals(q):
    q.eng.approvals.edit(q.sends[1], "console:approver", subject="Edited by the approver")
    at = ok(q.page(PAGE, "approver"))
    button(at, "Select all on this page (3)").click().run()
    assert at.metric[2].value == "3"
    button(ok(at), "Approve 3 selected").click().run()
    assert list(bulk_list(ok(at))) == [q.hot, *q.sends]
    at.button(key="bulk_confirm").click().run()
    ok(at)
    assert [status_of(q.eng, i) for i in (q.hot, *q.sends)] == ["approved", "approved", "pending"]
    summary = text(at.warning)
    assert "Approved 2" in summary and "refused 1" in summary and f"#{q.sends[1]}: four-eyes" in summary


def test_bulk_reject_needs_a_reason_in_the_confirmation(q):
    at = ok(q.page(PAGE, "approver"))
    at = select_rows(at, 1, 2)
    button(at, "Reject 2 selected").click().run()
    at.button(key="bulk_confirm").click().run()
    assert "reason is required" in text(ok(at).error)
    assert [status_of(q.eng, i) for i in q.sends] == ["pending", "pending"]
    at.text_area(key="bulk_reason").input("wrong persona").run()
    at.button(key="bulk_confirm").click().run()
    ok(at)
    assert [status_of(q.eng, i) for i in q.sends] == ["rejected", "rejected"]


def test_select_all_shown_spans_pages(q, monkeypatch):
    for i in range(3):
        r = q.eng.gateway.submit(email(f"x{i}", to=f"more{i}@acme9.io", tier=2, subject=f"More {i}"))
        assert r.status == "pending_approval"
    at = ok(q.page(PAGE, "approver"))
    at.text_input(key="appr_search").input("acme").run()  # the five sends, not the hot lead
    button(ok(at), "Select all 5 shown").click().run()
    assert ok(at).metric[2].value == "5"
    button(at, "Clear").click().run()
    assert ok(at).metric[2].value == "0"


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
