"""Shadow review page: the approver reads a shadow run's emails, filters them, approves, rejects with a reason,
edits then approves; untrusted lead data stays text; 10,000 emails list in under a second."""
from __future__ import annotations

import re
import time

import pytest
import sqlalchemy as sa
from sqlmodel import select

from engine.adapters.leads_csv import import_leads
from engine.adapters.models import AuditEntry, Draft, Lead, OutboxItem, ShadowRun
from engine.services.pipeline import shadow_run
from tests.console.conftest import no_exception, text

PAGE = "pages/shadow_review.py"
XSS = "<img src=x onerror=alert(1)>"
CSV = f"""Email,First Name,Last Name,Title,Company,Website,# Employees,Industry,Country,State,Time Zone
ana@northwind.example,Ana,Ruiz,VP Sales,{XSS},northwind.example,201-500,B2B SaaS,United States,NY,America/New_York
bo@tidaldata.example,Bo,Kim,Head of RevOps,TidalData,tidaldata.example,51-200,B2B SaaS,United States,CA,America/Los_Angeles
cy@cedarpipe.example,Cy,Ode,Sales Manager,Cedar Pipe,cedarpipe.example,51-200,Fintech,Germany,,Europe/Berlin
di@bluelabs.example,Di,Quinn,Marketing Manager,Blue Labs,bluelabs.example,11-50,Retail,United Kingdom,,Europe/London
ed@oakstack.example,Ed,Nash,CRO,Oak Stack,oakstack.example,501-1000,B2B SaaS,United States,TX,America/Chicago
"""  # noqa: E501  # CSV rows stay one per line


@pytest.fixture
def run(ctx, tmp_path):
    """Five leads through a shadow run: five drafted emails (one lead's company is an HTML payload)."""
    path = tmp_path / "leads.csv"
    path.write_text(CSV)
    assert import_leads(ctx.app.store, path, ctx.app.clock)["imported"] == 5
    summary = shadow_run(ctx.app, 10)
    assert summary["by_status"] == {"shadowed": 5}
    return summary["run_id"]


def drafts(app) -> dict[int, Draft]:
    with app.store.read() as s:
        return {d.id: d for d in s.exec(select(Draft)).all()}


def audit(app, draft_id: int) -> list[AuditEntry]:
    with app.store.read() as s:
        return list(s.exec(select(AuditEntry).where(AuditEntry.ref == str(draft_id),
                                                    AuditEntry.event.like("draft.%")).order_by(AuditEntry.seq)).all())


def picked(at) -> int:
    return at.selectbox(key="sr_pick").value


def progress(at) -> str:
    return at.get("progress")[0].proto.text


# ------------------------------------------------------------------------------------------ roles and empty

def test_empty_states_then_roles(ctx, tmp_path):
    at = no_exception(ctx.page(PAGE, None))
    assert "not signed in" in text(at.error) and not at.button
    for username in ("approver", "admin"):
        at = no_exception(ctx.page(PAGE, username))
        assert "No shadow run yet" in text(at.info)
        assert "alpha shadow run --contacts" in text(at.code)
        assert not at.button
    shadow_run(ctx.app, 10)  # no leads: a run that drafted nothing
    at = no_exception(ctx.page(PAGE, "approver"))
    assert "has no email to review" in text(at.info)

    path = tmp_path / "leads.csv"
    path.write_text(CSV)
    import_leads(ctx.app.store, path, ctx.app.clock)
    ctx.app.control.set_kill(True, "drill", "test")  # the gateway refuses before deciding: no email rows
    shadow_run(ctx.app, 10)
    at = no_exception(ctx.page(PAGE, "approver"))
    assert "has no email to review" in text(at.info) and "kill switch" in text(at.info)
    assert at.dataframe[0].value.set_index("outcome").loc["KILL_SWITCH", "leads"] == 5
    ctx.app.control.set_kill(False, "drill over", "test")
    shadow_run(ctx.app, 10)
    for username in ("ae", "ops"):
        at = no_exception(ctx.page(PAGE, username))
        assert "Access refused: this page needs the role approver or admin" in text(at.error)
        assert not at.button and not at.dataframe and not at.markdown
    for username in ("approver", "admin"):
        at = no_exception(ctx.page(PAGE, username))
        assert not at.error and progress(at) == "0 / 5 reviewed" and at.button(key=f"sr_approve_{picked(at)}")


