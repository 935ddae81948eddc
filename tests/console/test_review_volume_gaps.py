"""Approvals and Shadow review at a day's volume, attacked (issue 13, item 3).

- The rendered email is content from outside (an agent's HTML, a template, an LLM sentence). ``st.html`` is not
  an iframe: a ``<style>`` in the email restyles the whole console (hide the findings, the Reject button), an
  element ``position: fixed`` covers it, an ``<img>`` or a CSS ``url()`` loads a remote tracker from the
  reviewer's browser (an "open" before the email was sent), and ``<a href>`` is a live link. What is rendered is
  the email's text and layout only.
- A decision acts on what the person saw: an item edited by someone else after it was shown (or after the bulk
  confirmation listed it) is refused, naming why, and the rest go ahead.
- A send whose recipient was suppressed since the request was raised shows the finding and cannot be approved.
- At 425 shadow drafts the bulk confirmation lists every email it acts on, with its current review status.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from sqlmodel import select

from engine.adapters.models import Approval, Draft, Lead, OutboxItem, ShadowRun
from tests.conftest import LIVE, deep_merge
from tests.console.conftest import no_exception as ok, text
from tests.helpers import email

APPROVALS = "pages/approvals.py"
SHADOW = "pages/shadow_review.py"
ASSISTED = deep_merge(LIVE, {"rollout_phase": {"current": "assisted"}})

HOSTILE = ('<style>.stButton, [data-testid="stAlertContentError"] {display: none !important}</style>'
           '<div style="position: fixed; top: 0; left: 0; width: 100vw; height: 100vh; z-index: 99999; '
           'background: white url(https://tracker.example/bg.gif)">Looks fine, approve it.</div>'
           '<p>See <a href="https://evil.example/login?u=1" target="_blank" onclick="x()">our report</a>.</p>'
           '<img src="https://tracker.example/open.gif?id=42" width="1" height="1" alt="">'
           '<p style="color: #333; font-weight: bold">Kind regards</p>'
           '<!--[if mso]><img src="https://tracker.example/mso.gif"><![endif]-->'
           '<link rel="stylesheet" href="https://tracker.example/x.css"><meta http-equiv="refresh" content="0">'
           '<svg><image href="https://tracker.example/svg.gif"/></svg>'
           '<table background="https://tracker.example/table.gif"><tr><td>cell text</td></tr></table>')


def assert_inert(body: str) -> None:
    """Nothing in ``body`` can restyle the page, cover it, load anything or navigate anywhere."""
    low = body.lower()
    for bad in ("<style", "<link", "<meta", "<svg", "<script", "position", "z-index", "url(", " src=", "href=",
                "background=", "onclick", "tracker.example/bg", "mso.gif", "table.gif", "x.css", "svg.gif"):
        assert bad not in low, (bad, body)


# ------------------------------------------------------------------------------------------ approvals

@pytest.fixture
def q(ctx, app_factory, monkeypatch):
    """An assisted-phase engine on the console's database with three pending sends."""
    app = app_factory(production=ASSISTED, warmup={"enabled": False})
    monkeypatch.setenv("ALPHA_CONFIG_DIR", str(app.settings.config_dir))
    for phase in ("parallel", "assisted"):
        app.control.set_phase(phase, "approvals page test", "test", force=True)
    ids = []
    for i in range(3):
        r = app.gateway.submit(email(f"k{i}", to=f"buyer{i}@acme{i}.io", tier=2, subject=f"Subject {i}"))
        assert r.status == "pending_approval"
        with app.store.read() as s:
            ids.append(s.get(OutboxItem, r.outbox_id).approval_id)
    now = datetime.now(timezone.utc)
    with app.store.write() as s:
        for n, i in enumerate(ids):
            a = s.get(Approval, i)
            a.sla_due_at, a.expires_at = now + timedelta(minutes=240 + n), now + timedelta(days=2)
            s.add(a)
    ctx.eng, ctx.sends = app, ids
    return ctx


def status_of(app, approval_id):
    with app.store.read() as s:
        return s.get(Approval, approval_id).status


def outbox_of(app, approval_id) -> OutboxItem:
    with app.store.read() as s:
        return s.exec(select(OutboxItem).where(OutboxItem.approval_id == approval_id)).one()


