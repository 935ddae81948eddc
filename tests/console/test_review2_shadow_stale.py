"""Shadow review, second review round (issue 13, item 3): a decision acts on the email the person saw.

- Another reviewer edits or decides a draft while it is on someone's screen: approving, rejecting or saving an
  edit from that stale page is refused, naming who changed it; the page then shows the email as it stands, and the
  next click acts on that (as on the Approvals page).
- A bulk confirmation acts on the drafts as it listed them: one decided by someone else after the listing is
  refused, not silently overturned.
- Every button names the draft it acts on; A / X / E act on the draft named on screen, never on another one the
  page moved its focus to in the same rerun (a filter change, a draft that left the filtered list): the
  Approvals page is checked the same way.

Buttons are looked up by label (the label a person reads), not by key.
"""
from __future__ import annotations

import re

from engine.services.pipeline import set_draft_status
from engine.services.shadow_emails import edit_draft
from tests.console.conftest import no_exception as ok, text
from tests.console.test_review_volume_gaps import APPROVALS, q, status_of  # noqa: F401  (q: a fixture)
from tests.console.test_shadow_review_page import PAGE, audit, drafts, picked, run  # noqa: F401  (run: a fixture)


def button(at, label: str):
    found = [b for b in at.button if b.label == label]
    assert len(found) == 1, (label, [b.label for b in at.button])
    return found[0]


def reason_box(at):
    [box] = [t for t in at.text_area if t.label.startswith("Reason")]
    return box


def other_edit(app, i: int, who: str = "console:admin") -> str:
    """Another reviewer's edit of draft ``i`` (saved, not approved): returns the new subject."""
    d = drafts(app)[i]
    edit_draft(app, i, "Their rewritten subject", d.text.replace("Best regards,", "We met at SaaStr.\n\nBest regards,"),
               who, "their edit", approve=False)
    return "Their rewritten subject"


# ------------------------------------------------------------------------------------------ changed since seen

def test_approving_a_draft_edited_by_someone_else_since_it_was_shown_is_refused(ctx, run):
    at = ok(ctx.page(PAGE, "approver"))
    t = picked(at)
    assert f"Subject: {drafts(ctx.app)[t].subject}" in [x.value for x in at.text]  # what the approver reads
    new_subject = other_edit(ctx.app, t)  # another tab
    button(at, f"Approve #{t}").click()
    at = ok(at.run())
    assert "changed since you saw it" in text(at.error) and "console:admin" in text(at.error)
    assert drafts(ctx.app)[t].status == "draft"
    assert f"Subject: {new_subject}" in [x.value for x in at.text]  # now shown: the next click approves this
    assert picked(at) == t
    button(at, f"Approve #{t}").click()
    at = ok(at.run())
    assert drafts(ctx.app)[t].status == "approved"
    assert [(r.event, r.actor) for r in audit(ctx.app, t)][-1] == ("draft.approved", "console:approver")


def test_rejecting_a_draft_another_reviewer_approved_meanwhile_is_refused(ctx, run):
    at = ok(ctx.page(PAGE, "approver"))
    t = picked(at)
    set_draft_status(ctx.app, t, "approved", "console:admin")  # a colleague approves it meanwhile
    reason_box(at).input("tone is off")
    button(at, f"Reject #{t}").click()
    at = ok(at.run())
    assert "changed since you saw it" in text(at.error)
    assert drafts(ctx.app)[t].status == "approved"  # the colleague's yes stands
    assert [r.event for r in audit(ctx.app, t)] == ["draft.approved"]


def test_an_edit_saved_from_a_stale_form_does_not_overwrite_another_edit(ctx, run):
    at = ok(ctx.page(PAGE, "admin"))
    t = picked(at)
    theirs = other_edit(ctx.app, t, "console:approver")
    at.text_input(key=f"sr_edit_subject_{t}").input("My subject")
    label = next(b.label for b in at.button if b.label.startswith("Save edit and approve"))
    button(at, label).click()
    at = ok(at.run())
    assert "changed since you saw it" in text(at.error)
    d = drafts(ctx.app)[t]
    assert (d.status, d.subject) == ("draft", theirs)  # their edit stands, nothing approved
    assert [r.event for r in audit(ctx.app, t)] == ["draft.edited"]
    # the form now starts from what is stored
    assert at.text_input(key=f"sr_edit_subject_{t}").value == theirs


def test_bulk_confirmation_acts_on_the_drafts_as_it_listed_them(ctx, run):
    """The dialog lists three drafts; before the click a colleague rejects one and edits another: exactly the
    listed, unchanged one is approved, the others are refused naming why."""
    at = ok(ctx.page(PAGE, "approver"))
    ids = at.dataframe[0].value["id"].tolist()[:3]
    at.session_state["sr_table"] = {"selection": {"rows": [0, 1, 2], "columns": [], "cells": []}}
    at = ok(at.run())
    button(at, "Approve 3 selected").click()
    at = ok(at.run())
    [listed] = [t.value for t in at.text if t.value.startswith(f"#{ids[0]} ")]
    assert [int(line.split()[0][1:]) for line in listed.split("\n")] == ids
    set_draft_status(ctx.app, ids[1], "rejected", "console:admin", "wrong persona")
    other_edit(ctx.app, ids[2])
    at.button(key="sr_bulk_confirm").click()
    at = ok(at.run())
    assert [drafts(ctx.app)[i].status for i in ids] == ["approved", "rejected", "draft"]
    summary = text(at.warning)
    assert f"Approved 1 (#{ids[0]})" in summary
    assert f"#{ids[1]}: draft {ids[1]} changed since you saw it" in summary
    assert f"#{ids[2]}: draft {ids[2]} changed since you saw it" in summary