# ------------------------------------------------------------------------------------------ listing

def test_the_batch_lists_with_progress_detail_and_filters(ctx, run):
    at = no_exception(ctx.page(PAGE, "admin"))
    assert progress(at) == "0 / 5 reviewed"
    table = at.dataframe[0].value
    assert len(table) == 5 and set(table["status"]) == {"draft"} and set(table["decision"]) == {"shadowed"}
    assert set(table["tier"]) <= {1, 2, 3}
    assert "PHASE_BLOCKS_SEND" in table["reasons"].iloc[0]
    assert picked(at) == int(table["id"].iloc[0])
    assert at.button(key=f"sr_approve_{picked(at)}") and at.button(key=f"sr_reject_{picked(at)}")
    assert "No guardrail findings." in text(at.success)
    assert "PHASE_BLOCKS_SEND" in at.dataframe[1].value["code"].tolist()  # the gateway's reasons

    all_rows = at.dataframe[0].value
    tier = int(all_rows["tier"].iloc[0])
    at.multiselect(key="sr_f_tier").set_value([tier])
    at = no_exception(at.run())
    table = at.dataframe[0].value
    assert set(table["tier"]) == {tier} and len(table) == (all_rows["tier"] == tier).sum()

    at.multiselect(key="sr_f_tier").set_value([])
    at.multiselect(key="sr_f_decision").set_value(["shadowed"])
    at.selectbox(key="sr_f_reason").set_value("OUTSIDE_WORKING_HOURS")
    at = no_exception(at.run())
    outside = all_rows[all_rows["reasons"].str.contains("OUTSIDE_WORKING_HOURS")]["id"].tolist()
    assert 0 < len(outside) < 5  # the test clock is inside some leads' working hours, outside others'
    assert at.dataframe[0].value["id"].tolist() == outside
    at.selectbox(key="sr_f_reason").set_value("SPAM_CONTENT")
    at = no_exception(at.run())
    assert "No email matches these filters." in text(at.info) and not at.dataframe

    at.selectbox(key="sr_f_reason").set_value("(any)")
    at.multiselect(key="sr_f_status").set_value(["approved"])
    at = no_exception(at.run())
    assert "No email matches" in text(at.info)

    # a second run where one recipient unsubscribed: the gateway denies that email
    at.multiselect(key="sr_f_status").set_value([])
    from engine.services.suppressions import add_suppression

    with ctx.app.store.write() as s:  # the list only (a person's App.suppress would also stop bo's sequence)
        add_suppression(s, "bo@tidaldata.example", "unsubscribed", "import", "", ctx.app.clock(), "test")
    second = shadow_run(ctx.app, 10)["run_id"]
    at = no_exception(at.run())  # the new run is offered (the page stays on the run it shows)
    assert at.selectbox(key="sr_run").value == run and at.selectbox(key="sr_run").options[0].startswith(
        f"Run {second}")
    at.selectbox(key="sr_run").set_value(second)
    at = no_exception(at.run())
    at.multiselect(key="sr_f_decision").set_value(["denied"])
    at.selectbox(key="sr_f_reason").set_value("SUPPRESSED_RECIPIENT")
    at = no_exception(at.run())
    assert at.dataframe[0].value["to"].tolist() == ["bo@tidaldata.example"]
    # back on the first run, filters it does not offer are dropped (not an error)
    at.selectbox(key="sr_run").set_value(run)
    at = no_exception(at.run())
    assert at.multiselect(key="sr_f_decision").value == [] and at.selectbox(key="sr_f_reason").value == "(any)"
    assert len(at.dataframe[0].value) == 5


