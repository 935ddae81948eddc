"""Shadow drafts carry a version, and a decision made on a version that is no longer stored is refused (issue 13,
second review round): a stale review page never acts on text the person did not see, never overturns a
colleague's decision it did not show, never overwrites a colleague's edit. On SQLite and PostgreSQL."""
from __future__ import annotations

import pytest
from sqlmodel import select

from engine.adapters.leads_csv import import_leads
from engine.adapters.models import Approval, AuditEntry, Draft, OutboxItem
from engine.core.errors import InvalidRequest
from engine.services import approvals
from engine.services.pipeline import set_draft_status, shadow_run
from engine.services.shadow_emails import (decide_draft, decide_drafts, draft_detail, draft_version, edit_draft,
                                           list_shadow_drafts, shadow_draft_rows)

CSV = """Email,First Name,Last Name,Title,Company,Website,# Employees,Industry,Country,State,Time Zone
ana@northwind.example,Ana,Ruiz,VP Sales,Northwind,northwind.example,201-500,B2B SaaS,United States,NY,America/New_York
bo@tidaldata.example,Bo,Kim,Head of RevOps,TidalData,tidaldata.example,51-200,B2B SaaS,United States,CA,America/Los_Angeles
cy@cedarpipe.example,Cy,Ode,Sales Manager,Cedar Pipe,cedarpipe.example,51-200,Fintech,Germany,,Europe/Berlin
"""  # noqa: E501  # CSV rows stay one per line


@pytest.fixture
def run(app_factory, tmp_path):
    app = app_factory()
    path = tmp_path / "leads.csv"
    path.write_text(CSV)
    assert import_leads(app.store, path, app.clock)["imported"] == 3
    summary = shadow_run(app, 10)
    with app.store.read() as s:
        ids = sorted(d.id for d in s.exec(select(Draft)).all())
    assert len(ids) == 3
    return app, summary["run_id"], ids


def version(app, run_id, i) -> str:
    return draft_detail(app, i, run_id)["version"]


def draft(app, i) -> Draft:
    with app.store.read() as s:
        return s.get(Draft, i)


def events(app, i) -> list[tuple[str, str]]:
    with app.store.read() as s:
        return [(e.event, e.actor) for e in s.exec(select(AuditEntry).where(AuditEntry.ref == str(i),
                                                                            AuditEntry.event.like("draft.%"))
                                                   .order_by(AuditEntry.seq)).all()]


def other_body(app, i) -> str:
    return draft(app, i).text.replace("Best regards,", "We met at SaaStr.\n\nBest regards,")


def test_the_listing_the_bulk_rows_and_the_detail_give_the_same_version(run):
    app, run_id, ids = run
    listed = {r["draft_id"]: r["version"] for r in list_shadow_drafts(app, run_id)["rows"]}
    bulk = {r["draft_id"]: r["version"] for r in shadow_draft_rows(app, run_id, ids)}
    assert listed == bulk == {i: version(app, run_id, i) for i in ids}
    assert len(set(listed.values())) == 3  # one per draft


def test_the_version_changes_with_an_edit_a_decision_and_any_later_decision(run):
    app, run_id, ids = run
    i = ids[0]
    seen = [version(app, run_id, i)]
    edit_draft(app, i, "New subject", other_body(app, i), "console:bo", approve=False)
    seen.append(version(app, run_id, i))
    set_draft_status(app, i, "approved", "console:cy")
    seen.append(version(app, run_id, i))
    set_draft_status(app, i, "rejected", "console:di", "tone")
    set_draft_status(app, i, "approved", "console:ed")  # the same status as two steps before, decided again
    seen.append(version(app, run_id, i))
    assert len(set(seen)) == 4