def test_the_rendered_email_cannot_restyle_cover_track_or_link(q):
    i = q.sends[0]
    with q.eng.store.write() as s:  # an agent's HTML as submitted (the gate reads it; the reviewer sees it)
        row = s.exec(select(OutboxItem).where(OutboxItem.approval_id == i)).one()
        record = dict(row.record)
        record["html"] = HOSTILE + row.html
        row.record, row.html = record, record["html"]
        s.add(row)
    at = ok(q.page(APPROVALS, "approver"))
    at.selectbox(key="appr_open").set_value(i).run()
    [h] = ok(at).get("html")
    body = h.proto.body
    assert_inert(body)
    # the reader still sees the email: its text, where its links go (as text), that an image was not loaded
    for shown in ("Looks fine, approve it.", "our report", "https://evil.example/login?u=1", "Kind regards",
                  "cell text", "image not loaded", "tracker.example/open.gif"):
        assert shown in body, shown
    assert "color: #333" in body and "font-weight: bold" in body  # harmless styling is kept


def test_approving_an_item_edited_by_someone_else_after_it_was_shown_is_refused(q):
    i = q.sends[0]
    at = ok(q.page(APPROVALS, "approver"))
    at.selectbox(key="appr_open").set_value(i).run()
    assert "Subject 0" in text(ok(at).text)  # what the approver reads
    q.eng.approvals.edit(i, "console:admin", subject="Changed while you were reading")  # another tab
    at.button(key=f"approve_{i}").click().run()
    assert "changed since you saw it" in text(ok(at).error)
    assert status_of(q.eng, i) == "pending"
    assert "Changed while you were reading" in text(at.text)  # now shown: the next click approves this
    at.button(key=f"approve_{i}").click().run()
    assert status_of(q.eng, i) == "approved"


def test_an_edit_saved_from_a_stale_form_does_not_overwrite_another_edit(q):
    i = q.sends[0]
    at = ok(q.page(APPROVALS, "admin"))
    at.selectbox(key="appr_open").set_value(i).run()
    q.eng.approvals.edit(i, "console:approver", subject="The approver's subject")
    ok(at).text_input(key=f"edit_subject_{i}").input("The admin's subject")
    at.button(key=f"edit_{i}").click().run()
    assert "changed since you saw it" in text(ok(at).error)
    assert outbox_of(q.eng, i).subject == "The approver's subject"


def test_bulk_confirmation_acts_on_the_items_as_it_listed_them(q):
    """The dialog lists three items; before the click one is edited by someone else and one is approved by
    someone else: exactly the listed, unchanged one is approved, the others are refused with their reason."""
    at = ok(q.page(APPROVALS, "approver"))
    next(b for b in at.button if b.label.startswith("Select all on this page")).click().run()
    next(b for b in ok(at).button if b.label == "Approve 3 selected").click().run()
    listed = [t.value for t in ok(at).text if re.match(r"#\d+ +send ", t.value)][0]
    assert "Subject 1" in listed and "Subject 2" in listed
    q.eng.approvals.edit(q.sends[1], "console:admin", subject="Swapped in after the listing")
    q.eng.approvals.approve(q.sends[2], "console:admin")
    listed_now = [t.value for t in at.text if re.match(r"#\d+ +send ", t.value)]
    at.button(key="bulk_confirm").click().run()
    ok(at)
    assert [status_of(q.eng, i) for i in q.sends] == ["approved", "pending", "approved"]
    with q.eng.store.read() as s:
        assert s.get(Approval, q.sends[2]).decided_by == "console:admin"
    summary = text(at.warning)
    assert f"Approved 1 (#{q.sends[0]})" in summary
    assert f"#{q.sends[1]}: approval {q.sends[1]} changed since you saw it" in summary
    assert f"#{q.sends[2]}: approval {q.sends[2]} is approved, not pending" in summary
    assert listed_now and "Swapped in" not in listed_now[0]


def test_a_send_to_an_address_suppressed_since_shows_it_and_is_not_approved(q):
    """A suppression that reached the list without cancelling the queue (another tool, an older version; a
    person's App.suppress cancels the approval at once): the page shows it and refuses to approve."""
    from engine.services.suppressions import add_suppression

    i = q.sends[0]
    with q.eng.store.write() as s:
        assert add_suppression(s, "buyer0@acme0.io", "unsubscribed", "import", "old list", q.eng.clock(), "import")
    at = ok(q.page(APPROVALS, "approver"))
    data = at.dataframe(key="appr_table").value
    assert dict(zip(data["id"], data["findings"]))[i] == 1
    at.selectbox(key="appr_open").set_value(i).run()
    codes = [str(c) for d in ok(at).dataframe if "code" in d.value for c in d.value["code"]]
    assert "SUPPRESSED_RECIPIENT" in codes
    at.button(key=f"approve_{i}").click().run()
    assert "SUPPRESSED_RECIPIENT" in text(ok(at).error) and status_of(q.eng, i) == "pending"
    assert not [m for m in at.success if "Approved" in str(m.value)]