# ------------------------------------------------------------------------------------------ decisions

def test_approver_approves_and_moves_to_the_next(ctx, run):
    at = no_exception(ctx.page(PAGE, "approver"))
    first = picked(at)
    at.button(key=f"sr_approve_{first}").click()
    at = no_exception(at.run())
    assert f"Draft #{first} approved." in text(at.success)
    assert drafts(ctx.app)[first].status == "approved"
    rows = audit(ctx.app, first)
    assert [(r.event, r.actor) for r in rows] == [("draft.approved", "console:approver")]
    assert progress(at) == "1 / 5 reviewed"
    assert picked(at) != first  # on to the next pending email
    assert at.dataframe[0].value.set_index("id").loc[first, "status"] == "approved"

    queued = picked(at)  # an email already queued has nothing left to decide: no buttons
    with ctx.app.store.write_plain() as s:
        d = s.get(Draft, queued)
        d.status = "queued"
        s.add(d)
    at.selectbox(key="sr_pick").set_value(queued)
    at = no_exception(at.run())
    assert "nothing left to decide" in text(at.info)
    assert not [b for b in at.button if b.key in (f"sr_approve_{queued}", f"sr_reject_{queued}")]


def test_reject_needs_a_reason(ctx, run):
    at = no_exception(ctx.page(PAGE, "approver"))
    target = picked(at)
    at.button(key=f"sr_reject_{target}").click()
    at = no_exception(at.run())
    assert "A reason is required to reject" in text(at.error)
    assert drafts(ctx.app)[target].status == "draft" and not audit(ctx.app, target)

    at.text_area(key=f"sr_reason_{target}").input("   ")
    at.button(key=f"sr_reject_{target}").click()
    at = no_exception(at.run())
    assert "A reason is required to reject" in text(at.error)
    assert drafts(ctx.app)[target].status == "draft"

    at.text_area(key=f"sr_reason_{target}").input("claims a call length we never offer")
    at.button(key=f"sr_reject_{target}").click()
    at = no_exception(at.run())
    assert drafts(ctx.app)[target].status == "rejected"
    (row,) = audit(ctx.app, target)
    assert row.event == "draft.rejected" and row.actor == "console:approver"
    assert "claims a call length we never offer" in row.data
    table = at.dataframe[0].value.set_index("id")
    assert table.loc[target, "note"] == "claims a call length we never offer"
    assert table.loc[target, "by"] == "console:approver"
    assert progress(at) == "1 / 5 reviewed"


def edit_form(at, target, subject=None, body=None, why=None):
    if subject is not None:
        at.text_input(key=f"sr_edit_subject_{target}").input(subject)
    if body is not None:
        at.text_area(key=f"sr_edit_body_{target}").input(body)
    if why is not None:
        at.text_input(key=f"sr_edit_why_{target}").input(why)
    return at