def test_the_fingerprint_is_the_one_approvals_use(run):
    """One definition: the approvals' message_version and the drafts' version are both approvals.fingerprint."""
    app, _run_id, _ids = run
    d = draft(app, _ids[0])
    assert draft_version(d.status, d.subject, d.text, d.html, d.flags, None) == approvals.fingerprint(
        {"status": d.status, "subject": d.subject, "text": d.text, "html": d.html, "flags": d.flags, "last": None})
    appr = Approval(id=1, kind="send", summary="s", action_type="send_email")
    row = OutboxItem(record={"to": "a@b.example"})
    assert approvals.message_version(appr, row) == approvals.fingerprint(
        {"record": row.record, "summary": "s", "edited_at": None, "edited_by": None})


@pytest.mark.parametrize("status,reason", [("approved", ""), ("rejected", "tone is off")])
def test_a_decision_on_a_version_edited_since_is_refused_naming_the_editor(run, status, reason):
    app, run_id, ids = run
    i = ids[0]
    seen = version(app, run_id, i)
    edit_draft(app, i, "Their subject", other_body(app, i), "console:bo", approve=False)
    with pytest.raises(InvalidRequest, match=rf"draft {i} changed since you saw it \(now draft; edited by "
                                             r"console:bo at .*\): read it again"):
        decide_draft(app, i, status, "console:alice", reason, seen=seen)
    assert draft(app, i).status == "draft" and events(app, i) == [("draft.edited", "console:bo")]
    decide_draft(app, i, status, "console:alice", reason, seen=version(app, run_id, i))  # as it stands now
    assert draft(app, i).status == status and events(app, i)[-1] == (f"draft.{status}", "console:alice")


def test_a_colleagues_decision_is_not_overturned_from_a_stale_page(run):
    app, run_id, ids = run
    i = ids[1]
    seen = version(app, run_id, i)
    set_draft_status(app, i, "rejected", "console:bo", "wrong persona")
    with pytest.raises(InvalidRequest, match="now rejected; rejected by console:bo"):
        decide_draft(app, i, "approved", "console:alice", seen=seen)
    assert draft(app, i).status == "rejected"


def test_an_edit_from_a_stale_form_does_not_overwrite_another_edit(run):
    app, run_id, ids = run
    i = ids[2]
    seen = version(app, run_id, i)
    edit_draft(app, i, "Their subject", other_body(app, i), "console:bo", approve=False)
    for approve in (True, False):
        with pytest.raises(InvalidRequest, match="changed since you saw it"):
            edit_draft(app, i, "My subject", other_body(app, i), "console:alice", approve=approve, seen=seen)
    d = draft(app, i)
    assert (d.status, d.subject) == ("draft", "Their subject")
    assert events(app, i) == [("draft.edited", "console:bo")]
    edit_draft(app, i, "My subject", d.text, "console:alice", seen=version(app, run_id, i))
    assert draft(app, i).subject == "My subject"


def test_bulk_decisions_refuse_exactly_the_drafts_changed_since_they_were_listed(run):
    app, run_id, ids = run
    seen = {r["draft_id"]: r["version"] for r in shadow_draft_rows(app, run_id, ids)}
    set_draft_status(app, ids[1], "rejected", "console:bo", "wrong persona")
    edit_draft(app, ids[2], "Their subject", other_body(app, ids[2]), "console:cy", approve=False)
    out = decide_drafts(app, ids, "approved", "console:alice", seen=seen)
    assert [o["ok"] for o in out] == [True, False, False]
    assert "changed since you saw it (now rejected; rejected by console:bo" in out[1]["error"]
    assert "changed since you saw it (now draft; edited by console:cy" in out[2]["error"]
    assert [draft(app, i).status for i in ids] == ["approved", "rejected", "draft"]


def test_without_a_seen_version_nothing_changes_for_callers_that_show_nothing_first(run):
    app, _run_id, ids = run
    out = decide_drafts(app, ids[:2], "rejected", "console:alice", "tone")
    assert [o["ok"] for o in out] == [True, True]
    with pytest.raises(InvalidRequest, match="already rejected"):
        decide_draft(app, ids[0], "rejected", "console:alice", "again")
    with pytest.raises(InvalidRequest, match="reason is required"):
        decide_draft(app, ids[2], "rejected", "console:alice", "  ")