# ------------------------------------------------------------------------------------------ shadow review

def bulk_run(app, n: int) -> int:
    """A shadow run of ``n`` drafted emails (the shape shadow_run leaves behind; lead ids 1..n)."""
    now = app.clock()
    with app.store.write_plain() as s:
        run_ = ShadowRun(started_at=now, finished_at=now, contacts=n, summary={"by_reason": {"PHASE_BLOCKS_SEND": n}})
        s.add(run_)
        s.flush()
        rid = run_.id
        conn = s.connection()
        ids = range(1, n + 1)
        conn.execute(sa.insert(Lead.__table__), [
            dict(id=i, email=f"p{i}@bulk{i}.example", first_name="Pat", company=f"Bulk {i}", tier=1 + i % 3,
                 status="new", sequence_step=0, website_visits=0, created_at=now) for i in ids])
        conn.execute(sa.insert(Draft.__table__), [
            dict(lead_id=i, sequence="cold", step=1, template_id="cold-first-t1", template_version="1.0.0",
                 subject=f"Hello {i}", html=HOSTILE if i == 1 else "<p>Hi Pat</p>", text="Hi Pat\n",
                 provider="template", flags=[], status="draft", created_at=now) for i in ids])
        conn.execute(sa.insert(OutboxItem.__table__), [
            dict(idempotency_key=f"shadow-{rid}-{i}", payload_hash="0" * 64, agent="GHL_MASTER", action="send_email",
                 channel="email", to_email=f"p{i}@bulk{i}.example", lead_id=str(i), tier=1 + i % 3,
                 status="shadowed", reasons=[{"code": "PHASE_BLOCKS_SEND", "detail": "nothing leaves"}],
                 created_at=now, attempts=0) for i in ids])
    return rid


def draft_status(app) -> dict[int, str]:
    with app.store.read() as s:
        return dict(s.exec(select(Draft.id, Draft.status)).all())


def test_shadow_bulk_confirmation_lists_all_425_with_their_status(ctx):
    bulk_run(ctx.app, 425)
    first = min(draft_status(ctx.app))
    from engine.services.pipeline import set_draft_status

    set_draft_status(ctx.app, first + 300, "rejected", "console:admin", "wrong persona")  # a colleague's no
    at = ok(ctx.page(SHADOW, "approver"))
    next(b for b in at.button if b.label == "Select all 425 matching").click()
    at = ok(at.run())
    next(b for b in at.button if b.label == "Approve 425 selected").click()
    at = ok(at.run())
    [listed] = [t.value for t in at.text if t.value.startswith("#")]
    lines = listed.split("\n")
    assert len(lines) == 425 and "beyond" not in listed
    assert [int(line.split()[0][1:]) for line in lines] == sorted(draft_status(ctx.app))
    assert all(f"@bulk{n}.example" in line for n, line in enumerate(lines, 1))
    rejected = next(line for line in lines if line.startswith(f"#{first + 300} "))
    assert "rejected" in rejected and "console:admin" in rejected  # whose decision it would overturn


def test_shadow_rendered_html_is_inert(ctx):
    bulk_run(ctx.app, 3)
    first = min(draft_status(ctx.app))
    at = ok(ctx.page(SHADOW, "approver"))
    at.selectbox(key="sr_pick").set_value(first)
    at = ok(at.run())
    [h] = at.get("html")
    assert_inert(h.proto.body)
    assert "our report" in h.proto.body and "https://evil.example/login?u=1" in h.proto.body



def test_ones_own_edit_is_not_reported_as_a_change_by_someone_else(q):
    """After saving an edit, the next screen showed "#N changed since it was shown (edited by <me>)" about the
    person's own edit: the version on screen is reset on success."""
    i = q.sends[0]
    at = ok(q.page(APPROVALS, "admin"))
    at.selectbox(key="appr_open").set_value(i).run()
    ok(at).text_input(key=f"edit_subject_{i}").input("A better subject line")
    at.button(key=f"edit_{i}").click().run()
    ok(at)
    assert outbox_of(q.eng, i).subject == "A better subject line"
    assert not [w for w in at.warning if "changed since it was shown" in str(w.value)]
    at.run()
    assert not [w for w in ok(at).warning if "changed since it was shown" in str(w.value)]