def test_an_edit_with_findings_is_refused_listing_them_nothing_saved_nothing_approved(ctx, run):
    """Seen: "Save edit and approve" approved a draft that now broke the content rules, with a green banner."""
    at = no_exception(ctx.page(PAGE, "admin"))
    target = picked(at)
    before = drafts(ctx.app)[target]
    edit_form(at, target, body="   ")  # an empty body is refused
    next(b for b in at.button if b.label == f"Save edit and approve #{target}").click()
    at = no_exception(at.run())
    assert "the body is empty" in text(at.error)
    assert drafts(ctx.app)[target].status == "draft" and not audit(ctx.app, target)

    body = before.text.replace("Best regards,", "This offer is 100% free and guaranteed results.\n\nBest regards,")
    for label in (f"Save edit and approve #{target}", f"Save edit #{target}"):
        edit_form(at, target, subject="Act now: a quick question", body=body, why="shorter subject")
        next(b for b in at.button if b.label == label).click()
        at = no_exception(at.run())
        err = text(at.error)
        assert "Not saved, not approved" in err, label
        for code, term in (("SPAM_CONTENT", "100% free"), ("SPAM_CONTENT", "Act now"),
                           ("FORBIDDEN_CLAIM", "guaranteed results")):
            assert code in err and term.lower() in err.lower(), (label, code, term)
        assert not [m for m in at.success if "edited" in str(m.value)]  # no green banner
        after = drafts(ctx.app)[target]
        assert (after.status, after.subject, after.text, after.html) == ("draft", before.subject, before.text,
                                                                         before.html)
        assert not audit(ctx.app, target)

    # without the findings the edit is saved and approved, and the editor recorded
    clean = before.text.replace("Best regards,", "Happy to send a two-page overview.\n\nBest regards,")
    edit_form(at, target, subject="A quick question", body=clean, why="shorter subject")
    next(b for b in at.button if b.label == f"Save edit and approve #{target}").click()
    at = no_exception(at.run())
    assert f"Draft #{target} edited and approved." in text(at.success)
    after = drafts(ctx.app)[target]
    assert after.status == "approved" and after.subject == "A quick question" and "two-page" in after.html
    assert 'href="https://alphaswarm.example/unsubscribe/' in after.html  # the link is still a link
    assert after.provenance["edited"]["by"] == "console:admin"
    events = [(r.event, r.actor) for r in audit(ctx.app, target)]
    assert events == [("draft.edited", "console:admin"), ("draft.approved", "console:admin")]
    at.selectbox(key="sr_pick").set_value(target)
    at = no_exception(at.run())
    assert "edited" in at.dataframe[-1].value["event"].tolist()  # history


def test_findings_are_marked_and_addresses_are_never_live_links(ctx, run):
    """Seen: URLs in an escaped email body rendered as live links (markdown links addresses even escaped)."""
    target = min(drafts(ctx.app))
    with ctx.app.store.write_plain() as s:  # a draft whose drafting recorded findings (an LLM's text, say)
        d = s.get(Draft, target)
        d.text = d.text.replace("Best regards,", "Act now: see www.example.com/offer or "
                                                 "https://evil.example/x_(y) for 100% free.\n\nBest regards,")
        d.flags = [{"code": "SPAM_CONTENT", "detail": 'spam terms: "Act now", "100% free"'}]
        s.add(d)
    at = no_exception(ctx.page(PAGE, "admin"))
    at.selectbox(key="sr_pick").set_value(target)
    at = no_exception(at.run())
    md = "\n".join(str(m.value) for m in at.markdown)  # the markdown source: escapes matter here
    assert ":red-background[**Act now**]" in md and r":red-background[**100\% free**]" in md
    assert "` www.example.com/offer `" in md and "` https://evil.example/x_(y) `" in md  # code, not links
    for m in at.markdown:  # every other address is inside a code span
        outside = re.sub(r"(`+) .*? \1", "", str(m.value))
        assert not re.search(r"https?:|www\.", outside), m.value
    assert any("https://evil.example/x_(y)" in t.value for t in at.text)  # and as plain text
    assert {"SPAM_CONTENT"} <= set(at.dataframe[1].value["code"])