# ------------------------------------------------------------------------------------------ names and shortcuts

def test_every_decision_button_names_the_draft(ctx, run):
    at = ok(ctx.page(PAGE, "approver"))
    t = picked(at)
    labels = {b.label for b in at.button}
    assert {f"Approve #{t}", f"Reject #{t}", f"Save edit and approve #{t}", f"Save edit #{t}"} <= labels, labels
    assert not {"Save edit and approve", "Approve", "Reject"} & labels
    by_shortcut = {b.proto.shortcut.lower(): b.label for b in at.button if b.proto.shortcut}
    assert by_shortcut["a"] == f"Approve #{t}" and by_shortcut["x"] == f"Reject #{t}"
    assert by_shortcut["e"] == f"Edit #{t}"  # E opens the edit form of the draft named, as on Approvals


def test_a_shortcut_pressed_as_a_filter_removes_the_draft_acts_on_nothing_else(ctx, run):
    """The person presses A on "Approve #t" while the filter change they just made is still rerunning (or the two
    arrive together): the filter moved the focus to another draft, which they never saw. Nothing is approved."""
    at = ok(ctx.page(PAGE, "approver"))
    t = picked(at)
    table = at.dataframe[0].value.set_index("id")
    other_tier = next(x for x in (1, 2, 3) if x != int(table.loc[t, "tier"]) and (table["tier"] == x).any())
    approve = button(at, f"Approve #{t}")
    at.multiselect(key="sr_f_tier").set_value([other_tier])
    approve.click()
    at = ok(at.run())
    assert picked(at) != t  # the focus moved: t is filtered out
    assert {d.status for d in drafts(ctx.app).values()} == {"draft"}, "a draft nobody saw was approved"
    assert not [m for m in at.success if "approved" in str(m.value)]


def test_a_shortcut_on_a_draft_that_left_the_list_acts_on_nothing_else(ctx, run):
    """Filtered to pending drafts, a colleague rejects the one in focus: it leaves the list, and the A pressed on
    the stale page ("Approve #t") must neither approve the next draft nor overturn the colleague's no."""
    at = ok(ctx.page(PAGE, "approver"))
    at.multiselect(key="sr_f_status").set_value(["draft"])
    at = ok(at.run())
    t = picked(at)
    approve = button(at, f"Approve #{t}")
    set_draft_status(ctx.app, t, "rejected", "console:admin", "wrong persona")
    approve.click()
    at = ok(at.run())
    assert picked(at) != t
    statuses = {i: d.status for i, d in drafts(ctx.app).items()}
    assert statuses.pop(t) == "rejected"
    assert set(statuses.values()) == {"draft"}, "a draft nobody saw was approved"


def test_a_reason_typed_for_one_draft_is_not_used_to_reject_another(ctx, run):
    """The reason box belongs to the draft named: after J (next), X does not reject the next draft with the
    reason written about the previous one."""
    at = ok(ctx.page(PAGE, "approver"))
    t = picked(at)
    reason_box(at).input("claims a partnership with Acme we do not have")
    button(at, "Next").click()
    at = ok(at.run())
    nxt = picked(at)
    assert nxt != t
    button(at, f"Reject #{nxt}").click()
    at = ok(at.run())
    assert drafts(ctx.app)[nxt].status == "draft"
    assert "A reason is required to reject" in text(at.error)


def test_approvals_shortcuts_act_on_nothing_after_a_filter_removes_the_focused_item(q):
    """The same check on the Approvals page: A pressed on "Approve #i" as a filter change removes #i approves
    neither #i nor the item the focus moved to."""
    at = ok(q.page(APPROVALS, "approver"))
    i = q.sends[0]
    at.selectbox(key="appr_open").set_value(i).run()
    approve = button(ok(at), f"Approve #{i}")
    at.text_input(key="appr_search").input("acme1.io")
    approve.click()
    at = ok(at.run())
    assert at.selectbox(key="appr_open").value == q.sends[1]
    assert [status_of(q.eng, x) for x in q.sends] == ["pending"] * 3
    # and A on the item now named acts on it
    button(at, f"Approve #{q.sends[1]}").click()
    at = ok(at.run())
    assert [status_of(q.eng, x) for x in q.sends] == ["pending", "approved", "pending"]


def test_approvals_reason_belongs_to_the_item_named(q):
    at = ok(q.page(APPROVALS, "approver"))
    a, b = q.sends[0], q.sends[1]
    at.selectbox(key="appr_open").set_value(a).run()
    box = next(t for t in ok(at).text_input if t.label.startswith("Reason to reject"))
    assert re.search(rf"#{a}\b", box.label)
    box.input("wrong persona")
    at.selectbox(key="appr_open").set_value(b).run()
    button(ok(at), f"Reject #{b}").click()
    at = ok(at.run())
    assert status_of(q.eng, b) == "pending" and "reason is required" in text(at.error)
