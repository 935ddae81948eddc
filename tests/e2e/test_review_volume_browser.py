"""Approval and shadow review at volume in a real browser (Debian's chromium via Playwright): an edit the gate
would refuse is refused with its findings listed and nothing approved; a filtered page of the approval queue is
selected and bulk-approved behind one confirmation that lists exactly the items it acts on."""
from __future__ import annotations

import re
import sqlite3

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import alpha_json, login, open_page, screenshot, settle

pytestmark = [pytest.mark.browser, pytest.mark.slow]

VOLUME = re.compile(r"^person\d+@company\d+\.example$")  # the ordinary leads' pending sends (conftest._xss_queue)


def queue(console, status: str = "pending") -> list[dict]:
    return alpha_json(console, "approvals", "list", "--status", status, "--limit", "500")


def filter_queue(page, text: str) -> None:
    box = page.locator(".st-key-appr_search input")
    box.fill(text)
    box.press("Enter")
    settle(page)


def focused(page) -> int:
    heading = page.get_by_role("heading", name=re.compile(r"^(Send|Hot lead) #\d+ ·")).first
    heading.wait_for()
    return int(re.search(r"#(\d+)", heading.inner_text()).group(1))


def test_an_edit_with_findings_is_refused_in_the_browser(page, console):
    """Seen: "Save edit and approve" approved a draft that broke the content rules, with a green banner."""
    login(page, console, "approver")
    open_page(page, "Approvals")
    filter_queue(page, "person")
    first = focused(page)
    page.get_by_role("heading", name="Approvals").first.click()  # out of the search field: shortcuts work
    page.keyboard.press("j")  # the next item
    page.get_by_role("heading", name=re.compile(rf"^Send #(?!{first}\b)\d+ ·")).wait_for()
    settle(page)
    item = focused(page)
    assert item != first
    before = {r["id"]: r for r in queue(console)}[item]
    page.get_by_role("button", name=re.compile(rf"^Edit #{item}\b")).click()  # E
    settle(page)
    subject = page.locator(f".st-key-edit_subject_{item} input")
    subject.fill("100% free: guaranteed results for your team")
    page.get_by_role("button", name=f"Save edit #{item}").click()
    settle(page)
    error = page.locator('[data-testid="stAlertContentError"]').filter(has_text="Not saved")
    expect(error).to_be_visible()
    for shown in ("SPAM_CONTENT", "100% free", "FORBIDDEN_CLAIM", "guaranteed results"):
        expect(error).to_contain_text(shown)
    assert page.locator('[data-testid="stAlertContentSuccess"]').count() == 0
    screenshot(page, "approvals-edit-refused")
    after = {r["id"]: r for r in queue(console)}[item]
    assert after["status"] == "pending" and after["subject"] == before["subject"]

    # the same in shadow review: "Save edit and approve" with a spam term approves nothing
    open_page(page, "Shadow review")
    heading = page.get_by_role("heading", name=re.compile(r"^Draft #\d+$")).first
    draft = int(heading.inner_text().split("#")[1])
    page.get_by_text("Edit, then approve").click()
    body = page.get_by_label("Body (plain text; links stay links)")
    body.fill(body.input_value().replace("Best regards,", "Act now, this is 100% free.\n\nBest regards,"))
    page.get_by_role("button", name=f"Save edit and approve #{draft}", exact=True).click()  # names it
    settle(page)
    error = page.locator('[data-testid="stAlertContentError"]').filter(has_text="Not saved, not approved")
    expect(error).to_be_visible()
    expect(error).to_contain_text("SPAM_CONTENT")
    expect(error).to_contain_text("100% free")
    screenshot(page, "shadow-review-edit-refused")
    with sqlite3.connect(console.env["DATABASE_URL"].removeprefix("sqlite:///")) as c:
        status, text = c.execute("SELECT status, text FROM draft WHERE id = ?", (draft,)).fetchone()
    assert status == "draft" and "100% free" not in text  # nothing saved, nothing approved


def test_bulk_approve_of_a_filtered_page(page, console):
    """Seen: bulk approve meant typing ids into a multiselect. Filter, select the page, approve behind one
    confirmation that lists the items; exactly those are approved."""
    login(page, console, "approver")
    open_page(page, "Approvals")
    pending = queue(console)
    wanted = sorted(r["id"] for r in pending if VOLUME.match(r["to"] or ""))
    others = sorted(r["id"] for r in pending if r["id"] not in wanted)
    assert len(wanted) >= 5 and others, "the seed queues the ordinary leads' sends and the XSS items"
    filter_queue(page, "person")
    expect(page.get_by_role("button", name=f"Select all on this page ({len(wanted)})")).to_be_visible()
    screenshot(page, "approvals-filtered")
    page.get_by_role("button", name=f"Select all on this page ({len(wanted)})").click()
    settle(page)
    page.get_by_role("button", name=f"Approve {len(wanted)} selected").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text(f"Approve these {len(wanted)} item(s)?")
    listed = dialog.locator('[data-testid="stText"]').inner_text()
    assert sorted(int(m) for m in re.findall(r"^#(\d+)", listed, re.M)) == wanted
    for r in pending:
        if r["id"] in wanted:
            assert r["to"] in listed
    screenshot(page, "approvals-bulk-confirm")
    dialog.get_by_role("button", name=f"Approve {len(wanted)} item(s)").click()
    dialog.wait_for(state="detached")
    expect(page.locator('[data-testid="stAlertContentSuccess"]').filter(
        has_text=f"Approved {len(wanted)} (#")).to_be_visible()
    settle(page)
    screenshot(page, "approvals-bulk-done")
    approved = sorted(r["id"] for r in queue(console, "approved"))
    assert approved == wanted
    assert sorted(r["id"] for r in queue(console)) == others