def test_bulk_approve_and_reject_ticked_rows_behind_one_confirmation(ctx, run):
    """Seen: one email at a time over 425. Rows are ticked (or a page, or everything matching) and decided
    together behind one confirmation that lists exactly them."""
    at = no_exception(ctx.page(PAGE, "approver"))
    ids = at.dataframe[0].value["id"].tolist()
    at.session_state["sr_table"] = {"selection": {"rows": [0, 2], "columns": [], "cells": []}}
    at = no_exception(at.run())
    assert "2 selected" in text(at.caption)
    next(b for b in at.button if b.label == "Approve 2 selected").click()
    at = no_exception(at.run())
    [listed] = [t.value for t in at.text if t.value.startswith(f"#{ids[0]} ")]
    assert [int(line.split()[0][1:]) for line in listed.split("\n")] == [ids[0], ids[2]]
    assert {drafts(ctx.app)[i].status for i in ids} == {"draft"}  # nothing until confirmed
    at.button(key="sr_bulk_confirm").click()
    at = no_exception(at.run())
    assert f"Approved 2 (#{ids[0]}, #{ids[2]})." in text(at.success)
    assert [drafts(ctx.app)[i].status for i in ids] == ["approved", "draft", "approved", "draft", "draft"]

    next(b for b in at.button if b.label == "Select all on this page (3)").click()
    at = no_exception(at.run())
    next(b for b in at.button if b.label == "Reject 3 selected").click()
    at = no_exception(at.run())
    at.button(key="sr_bulk_confirm").click()
    at = no_exception(at.run())
    assert "reason is required" in text(at.error)
    at.text_area(key="sr_bulk_reason").input("tone is off for this segment")
    at.button(key="sr_bulk_confirm").click()
    at = no_exception(at.run())
    assert "Rejected 3" in text(at.success)
    assert [drafts(ctx.app)[i].status for i in ids] == ["approved", "rejected", "approved", "rejected", "rejected"]
    assert progress(at) == "5 / 5 reviewed"
    next(b for b in at.button if b.label == "Select all 5 matching").click()
    at = no_exception(at.run())
    next(b for b in at.button if b.label == "Approve 5 selected").click()
    at = no_exception(at.run())
    at.button(key="sr_bulk_confirm").click()
    at = no_exception(at.run())
    summary = text(at.warning)
    assert "Approved 3" in summary and "refused 2" in summary and "already approved" in summary


def test_buttons_name_the_email_and_carry_shortcuts(ctx, run):
    at = no_exception(ctx.page(PAGE, "approver"))
    target = picked(at)
    assert at.button(key=f"sr_approve_{target}").label == f"Approve #{target}"
    assert at.button(key=f"sr_reject_{target}").label == f"Reject #{target}"
    assert f"Save edit and approve #{target}" in [b.label for b in at.button]
    assert {b.proto.shortcut.lower() for b in at.button if b.proto.shortcut} >= {"a", "x", "e", "j", "k"}
    at.button(key="sr_next").click()
    at = no_exception(at.run())
    assert picked(at) == at.dataframe[0].value["id"].tolist()[1]


# ------------------------------------------------------------------------------------------ untrusted text

def test_untrusted_company_renders_as_text(ctx, run):
    at = no_exception(ctx.page(PAGE, "approver"))
    with ctx.app.store.read() as s:
        lead_id = s.exec(select(Lead.id).where(Lead.company == XSS)).one()
    target = next(i for i, d in drafts(ctx.app).items() if d.lead_id == lead_id)
    at.selectbox(key="sr_pick").set_value(target)
    at = no_exception(at.run())
    assert XSS in at.dataframe[0].value["company"].tolist()  # the listing: a dataframe cell
    assert any(XSS in t.value for t in at.text)  # the detail: plain text
    assert any("&lt;img src=x onerror=alert(1)&gt;" in c.value for c in at.code)  # the HTML source, escaped
    for h in at.get("html"):  # the rendered HTML: sanitised by Streamlit (never with JavaScript allowed)
        assert not h.proto.unsafe_allow_javascript and XSS not in h.proto.body
    for m in at.markdown:
        assert not m.proto.allow_html or "onerror" not in m.value
        if "onerror" in m.value:
            assert XSS not in m.value and r"\<img src\=x onerror\=alert\(1\)\>" in m.value  # escaped markdown
    assert not at.get("iframe")
    for node in at.main:  # the payload reaches the browser only inside text, code, dataframes and escaped markdown
        proto = getattr(node, "proto", None)
        if proto is not None and "onerror" in str(proto):
            assert type(node).__name__ in ("Text", "Code", "Markdown", "Caption", "Selectbox", "Dataframe", "Html",
                                           "TextInput", "TextArea", "Block", "Column"), type(node).__name__


