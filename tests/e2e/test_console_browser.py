"""The operator console in a real browser (Debian's chromium via Playwright) against `streamlit run`."""
from __future__ import annotations

import json
import re
import sqlite3

import pytest
from playwright.sync_api import expect

from console.nav import NAV
from tests.e2e.conftest import ROOT, XSS, alpha_cli, alpha_json, login, nav_labels, open_page, screenshot, settle

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def expected_nav(role: str) -> list[str]:
    return [s.title for s in NAV if role in s.roles and (ROOT / "pages" / f"{s.module}.py").is_file()]


@pytest.mark.parametrize("role", ["ae", "approver", "ops", "admin"])
def test_each_role_logs_in_and_sees_its_navigation(page, console, role):
    login(page, console, role)
    assert nav_labels(page) == expected_nav(role)
    page.get_by_role("heading", name="Status").first.wait_for()
    screenshot(page, "status")


def test_ops_flips_the_kill_switch_through_the_dialog_and_the_cli_sees_it(page, console):
    login(page, console, "ops")
    open_page(page, "Kill switch & rollout")
    screenshot(page, "kill-switch-off")
    page.locator(".st-key-kill_button_on").get_by_role("button", name=re.compile("TURN KILL SWITCH ON")).click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Reason (required, recorded in the audit trail)").fill("e2e: bounce spike on mailbox 2")
    screenshot(page, "kill-switch-dialog")
    dialog.get_by_role("button", name="Turn kill switch ON").click()
    dialog.wait_for(state="detached")
    expect(page.locator(".st-key-kill_panel_on")).to_contain_text("KILL SWITCH ON - nothing is sent")
    kill = alpha_json(console, "status")["kill_switch"]
    assert kill["on"] is True and kill["source"] == "database"
    assert kill["reason"] == "e2e: bounce spike on mailbox 2" and kill["changed_by"] == "console:ops"
    screenshot(page, "kill-switch-on")

    # turned off from the CLI: the page body and the header show it within seconds, without a reload
    out = alpha_cli(console, "kill", "off", "--reason", "e2e: back to normal", "--actor", "e2e")
    assert out.returncode == 0, out.stderr
    expect(page.locator(".st-key-kill_panel_off")).to_contain_text("Kill switch off", timeout=5_000)
    expect(page.get_by_text("kill switch off", exact=True).first).to_be_visible(timeout=15_000)


def test_a_company_name_holding_html_renders_as_text(page, console):
    login(page, console, "admin")
    nav_labels(page)  # expands a long navigation ("View N more"): Leads is past the first ten pages
    open_page(page, "Leads")
    search = page.get_by_label("Search email or company")
    search.fill("onerror=alert(1)")  # the XSS leads of test_every_page hold onerror=alert('<field>')
    search.press("Enter")
    expect(page.get_by_text("1 lead(s) · page 1 of 1")).to_be_visible()
    settle(page)
    expect(page.locator('[data-testid="stText"]').filter(has_text=XSS).first).to_be_visible()
    expect(page.locator('[data-testid="stPlotlyChart"]')).to_be_visible()  # the ICP breakdown
    screenshot(page, "leads-xss")
    assert page.locator("img[src='x']").count() == 0
    assert page.locator("img[onerror]").count() == 0
    assert not page.dialogs


def db(console):
    return sqlite3.connect(console.env["DATABASE_URL"].removeprefix("sqlite:///"))


def test_the_ae_labels_three_leads_and_never_receives_the_ai_tier_or_score(page, console):
    frames: list[bytes] = []  # everything the server sends this browser (Streamlit's websocket, protobuf)
    page.on("websocket", lambda ws: ws.on(
        "framereceived", lambda f: frames.append(f if isinstance(f, bytes) else f.encode())))
    login(page, console, "ae")
    open_page(page, "Blind review")
    total = console.review_set["size"]
    pages_html, pages_text = [], []
    # by click, by keyboard shortcut, by click
    for n, (choice, key) in enumerate((("1", None), ("3", "3"), ("disqualified", None)), 1):
        expect(page.get_by_text(f"Lead {n} of {total}", exact=True)).to_be_visible()
        settle(page)
        pages_html.append(page.content())
        pages_text.append(page.inner_text("body"))
        if n == 1:
            screenshot(page, "blind-review")
        if key:
            page.keyboard.press(key)
        else:
            page.locator(f".st-key-blind_{choice} button:visible").click()
        expect(page.get_by_text(f"Set {console.review_set['set_id']}: {n} / {total} labelled")).to_be_visible()
    settle(page)
    pages_html.append(page.content())
    pages_text.append(page.inner_text("body"))
    screenshot(page, "blind-review-after-three")

    with db(console) as c:
        labeled = c.execute("SELECT r.human_label, r.labeled_by, l.score, l.tier, l.icp FROM review_item r "
                            "JOIN lead l ON l.id = r.lead_id WHERE r.human_label IS NOT NULL "
                            "ORDER BY r.labeled_at, r.id").fetchall()
        ai = c.execute("SELECT l.icp, l.score FROM review_item r JOIN lead l ON l.id = r.lead_id").fetchall()
    assert [(h, by) for h, by, *_ in labeled] == [("1", "console:ae"), ("3", "console:ae"),
                                                 ("disqualified", "console:ae")]
    received = b"".join(frames)
    assert f"Lead 3 of {total}".encode() in received  # the capture works: the page's own text is in it
    for icp, _score in ai:  # the AI's verdict on every lead of the set, as the engine stored it
        verdict = json.loads(icp)
        for secret in (verdict["explain"], verdict["reason"]):
            assert secret not in "".join(pages_html), f"AI output in the page: {secret!r}"
            assert secret.encode() not in received, f"AI output sent to the browser: {secret!r}"
    for text in pages_text:
        assert "score" not in text.lower(), "a score is shown to the blind reviewer"


def test_the_approver_approves_a_shadow_email(page, console):
    login(page, console, "approver")
    open_page(page, "Shadow review")
    screenshot(page, "shadow-review")
    approve = page.get_by_role("button", name=re.compile(r"^Approve #\d+"))  # the button names the email
    approve.click()
    flash = page.get_by_text(re.compile(r"^Draft #\d+ approved\.$"))
    expect(flash).to_be_visible()
    draft_id = int(re.search(r"#(\d+)", flash.inner_text()).group(1))
    screenshot(page, "shadow-review-approved")
    with db(console) as c:
        status = c.execute("SELECT status FROM draft WHERE id = ?", (draft_id,)).fetchone()[0]
        actors = [r[0] for r in c.execute("SELECT actor FROM audit_log WHERE event = 'draft.approved' AND ref = ?",
                                          (str(draft_id),))]
    assert status == "approved" and actors == ["console:approver"]