# ------------------------------------------------------------------------------------------ scale

def bulk_run(app, n: int) -> int:
    """A shadow run of ``n`` drafted emails inserted in bulk into an empty database (the shape shadow_run
    leaves behind; lead ids 1..n)."""
    now = app.clock()
    with app.store.write_plain() as s:
        run_ = ShadowRun(started_at=now, finished_at=now, contacts=n,
                         summary={"by_reason": {"PHASE_BLOCKS_SEND": n}})
        s.add(run_)
        s.flush()
        rid = run_.id
        conn = s.connection()
        ids = range(1, n + 1)
        conn.execute(sa.insert(Lead.__table__), [
            dict(id=i, email=f"p{i}@bulk{i % 97}.example", first_name="Pat", company=f"Bulk {i}", tier=1 + i % 3,
                 status="new", sequence_step=0, website_visits=0, created_at=now) for i in ids])
        conn.execute(sa.insert(Draft.__table__), [
            dict(lead_id=i, sequence="cold", step=1, template_id="cold-first-t1", template_version="1.0.0",
                 subject=f"Hello {i}", html="<p>Hi Pat</p>", text="Hi Pat\n", provider="template",
                 flags=[{"code": "SPAM_CONTENT", "detail": "spam terms: \"free\""}] if i % 7 == 0 else [],
                 status="draft", created_at=now) for i in ids])
        conn.execute(sa.insert(OutboxItem.__table__), [
            dict(idempotency_key=f"shadow-{rid}-{i}", payload_hash="0" * 64, agent="GHL_MASTER", action="send_email",
                 channel="email", to_email=f"p{i}@bulk.example", lead_id=str(i), tier=1 + i % 3,
                 status="denied" if i % 5 == 0 else "shadowed",
                 reasons=[{"code": "PHASE_BLOCKS_SEND", "detail": "nothing leaves: shadow run"}], created_at=now,
                 attempts=0) for i in ids])
    return rid


def timed_run(at):
    """Run the page; returns (at, CPU seconds of this process, wall seconds). The page is judged on CPU time
    (the page's own work and SQLite's, not the other jobs sharing the machine); the wall time has a loose bound
    that still catches a query that drags whole tables out of PostgreSQL."""
    cpu, wall = time.process_time(), time.perf_counter()
    at = no_exception(at.run())
    return at, time.process_time() - cpu, time.perf_counter() - wall


def test_ten_thousand_emails_render_in_under_a_second(ctx):
    bulk_run(ctx.app, 10_000)
    at = no_exception(ctx.page(PAGE, "approver"))
    assert progress(at) == "0 / 10000 reviewed"
    at.number_input(key="sr_page").set_value(400)
    at, cpu, wall = timed_run(at)
    assert cpu < 1.0 and wall < 5.0, f"the last page took {cpu:.2f} s CPU, {wall:.2f} s wall with 10,000 emails"
    table = at.dataframe[0].value
    assert len(table) == 25 and "9976-10000 of 10000" in text(at.caption)
    at.multiselect(key="sr_f_decision").set_value(["denied"])
    at.selectbox(key="sr_f_reason").set_value("SPAM_CONTENT")
    at, cpu, wall = timed_run(at)
    assert cpu < 1.0 and wall < 5.0, f"filtering took {cpu:.2f} s CPU, {wall:.2f} s wall with 10,000 emails"
    assert "of 285 matching" in text(at.caption)  # multiples of 35 up to 10,000
    assert at.number_input(key="sr_page").value == 1  # a filter change starts at the first page
    assert not at.warning  # no widget-state warnings from the page/filter bookkeeping
